package scheduler

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dbtest"
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
