package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/scheduler"
)

// TestABurstRefreshesTheStatistics: enqueueing 1,500 runs into a river_job
// that the planner believes empty (analyzed empty, as after River's cleaner
// and autovacuum) makes the scheduler ANALYZE it, so that River's own
// statements stop joining its rows one by one (issue 18).
func TestABurstRefreshesTheStatistics(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{cfg: scheduler.Config{BatchSize: 1000}})
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `ANALYZE river_job`)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone)
		SELECT 'burst-' || g, 'noop', '* * * * *', 'UTC' FROM generate_series(1, 1500) g`)
	require.NoError(t, err)
	b.tick(t) // plans them for 12:01, a batch a cycle
	b.tick(t)
	b.clock.Set(time.Date(2026, 6, 1, 12, 1, 0, 0, time.UTC))
	for range 3 {
		b.tick(t)
	}
	require.Equal(t, 1500, scalar[int](t, b.pool, `SELECT count(*) FROM river_job`))
	require.Eventually(t, func() bool {
		return scalar[float64](t, b.pool, `SELECT reltuples::float8 FROM pg_class WHERE oid = 'river_job'::regclass`) >= 1000
	}, 20*time.Second, 100*time.Millisecond, "river_job's statistics still say it is empty")
}
