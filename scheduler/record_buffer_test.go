package scheduler_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// bufferedBundle is a bundle whose River client records through a
// Recorder the test starts and stops itself.
func bufferedBundle(t *testing.T, cfg scheduler.RecorderConfig) (*bundle, *scheduler.Recorder) {
	t.Helper()
	return bufferedBundleLogging(t, cfg, dbtest.Logger())
}

// bufferedBundleLogging is bufferedBundle whose Recorder logs to logger.
func bufferedBundleLogging(t *testing.T, cfg scheduler.RecorderConfig, logger *slog.Logger) (*bundle, *scheduler.Recorder) {
	t.Helper()
	b := setup(t, setupOpts{})
	rec := scheduler.NewRecorder(b.pool, b.registry, logger, cfg)
	workers, err := b.registry.RiverWorkers()
	require.NoError(t, err)
	b.river, err = river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, Logger: dbtest.Logger(),
		Middleware: []rivertype.Middleware{rec}, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		RetryPolicy: scheduler.RetryPolicy{}, TestOnly: true, Workers: workers,
	})
	require.NoError(t, err)
	b.sched = scheduler.New(b.pool, b.river, b.registry, dbtest.Logger(), scheduler.Config{Now: b.clock.Now})
	require.NoError(t, rec.Start(context.Background()))
	t.Cleanup(rec.Stop)
	return b, rec
}

// TestRecorderBuffer: what the buffer writes late is what an unbuffered
// write would have written; a run the reconciler closed in the meantime is
// neither written twice nor counted twice.
func TestRecorderBuffer(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("StartAndEndInOneFlushKeepTheStartTime", func(t *testing.T) {
		t.Parallel()

		b, rec := bufferedBundle(t, scheduler.RecorderConfig{FlushInterval: time.Hour})
		b.startRiver(t)
		var ids []int64
		for range 20 {
			ids = append(ids, b.insertSchedule(t, map[string]any{"name": "n", "job_class": "noop", "interval_minutes": 60, "overlap_policy": "allow"}))
		}
		require.Equal(t, 20, b.tick(t).Enqueued)
		eventually(t, func() bool {
			return scalar[int](t, b.pool, "SELECT count(*) FROM river_job WHERE state = 'completed'") == 20
		}, "River completes every run")
		require.Equal(t, 20, scalar[int](t, b.pool, "SELECT count(*) FROM job_logs WHERE status = 'queued'"), "nothing written yet")
		rec.Stop() // flushes
		for _, id := range ids {
			logs := jobLogs(t, b, id)
			require.Len(t, logs, 1)
			require.Equal(t, "completed", logs[0].Status)
			require.True(t, logs[0].Started, "start_time set")
			require.True(t, logs[0].Ended)
			require.Equal(t, 1, scalar[int](t, b.pool, "SELECT run_count FROM scheduled_jobs WHERE id = $1", id))
			require.False(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))
		}
		require.Equal(t, 20, scalar[int](t, b.pool, "SELECT count(*) FROM performance_metrics"))
	})

	t.Run("RunClosedByTheReconcilerFirstIsNotCountedTwice", func(t *testing.T) {
		t.Parallel()

		b, rec := bufferedBundle(t, scheduler.RecorderConfig{FlushInterval: time.Hour})
		b.startRiver(t)
		id := b.insertSchedule(t, map[string]any{"name": "f", "job_class": "test_fail", "interval_minutes": 60})
		require.Equal(t, 1, b.tick(t).Enqueued)
		eventually(t, func() bool {
			return scalar[int](t, b.pool, "SELECT count(*) FROM river_job WHERE state = 'discarded'") == 1
		}, "River discards the failed run")
		rep, err := scheduler.NewReconciler(b.pool, dbtest.Logger(), scheduler.ReconcilerConfig{InstanceID: "r"}).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Closed)
		rec.Stop() // the buffered end arrives late
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 1, "one row for the attempt")
		require.Equal(t, "failed", logs[0].Status)
		require.Equal(t, 1, scalar[int](t, b.pool, "SELECT run_count FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, 1, scalar[int](t, b.pool, "SELECT failure_count FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, 1, scalar[int](t, b.pool, "SELECT count(*) FROM system_errors"))
	})

	t.Run("FailuresInOneFlushAlertOnce", func(t *testing.T) {
		t.Parallel()

		b, rec := bufferedBundle(t, scheduler.RecorderConfig{FlushInterval: time.Hour, FailureAlertThreshold: 3})
		b.startRiver(t)
		id := b.insertSchedule(t, map[string]any{"name": "f", "job_class": "test_fail", "interval_minutes": 60, "overlap_policy": "allow"})
		b.tick(t)
		for range 4 {
			_, err := b.sched.RunNow(ctx, id, nil)
			require.NoError(t, err)
		}
		eventually(t, func() bool {
			return scalar[int](t, b.pool, "SELECT count(*) FROM river_job WHERE state = 'discarded'") == 5
		}, "River discards five failed runs")
		rec.Stop()
		require.Equal(t, 5, scalar[int](t, b.pool, "SELECT consecutive_failures FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, 5, scalar[int](t, b.pool, "SELECT failure_count FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, 1, scalar[int](t, b.pool, "SELECT count(*) FROM system_notifications WHERE type = 'scheduled_job_failing'"),
			"the threshold was reached once, inside the flush")
	})
}
