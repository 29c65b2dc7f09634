package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChaosHostileRows: two replicas of the real binary on a database
// holding every kind of row that once stopped or stalled scheduling: a cron
// that never fires (February 30; it made every replica panic, and again at
// each restart), an empty cron field (a five-year search per plan), a
// next_run_at of -infinity and of year 1, @every 0s, and rows from before
// the write checks (a bad zone, a policy nobody knows, max_attempts past
// River's smallint). Both replicas stay up, the good every-second schedule
// keeps firing, and each bad row is explained where admins look.
func TestChaosHostileRows(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := migratedURL(t)
	pool := observerPool(t, url)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	exec(`INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy) VALUES ('good', 'noop', '* * * * * *', 'allow')`)
	exec(`INSERT INTO scheduled_jobs (name, job_class, cron_expression) VALUES
		('feb30', 'noop', '0 0 30 2 *'), ('apr31', 'noop', '0 0 0 31 4 *'), ('empty-field', 'noop', ', * * * * *'),
		('every0', 'noop', '@every 0s')`)
	exec(`INSERT INTO scheduled_jobs (name, job_class, cron_expression, next_run_at) VALUES
		('minus-infinity', 'noop', '*/5 * * * * *', '-infinity'), ('year-one', 'noop', '*/5 * * * * *', '0001-01-01'),
		('far-future', 'noop', '* * * * * *', 'infinity')`)
	// Rows from before the write checks: the trigger is off as they are written.
	exec(`BEGIN; SET LOCAL session_replication_role = replica;
		INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, needs_plan) VALUES ('old-zone', 'noop', '* * * * *', 'Mars/Olympus', true);
		INSERT INTO scheduled_jobs (name, job_class, cron_expression, misfire_policy, needs_plan) VALUES ('old-policy', 'noop', '* * * * *', 'sometimes', true);
		INSERT INTO scheduled_jobs (name, job_class, cron_expression, max_attempts, needs_plan) VALUES ('old-attempts', 'noop', '* * * * *', 40000, true);
		COMMIT`)

	env := []string{"DATABASE_URL=" + url, "ATIS_SOFT_STOP_TIMEOUT=2s"}
	replicas := []*daemon{startDaemon(t, env...), startDaemon(t, env...)}
	for _, d := range replicas {
		waitFor(t, d.lines, "ready")
	}
	runs := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
			WHERE s.name = 'good'`).Scan(&n))
		return n
	}
	before := runs()
	time.Sleep(chaosDuration(4*time.Second, 30*time.Second))
	for i, d := range replicas {
		require.True(t, d.alive(), "replica %d is up", i)
	}
	require.Greater(t, runs()-before, 2, "the good schedule kept firing")

	explained := map[string]string{
		"feb30": "February has no day 30", "apr31": "April has no day 31", "empty-field": "its seconds field matches no value",
		"every0": "@every needs a duration of at least 1s", "old-zone": `unknown time zone "Mars/Olympus"`,
		"old-policy": `misfire_policy "sometimes"`, "old-attempts": "max_attempts 40000 must be at most 1000",
	}
	require.Eventually(t, func() bool {
		for name, want := range explained {
			var msg *string
			var next *time.Time
			if pool.QueryRow(ctx, `SELECT schedule_error, CASE WHEN isfinite(next_run_at) THEN next_run_at END FROM scheduled_jobs
				WHERE name = $1`, name).Scan(&msg, &next) != nil || msg == nil || next != nil || !contains(*msg, want) {
				return false
			}
		}
		return true
	}, 10*time.Second, 100*time.Millisecond, "every bad row explained, with no next_run_at")
	for _, name := range []string{"minus-infinity", "year-one"} {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
			WHERE s.name = $1`, name).Scan(&n))
		require.Positive(t, n, "%s: the far past is due now", name)
	}
	var futureRuns int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE s.name = 'far-future'`).Scan(&futureRuns))
	require.Zero(t, futureRuns, "infinity waits")
	for _, d := range replicas {
		d.stop(t)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
