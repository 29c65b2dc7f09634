package scheduler_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

func TestReconcile(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	host, _ := os.Hostname()

	// workedBy fires a schedule and makes its run look as if instance owner
	// were working attempt 1 of it.
	workedBy := func(t *testing.T, b *bundle, owner string, maxAttempts int) (scheduledJobID, jobID int64) {
		t.Helper()
		scheduledJobID = b.insertSchedule(t, map[string]any{"name": "r", "job_class": "noop", "interval_minutes": 60, "max_attempts": maxAttempts})
		require.Equal(t, 1, b.tick(t).Enqueued)
		jobID = scalar[int64](t, b.pool, "SELECT id FROM river_job")
		_, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '10 seconds',
			attempted_by = ARRAY[$1::text] WHERE id = $2`, owner, jobID)
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, `UPDATE job_logs SET status = 'processing', start_time = now() - interval '10 seconds'`)
		require.NoError(t, err)
		return scheduledJobID, jobID
	}
	register := func(t *testing.T, b *bundle, id, hostname string, pid int, age time.Duration) {
		t.Helper()
		_, err := b.pool.Exec(ctx, `INSERT INTO scheduler_instances (id, hostname, pid, heartbeat_at)
			VALUES ($1, $2, $3, now() - make_interval(secs => $4))`, id, hostname, pid, age.Seconds())
		require.NoError(t, err)
	}
	reconciler := func(b *bundle) *scheduler.Reconciler {
		return scheduler.NewReconciler(b.pool, dbtest.Logger(), scheduler.ReconcilerConfig{InstanceID: "me"})
	}

	t.Run("DeadProcessRunGoesBackToTheQueue", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id, jobID := workedBy(t, b, "ghost", 3)
		register(t, b, "ghost", "elsewhere", 1, 5*time.Minute)
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, scheduler.ReconcileReport{Rescued: 1, Closed: 1}, rep)
		require.Equal(t, "available", scalar[string](t, b.pool, "SELECT state::text FROM river_job WHERE id = $1", jobID))
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 2)
		require.Equal(t, "failed", logs[0].Status)
		require.Contains(t, *logs[0].Error, "the process working it stopped")
		require.Equal(t, logRow{Attempt: 2, Status: "queued", Result: "{}"}, logs[1], "attempt 2 waits in line")
		require.True(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id), "the run is not over")
		require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM scheduler_instances"), "the dead instance is forgotten")

		// River runs it again: attempt 2 gets a row of its own.
		b.startRiver(t)
		eventually(t, func() bool { return len(jobLogs(t, b, id)) == 2 && jobLogs(t, b, id)[1].Status == "completed" }, "attempt 2 completes")
		require.Equal(t, 2, jobLogs(t, b, id)[1].Attempt)
		require.Equal(t, "success", scalar[string](t, b.pool, "SELECT last_run_status FROM scheduled_jobs WHERE id = $1", id))
	})

	t.Run("DeadProcessOutOfAttemptsIsFinal", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id, jobID := workedBy(t, b, "ghost", 1)
		register(t, b, "ghost", "elsewhere", 1, 5*time.Minute)
		_, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, "discarded", scalar[string](t, b.pool, "SELECT state::text FROM river_job WHERE id = $1", jobID))
		logs := jobLogs(t, b, id)
		require.Equal(t, "failed", logs[0].Status)
		require.Contains(t, *logs[0].Error, "(ghost) died")
		require.Equal(t, "failed", scalar[string](t, b.pool, "SELECT last_run_status FROM scheduled_jobs WHERE id = $1", id))
		require.False(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, 1, scalar[int](t, b.pool, "SELECT count(*) FROM system_errors"))
	})

	t.Run("LiveProcessIsLeftAlone", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id, jobID := workedBy(t, b, "alive", 3)
		register(t, b, "alive", "elsewhere", 1, 5*time.Second)
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, rep)
		require.Equal(t, "running", scalar[string](t, b.pool, "SELECT state::text FROM river_job WHERE id = $1", jobID))
		require.Equal(t, "processing", jobLogs(t, b, id)[0].Status)
	})

	t.Run("SameHostDeadPidIsDeadAtOnce", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		_, jobID := workedBy(t, b, "restarted", 3)
		gone := exec.Command("true")
		require.NoError(t, gone.Run())
		register(t, b, "restarted", host, gone.Process.Pid, 0) // heartbeat fresh, pid gone
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Rescued)
		require.Equal(t, "available", scalar[string](t, b.pool, "SELECT state::text FROM river_job WHERE id = $1", jobID))
	})

	t.Run("CompletedButUnrecordedRunIsFinalized", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id, jobID := workedBy(t, b, "me", 3)
		_, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1`, jobID)
		require.NoError(t, err)
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, scheduler.ReconcileReport{Closed: 1}, rep, "finalizing the run also clears is_running")
		require.Equal(t, "completed", jobLogs(t, b, id)[0].Status)
		require.Equal(t, 1, scalar[int](t, b.pool, "SELECT run_count FROM scheduled_jobs WHERE id = $1", id))
		require.False(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))
	})

	t.Run("StuckRunningFlagIsCleared", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "s", "job_class": "noop", "interval_minutes": 60})
		_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET is_running = true WHERE id = $1", id)
		require.NoError(t, err)
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Flags)
		require.False(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))
	})
}
