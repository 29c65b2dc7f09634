package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

// concurrency tracks, per schedule, how many runs work at once.
type concurrency struct {
	mu      sync.Mutex
	now     map[int64]int
	highest map[int64]int
}

func (c *concurrency) class() workers.Class {
	return testClass{name: "test_overlap", work: func(ctx context.Context, job *river.Job[testArgs]) error {
		id := job.Args.ScheduledJobID
		c.mu.Lock()
		c.now[id]++
		c.highest[id] = max(c.highest[id], c.now[id])
		c.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		c.mu.Lock()
		c.now[id]--
		c.mu.Unlock()
		return nil
	}}
}

// overlapSetup is a database of the test's own, the test_overlap class that
// counts runs working at once, a River client with its Recorder (not
// started) and a Scheduler enqueueing through it.
type overlapSetup struct {
	pool     *pgxpool.Pool
	c        *concurrency
	registry *workers.Registry
	client   *river.Client[pgx.Tx]
	sched    *scheduler.Scheduler
}

func newOverlapSetup(t *testing.T) *overlapSetup {
	t.Helper()
	s := &overlapSetup{pool: dbtest.Pool(t, ownedDatabase(t)), c: &concurrency{now: map[int64]int{}, highest: map[int64]int{}}}
	var err error
	s.registry, err = workers.NewRegistry(s.c.class())
	require.NoError(t, err)
	s.client = schedtest.NewClient(t, s.pool, s.registry, scheduler.RecorderConfig{})
	s.sched = scheduler.New(s.pool, s.client, s.registry, dbtest.Logger(), scheduler.Config{})
	return s
}

// schedule adds a test_overlap schedule with overlap_policy skip that never
// falls due by itself.
func (s *overlapSetup) schedule(t *testing.T) int64 {
	t.Helper()
	var id int64
	require.NoError(t, s.pool.QueryRow(context.Background(), `INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy, parameters)
		VALUES ('o', 'test_overlap', '0 0 1 1 *', 'skip', '{}') RETURNING id`).Scan(&id))
	return id
}

// startClients starts clients, each stopped when the test ends.
func startClients(t *testing.T, clients ...*river.Client[pgx.Tx]) {
	t.Helper()
	for _, c := range clients {
		require.NoError(t, c.Start(context.Background()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = c.StopAndCancel(ctx)
		})
	}
}

// TestOverlapCheckAtStartIsAtomic: runs of one skip schedule that River
// fetches together (admins' run-now clicks, which the enqueue-time check lets
// through) never work at the same time, in one process or in two replicas:
// the start-time check is atomic.
func TestOverlapCheckAtStartIsAtomic(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	s := newOverlapSetup(t)
	replica := schedtest.NewClient(t, s.pool, s.registry, scheduler.RecorderConfig{})

	const schedules, runsEach = 8, 3
	var ids []int64
	for range schedules {
		id := s.schedule(t)
		ids = append(ids, id)
		for range runsEach {
			_, err := s.sched.RunNow(ctx, id, nil)
			require.NoError(t, err)
		}
	}
	// Every run is queued before the workers start, so that they are
	// fetched together, by both replicas.
	startClients(t, s.client, replica)
	eventually(t, func() bool {
		return scalar[int](t, s.pool, "SELECT count(*) FROM job_logs WHERE status = 'completed'") == schedules*runsEach
	}, "every run completes, one after another")
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for _, id := range ids {
		require.Equal(t, 1, s.c.highest[id], "schedule %d had runs working at once", id)
	}
}

// TestAStaleClaimIsTakenOver: a claim left by a run whose process died
// before the recorder released it (its River job no longer running) holds
// nothing up, and the reconciler drops it once it is old.
func TestAStaleClaimIsTakenOver(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	s := newOverlapSetup(t)
	id := s.schedule(t)
	plantStaleClaim := func() {
		_, err := s.pool.Exec(ctx, `INSERT INTO scheduler_run_claims (scheduled_job_id, river_job_id, attempt, claimed_at)
			VALUES ($1, 987654321, 1, now() - interval '1 hour')`, id)
		require.NoError(t, err)
	}
	plantStaleClaim()
	_, err := s.sched.RunNow(ctx, id, nil)
	require.NoError(t, err)
	startClients(t, s.client)
	eventually(t, func() bool {
		return scalar[int](t, s.pool, "SELECT count(*) FROM job_logs WHERE status = 'completed'") == 1
	}, "the run starts although a dead run's claim is left")
	eventually(t, func() bool {
		return scalar[int](t, s.pool, "SELECT count(*) FROM scheduler_run_claims") == 0
	}, "the run's end releases the claim it took over")

	// A stale claim of a run that never released it: the reconciler drops it.
	plantStaleClaim()
	_, err = scheduler.NewReconciler(s.pool, dbtest.Logger(), scheduler.ReconcilerConfig{InstanceID: "t"}).Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, scalar[int](t, s.pool, "SELECT count(*) FROM scheduler_run_claims"))
}
