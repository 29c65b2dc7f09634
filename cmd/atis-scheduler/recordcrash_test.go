package main_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestCrashBetweenWorkAndRecordIsRepaired kills the daemon after River has
// finished its runs but before the Recorder's buffer was written (a flush
// interval of an hour makes the window wide). The next daemon must leave
// job_logs and every schedule's bookkeeping as if nothing had happened:
// the reconciler rebuilds what River's job states prove.
func TestCrashBetweenWorkAndRecordIsRepaired(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer failing.Close()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	_, err := pool.Exec(ctx, `DELETE FROM scheduled_jobs;
		INSERT INTO scheduled_jobs (name, job_class, interval_minutes, overlap_policy)
			SELECT 'ok-' || g, 'noop', 60, CASE WHEN g % 2 = 0 THEN 'allow' ELSE 'skip' END FROM generate_series(1, 6) g`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters)
		VALUES ('broken', 'http_request', 60, jsonb_build_object('url', $1::text))`, failing.URL)
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + url, "ATIS_SOFT_STOP_TIMEOUT=1s"}

	first := startDaemon(t, append(env, "ATIS_RECORD_FLUSH_INTERVAL=1h")...)
	require.Eventually(t, func() bool {
		return dbtest.Scalar[int](t, pool, "SELECT count(*) FROM river_job WHERE finalized_at IS NOT NULL") == 7
	}, 30*time.Second, 20*time.Millisecond, "River finishes every run")
	require.NoError(t, first.cmd.Process.Kill())
	_ = first.cmd.Wait()
	require.Equal(t, 7, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM job_logs WHERE status IN ('queued', 'processing')"),
		"the records were still in the killed process's buffer")

	second := startDaemon(t, env...)
	waitFor(t, second.lines, "ready") // its start-up reconciliation has run
	require.Zero(t, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM job_logs WHERE status IN ('queued', 'processing')"))
	require.Equal(t, 6, dbtest.Scalar[int](t, pool, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE s.name LIKE 'ok-%' AND l.status = 'completed' AND l.attempt = 1`))
	require.Contains(t, dbtest.Scalar[string](t, pool, `SELECT l.error_message FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE s.name = 'broken'`), "answered 500")
	require.Equal(t, 7, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM job_logs"), "one row per attempt, none twice")
	type book struct {
		Runs, Failures int
		Status         string
		Running        bool
	}
	rows, err := pool.Query(ctx, `SELECT name, run_count, failure_count, last_run_status, is_running FROM scheduled_jobs ORDER BY name`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		var b book
		require.NoError(t, rows.Scan(&name, &b.Runs, &b.Failures, &b.Status, &b.Running))
		want := book{Runs: 1, Status: "success"}
		if name == "broken" {
			want = book{Runs: 1, Failures: 1, Status: "failed"}
		}
		require.Equal(t, want, b, name)
	}
	require.NoError(t, rows.Err())
	second.stop(t)
}
