package main_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestTwinsSharingAHostnameLeaveEachOthersRunsAlone: two daemons with the
// same hostname but each in its own pid namespace (containers with host
// networking, cloned VMs). The second one cannot see the first one's pid;
// it must not take that for death and run the first one's job again.
func TestTwinsSharingAHostnameLeaveEachOthersRunsAlone(t *testing.T) {
	t.Parallel()

	unshare, err := exec.LookPath("unshare")
	if err != nil || exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "true").Run() != nil {
		t.Skip("unshare --pid cannot run here (needs root and util-linux); the reconciler's unit tests cover the rule")
	}
	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	_, err = pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters, max_attempts, retry_delay_minutes)
		VALUES ('slow', 'sql', 60, '{"statement": "SELECT pg_sleep(20)"}', 3, 0)`)
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + url, "ATIS_ENABLE_SQL_JOBS=true", "ATIS_SOFT_STOP_TIMEOUT=1s"}
	attempts := func() (n int, status string) {
		_ = pool.QueryRow(ctx, `SELECT count(*), min(l.status) FROM job_logs l JOIN scheduled_jobs j ON j.id = l.scheduled_job_id
			WHERE j.name = 'slow'`).Scan(&n, &status)
		return n, status
	}

	first := startDaemon(t, env...)
	waitFor(t, first.lines, "ready")
	require.Eventually(t, func() bool { _, s := attempts(); return s == "processing" }, 20*time.Second, 20*time.Millisecond)

	twin := startCommand(t, exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--kill-child",
		binary, "run", "--log-format", "json"), env...)
	waitFor(t, twin.lines, "ready") // its start-up reconciliation has run
	time.Sleep(time.Second)
	n, status := attempts()
	require.Equal(t, 1, n, "the twin must not hand the first daemon's run back to the queue")
	require.Equal(t, "processing", status)
	require.Equal(t, "running", dbtest.Scalar[string](t, pool, "SELECT state::text FROM river_job"))
	require.Equal(t, 1, dbtest.Scalar[int](t, pool, "SELECT attempt FROM river_job"))
	require.Equal(t, 2, dbtest.Scalar[int](t, pool, "SELECT count(DISTINCT host_key) FROM scheduler_instances"))
}
