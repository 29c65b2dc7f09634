package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/httprequest"
	"github.com/atis-edu/atis-scheduler/workers/noop"
	"github.com/atis-edu/atis-scheduler/workers/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a settable clock for the scheduler under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// testArgs are the args of the test-only job classes.
type testArgs struct {
	workers.Args
	kind string
}

func (a testArgs) Kind() string { return a.kind }

// testClass is a job class whose work is a function.
type testClass struct {
	name string
	work func(ctx context.Context, job *river.Job[testArgs]) error
}

func (c testClass) Name() string                             { return c.name }
func (c testClass) ValidateParameters(json.RawMessage) error { return nil }
func (c testClass) AddWorker(w *river.Workers) error {
	river.AddWorkerArgs(w, testArgs{kind: c.name}, river.WorkFunc(c.work))
	return nil
}

// testClasses: test_fail fails (cancels with {"cancel": true}), test_panic
// panics, test_flaky fails its first attempts ({"fail_attempts": n}),
// test_block waits for its context.
func testClasses() []workers.Class {
	return []workers.Class{
		testClass{name: "test_fail", work: func(_ context.Context, job *river.Job[testArgs]) error {
			var p struct{ Cancel bool }
			_ = json.Unmarshal(job.Args.Parameters, &p)
			if p.Cancel {
				return workers.Permanent(errors.New("bad parameters: nothing to do"))
			}
			return fmt.Errorf("boom on attempt %d", job.Attempt)
		}},
		testClass{name: "test_panic", work: func(context.Context, *river.Job[testArgs]) error {
			panic("kaboom")
		}},
		testClass{name: "test_flaky", work: func(ctx context.Context, job *river.Job[testArgs]) error {
			var p struct {
				FailAttempts int `json:"fail_attempts"`
			}
			_ = json.Unmarshal(job.Args.Parameters, &p)
			if job.Attempt <= p.FailAttempts {
				return fmt.Errorf("flaky failure %d", job.Attempt)
			}
			workers.SetResult(ctx, map[string]int{"attempt": job.Attempt})
			return nil
		}},
		testClass{name: "test_block", work: func(ctx context.Context, _ *river.Job[testArgs]) error {
			<-ctx.Done()
			return ctx.Err()
		}},
	}
}

type bundle struct {
	clock    *clock
	pool     *pgxpool.Pool
	registry *workers.Registry
	river    *river.Client[pgx.Tx]
	sched    *scheduler.Scheduler
	url      string
}

type setupOpts struct {
	cfg       scheduler.Config
	threshold int
}

// setup gives a fresh database, a registry with the real and test classes,
// an unstarted River client with the recorder, and a scheduler on a clock
// set to a fixed instant.
func setup(t *testing.T, opts setupOpts) *bundle {
	t.Helper()
	url := ownedDatabase(t)
	return setupOn(t, url, dbtest.Pool(t, url), opts)
}

// ownedDatabase is a fresh database whose scheduled_jobs these tests own:
// without the default schedules the migrations add.
func ownedDatabase(t testing.TB) string {
	t.Helper()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	_, err := pool.Exec(context.Background(), "TRUNCATE scheduled_jobs RESTART IDENTITY CASCADE")
	require.NoError(t, err)
	return url
}

func setupOn(t testing.TB, url string, pool *pgxpool.Pool, opts setupOpts) *bundle {
	t.Helper()
	registry, err := workers.NewRegistry(append(testClasses(),
		noop.New(), httprequest.New(httprequest.Config{}), sql.New(sql.Config{Enabled: true, Pool: pool}))...)
	require.NoError(t, err)
	require.NoError(t, registry.AddAliases(map[string]string{`App\Jobs\Noop`: "noop"}))
	client := schedtest.NewClient(t, pool, registry, scheduler.RecorderConfig{FailureAlertThreshold: opts.threshold})
	clk := newClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	cfg := opts.cfg
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	return &bundle{
		clock: clk, pool: pool, registry: registry, river: client, url: url,
		sched: scheduler.New(pool, client, registry, dbtest.Logger(), cfg),
	}
}

// startRiver starts working jobs until the test ends.
func (b *bundle) startRiver(t *testing.T) {
	t.Helper()
	require.NoError(t, b.river.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.river.StopAndCancel(ctx)
	})
}

// insertSchedule inserts a scheduled_jobs row from column values and
// returns its id.
func (b *bundle) insertSchedule(t *testing.T, cols map[string]any) int64 {
	t.Helper()
	names, places, vals := "", "", []any{}
	for k, v := range cols {
		if names != "" {
			names, places = names+", ", places+", "
		}
		vals = append(vals, v)
		names += k
		places += fmt.Sprintf("$%d", len(vals))
	}
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		"INSERT INTO scheduled_jobs ("+names+") VALUES ("+places+") RETURNING id", vals...).Scan(&id))
	return id
}

func (b *bundle) tick(t *testing.T) scheduler.TickResult {
	t.Helper()
	res, err := b.sched.Tick(context.Background())
	require.NoError(t, err)
	return res
}

// scalar runs a query returning one value.
func scalar[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	return dbtest.Scalar[T](t, pool, sql, args...)
}

// scheduledFor lists the scheduled_for of every River job of a schedule, in order.
func scheduledFor(t *testing.T, pool *pgxpool.Pool, id int64) []time.Time {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT (args->>'scheduled_for')::timestamptz FROM river_job
		WHERE args @> jsonb_build_object('scheduled_job_id', $1::bigint) ORDER BY 1`, id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	for i := range out {
		out[i] = out[i].UTC()
	}
	return out
}

// eventually polls cond until it holds or 20 seconds pass.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond, fmt.Sprintf(msg, args...))
}
