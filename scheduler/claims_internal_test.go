package scheduler

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/workers"
)

// TestConcurrentClaimsOfOneScheduleHaveOneWinner: two replicas' batches
// claiming one schedule for two running jobs at the same moment: exactly one
// wins, every round. Without the schedule's lock both see no claim and both
// win (the second's upsert overwrites the first's).
func TestConcurrentClaimsOfOneScheduleHaveOneWinner(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.NewURL(t))
	var sid int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy)
		VALUES ('claimed', 'noop', '0 0 1 1 *', 'skip') RETURNING id`).Scan(&sid))
	var jobs [2]int64
	for i := range jobs {
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO river_job (args, kind, max_attempts, state, queue, priority, attempt, attempted_at)
			VALUES ('{}', 'noop', 1, 'running', 'default', 1, 1, now()) RETURNING id`).Scan(&jobs[i]))
	}

	for round := range 40 {
		_, err := pool.Exec(ctx, "DELETE FROM scheduler_run_claims")
		require.NoError(t, err)
		var wg sync.WaitGroup
		start := make(chan struct{})
		won := make([]bool, len(jobs))
		errs := make([]error, len(jobs))
		for i, job := range jobs {
			wg.Go(func() {
				<-start
				busy, err := claimSchedules(ctx, pool, []claimRequest{{scheduledJobID: sid, jobID: job}})
				won[i], errs[i] = err == nil && !busy[job], err
			})
		}
		close(start)
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.True(t, won[0] != won[1], "round %d: exactly one of two concurrent claims wins, got %v", round, won)
	}

	// Two requests of one schedule in one batch: one wins there too.
	_, err := pool.Exec(ctx, "DELETE FROM scheduler_run_claims")
	require.NoError(t, err)
	busy, err := claimSchedules(ctx, pool, []claimRequest{{scheduledJobID: sid, jobID: jobs[0]}, {scheduledJobID: sid, jobID: jobs[1]}})
	require.NoError(t, err)
	require.True(t, busy[jobs[0]] != busy[jobs[1]], "one of two requests in a batch wins: %v", busy)
}

// TestAnAttemptReleasesOnlyItsOwnClaim: the next attempt of a job may claim
// the schedule before the previous attempt's end is flushed; that flush must
// not free the new claim. And a run holding its claim counts as running, not
// waiting, while its job_logs row still says queued.
func TestAnAttemptReleasesOnlyItsOwnClaim(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.NewURL(t))
	var sid, job int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy)
		VALUES ('claimed', 'noop', '0 0 1 1 *', 'queue_one') RETURNING id`).Scan(&sid))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO river_job (args, kind, max_attempts, state, queue, priority, attempt, attempted_at)
		VALUES ('{}', 'noop', 3, 'running', 'default', 1, 2, now()) RETURNING id`).Scan(&job))
	_, err := pool.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, scheduled_job_id)
		VALUES ($1::bigint::text, $1::bigint, 'noop', 2, 'queued', $2)`, job, sid)
	require.NoError(t, err)
	busy, err := claimSchedules(ctx, pool, []claimRequest{{scheduledJobID: sid, jobID: job, attempt: 2}})
	require.NoError(t, err)
	require.False(t, busy[job])

	unfinished := func() unfinishedRuns {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		got, err := countUnfinished(ctx, tx, []int64{sid})
		require.NoError(t, err)
		return got[sid]
	}
	require.Equal(t, unfinishedRuns{running: 1}, unfinished(), "claimed, its row not yet flushed: running")

	release := func(attempt int) {
		r := record{run: run{job: &rivertype.JobRow{ID: job, Attempt: attempt},
			args: workers.Args{ScheduledJobID: sid}, meta: runqueue.Metadata{OverlapPolicy: runqueue.OverlapQueueOne}}}
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return releaseClaims(ctx, tx, []record{r}) }))
	}
	release(1)
	require.Equal(t, 1, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduler_run_claims"), "attempt 1's end leaves attempt 2's claim")
	release(2)
	require.Zero(t, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduler_run_claims"))
	require.Equal(t, unfinishedRuns{waiting: 1}, unfinished(), "no claim, row queued: waiting")
}

// TestClaimsReadTheWaitingOnce: claiming 100 schedules while 20,000 runs
// wait, on statistics taken when none did, handles each waiting run a few
// times at most, not once per request. The check once ran as a subplan per
// request that scanned the whole partial index of unfinished rows: 15,000
// buffers a batch in a burst (issue 18).
func TestClaimsReadTheWaitingOnce(t *testing.T) {
	t.Parallel()
	const waiting, n = 20_000, 100
	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	dbtest.WaitingBehindStaleStatistics(t, pool, waiting, 500, 1000)
	reqs := make([]claimRequest, n)
	for i := range reqs {
		reqs[i] = claimRequest{scheduledJobID: int64(100001 + i), jobID: int64(1 + i), attempt: 1}
	}
	explained := dbtest.NewExplained(t, url)
	tx, err := explained.Conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	explained.Work(t)
	busy, err := claimSchedules(ctx, tx, reqs)
	require.NoError(t, err)
	work := explained.Work(t)
	require.LessOrEqual(t, work, int64(3*waiting+10*n), "claims of %d schedules handled %d rows with %d runs waiting", n, work, waiting)
	// Schedule 100001 + k has a processing run (river job 1000·j with 1000·j % 500 = k) only for k = 0:
	// its request (river job 1) is busy, the others are not.
	for i, req := range reqs {
		require.Equal(t, i == 0, busy[req.jobID], "schedule %d", req.scheduledJobID)
	}
}

// TestReleasingClaimsReadsEachOnce: releasing 500 attempts' claims while
// 10,000 are held, on statistics taken when none was, finds each claim
// through its schedule, not by reading them all. Joined on river_job_id
// (no index) it read every claim per attempt, and a burst of 10,000 runs
// that started together spent ~20 s releasing on a database that had lived
// (issue 18).
func TestReleasingClaimsReadsEachOnce(t *testing.T) {
	t.Parallel()
	const held, released = 10_000, 500
	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	_, err := pool.Exec(ctx, `ANALYZE scheduler_run_claims`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO scheduler_run_claims (scheduled_job_id, river_job_id, attempt) SELECT 100000 + g, g, 1 FROM generate_series(1, $1::int) g`, held)
	require.NoError(t, err)
	var ends []record
	for i := 1; i <= released; i++ {
		job := int64(i * (held / released))
		ends = append(ends, record{run: run{job: &rivertype.JobRow{ID: job, Attempt: 1},
			args: workers.Args{ScheduledJobID: 100000 + job}, meta: runqueue.Metadata{OverlapPolicy: runqueue.OverlapSkip}}})
	}
	explained := dbtest.NewExplained(t, url)
	tx, err := explained.Conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	explained.Work(t)
	require.NoError(t, releaseClaims(ctx, tx, ends))
	work := explained.Work(t)
	require.LessOrEqual(t, work, int64(8*released), "releasing %d of %d claims handled %d rows", released, held, work)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, held-released, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduler_run_claims"))
	require.Zero(t, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduler_run_claims WHERE river_job_id % $1 = 0", held/released))
}
