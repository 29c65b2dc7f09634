package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/scheduler"
)

// TestLiveEdits runs the scheduler on the wall clock with a 30-second poll,
// so that only the change notifications can make it quick.
func TestLiveEdits(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{cfg: scheduler.Config{Now: time.Now, PollInterval: 30 * time.Second}})
	b.startRiver(t)
	require.NoError(t, b.sched.Start(ctx))
	t.Cleanup(b.sched.Stop)
	time.Sleep(200 * time.Millisecond) // let the listener subscribe; a miss would only cost the poll

	t.Run("InsertedRowFiresWithinOneSecondOfItsDueTime", func(t *testing.T) {
		due := time.Now().Add(1500 * time.Millisecond).UTC()
		id := b.insertSchedule(t, map[string]any{"name": "live", "job_class": "noop", "cron_expression": "0 0 1 1 *",
			"next_run_at": due})
		var started time.Time
		require.Eventually(t, func() bool {
			return b.pool.QueryRow(ctx, `SELECT start_time FROM job_logs WHERE scheduled_job_id = $1 AND status = 'completed'`, id).
				Scan(&started) == nil
		}, 10*time.Second, 10*time.Millisecond)
		lag := started.Sub(due)
		t.Logf("due %s, started %s: lag %s", due.Format(time.StampMilli), started.Format(time.StampMilli), lag)
		require.GreaterOrEqual(t, lag, time.Duration(0), "never before its due time")
		require.Less(t, lag, time.Second)
	})

	t.Run("CronRowFiresOnItsTicks", func(t *testing.T) {
		id := b.insertSchedule(t, map[string]any{"name": "every2s", "job_class": "noop", "cron_expression": "*/2 * * * * *"})
		require.Eventually(t, func() bool {
			return scalar[int](t, b.pool, `SELECT count(*) FROM job_logs WHERE scheduled_job_id = $1 AND status = 'completed'`, id) >= 2
		}, 10*time.Second, 20*time.Millisecond)
		rows, err := b.pool.Query(ctx, `SELECT (payload->>'scheduled_for')::timestamptz, start_time FROM job_logs
			WHERE scheduled_job_id = $1 AND status = 'completed' ORDER BY 1`, id)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var due, started time.Time
			require.NoError(t, rows.Scan(&due, &started))
			require.Zero(t, due.Second()%2, "fires on even seconds")
			require.Less(t, started.Sub(due), time.Second)
		}
		_, err = b.pool.Exec(ctx, "UPDATE scheduled_jobs SET is_active = false WHERE id = $1", id)
		require.NoError(t, err)
	})

	t.Run("EditAndPauseTakeEffectWithinOneSecond", func(t *testing.T) {
		id := b.insertSchedule(t, map[string]any{"name": "edit", "job_class": "noop", "cron_expression": "0 0 1 1 *"})
		require.Eventually(t, func() bool {
			return scalar[*time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id) != nil
		}, time.Second, 10*time.Millisecond, "planned within 1 s of the insert")

		_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET cron_expression = '0 12 * * *', timezone = 'Asia/Baku' WHERE id = $1", id)
		require.NoError(t, err)
		want := nextBakuNoon(time.Now())
		require.Eventually(t, func() bool {
			next := scalar[*time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id)
			return next != nil && next.Equal(want)
		}, time.Second, 10*time.Millisecond, "re-planned within 1 s of the edit")

		_, err = b.pool.Exec(ctx, "UPDATE scheduled_jobs SET is_active = false WHERE id = $1", id)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			return scalar[bool](t, b.pool, "SELECT next_run_at IS NULL AND NOT needs_plan FROM scheduled_jobs WHERE id = $1", id)
		}, time.Second, 10*time.Millisecond, "paused within 1 s")
	})
}

func nextBakuNoon(now time.Time) time.Time {
	baku, _ := time.LoadLocation("Asia/Baku")
	n := now.In(baku)
	noon := time.Date(n.Year(), n.Month(), n.Day(), 12, 0, 0, 0, baku)
	if !noon.After(now) {
		noon = noon.AddDate(0, 0, 1)
	}
	return noon.UTC()
}
