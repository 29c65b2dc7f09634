package scheduler_test

import (
	"cmp"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
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
	// register records a process in the pid space hostKey (this one's when
	// empty) as last heard of age ago.
	register := func(t *testing.T, b *bundle, id, hostname, hostKey string, pid int, age time.Duration) {
		t.Helper()
		_, err := b.pool.Exec(ctx, `INSERT INTO scheduler_instances (id, hostname, pid, host_key, heartbeat_at)
			VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5))`, id, hostname, pid, cmp.Or(hostKey, scheduler.HostKey()), age.Seconds())
		require.NoError(t, err)
	}
	// A short DeadAfter: the test cluster is younger than the default, and
	// silence is not judged within DeadAfter of the server's start.
	reconciler := func(b *bundle) *scheduler.Reconciler {
		return scheduler.NewReconciler(b.pool, dbtest.Logger(), scheduler.ReconcilerConfig{InstanceID: "me", DeadAfter: time.Second})
	}

	t.Run("DeadProcessRunGoesBackToTheQueue", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id, jobID := workedBy(t, b, "ghost", 3)
		register(t, b, "ghost", "elsewhere", "boot:other/pid[1]", 1, 5*time.Minute)
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
		register(t, b, "ghost", "elsewhere", "boot:other/pid[1]", 1, 5*time.Minute)
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
		register(t, b, "alive", "elsewhere", "boot:other/pid[1]", 1, 0)
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
		register(t, b, "restarted", host, "", gone.Process.Pid, 0) // heartbeat fresh, pid gone
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Rescued)
		require.Equal(t, "available", scalar[string](t, b.pool, "SELECT state::text FROM river_job WHERE id = $1", jobID))
	})

	// Containers with host networking, cloned VMs: the same hostname, each
	// its own pid space. The other's pid means nothing here; while its
	// heartbeat is fresh it is alive.
	t.Run("SameHostnameOtherPidSpaceIsAlive", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id, jobID := workedBy(t, b, "twin", 3)
		gone := exec.Command("true")
		require.NoError(t, gone.Run())
		register(t, b, "twin", host, "boot:"+host+"/pid[4026532177]", gone.Process.Pid, 0)
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, rep)
		require.Equal(t, "running", scalar[string](t, b.pool, "SELECT state::text FROM river_job WHERE id = $1", jobID))
		require.Equal(t, "processing", jobLogs(t, b, id)[0].Status)
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

	// River UI's cancel of a run that waits: River's attempt is one behind
	// the queued row's, and the run is over, cancelled; its retry puts the
	// same attempt back in line.
	t.Run("CancelledWhileWaitingThenRetried", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "w", "job_class": "noop", "interval_minutes": 60})
		require.Equal(t, 1, b.tick(t).Enqueued)
		jobID := scalar[int64](t, b.pool, "SELECT id FROM river_job")
		_, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1`, jobID)
		require.NoError(t, err)
		rep, err := reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, scheduler.ReconcileReport{Closed: 1}, rep)
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 1)
		require.Equal(t, "cancelled", logs[0].Status)
		require.Equal(t, "cancelled", scalar[string](t, b.pool, "SELECT last_run_status FROM scheduled_jobs WHERE id = $1", id))
		require.False(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))

		_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'available', finalized_at = NULL WHERE id = $1`, jobID)
		require.NoError(t, err)
		rep, err = reconciler(b).Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, scheduler.ReconcileReport{Reopened: 1, Flags: 1}, rep)
		logs = jobLogs(t, b, id)
		require.Len(t, logs, 1)
		require.Equal(t, "queued", logs[0].Status)
		require.True(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))
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

// TestHeartbeatNeverWaitsForAPass: a reconciliation pass stuck behind a
// lock (a long migration, a vacuum full) neither stops the heartbeat nor
// runs for ever.
func TestHeartbeatNeverWaitsForAPass(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	rec := scheduler.NewReconciler(b.pool, dbtest.Logger(), scheduler.ReconcilerConfig{
		InstanceID: "beating", Heartbeat: 50 * time.Millisecond, Interval: 100 * time.Millisecond, PassTimeout: 300 * time.Millisecond,
	})
	require.NoError(t, rec.Register(ctx))
	require.NoError(t, rec.Start(ctx))
	require.NoError(t, rec.Start(ctx), "a second Start is a no-op")

	// Every pass reads job_logs: hold it locked for a while.
	locker, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = locker.Exec(ctx, "LOCK TABLE job_logs IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	beats := map[time.Time]bool{}
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		beats[scalar[time.Time](t, b.pool, "SELECT heartbeat_at FROM scheduler_instances WHERE id = 'beating'")] = true
	}
	require.NoError(t, locker.Rollback(ctx))
	require.GreaterOrEqual(t, len(beats), 10, "the heartbeat went on while passes waited on the lock")

	rec.Stop()
	rec.Stop()
	require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM scheduler_instances"), "Stop deregisters")
}

// TestReplicaDeclaredDeadRegistersAgain: a process whose registration
// another replica removed says so loudly and registers again at its next
// heartbeat, rather than staying invisible (and its jobs up for rescue).
func TestReplicaDeclaredDeadRegistersAgain(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	rec := scheduler.NewReconciler(b.pool, dbtest.Logger(), scheduler.ReconcilerConfig{
		InstanceID: "zombie", Heartbeat: 50 * time.Millisecond,
	})
	rec.Stop() // before Start: a no-op
	require.NoError(t, rec.Register(ctx))
	require.NoError(t, rec.Start(ctx))
	t.Cleanup(rec.Stop)
	_, err := b.pool.Exec(ctx, "DELETE FROM scheduler_instances WHERE id = 'zombie'")
	require.NoError(t, err)
	eventually(t, func() bool {
		return scalar[int](t, b.pool, "SELECT count(*) FROM scheduler_instances WHERE id = 'zombie'") == 1
	}, "registered again")
}
