package main_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestChaosDatabaseOutage: under a load of every-second schedules the
// database becomes unreachable for a while (the proxy between the daemon
// and the server refuses and cuts every connection) and comes back. The
// daemon must stay up, say 503 on /readyz during the outage and 200 after,
// and finish runs again within 5 seconds of the database's return.
func TestChaosDatabaseOutage(t *testing.T) {
	t.Parallel()

	const (
		schedules     = 20
		resumeWithin  = 5 * time.Second
		readyzTimeout = 30 * time.Second
	)
	const outage = 5 * time.Second
	rounds := 1
	if chaosFull {
		rounds = 3
	}
	ctx := context.Background()
	url := migratedURL(t)
	pool := observerPool(t, url)
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy)
		SELECT 'load-' || g, 'noop', '* * * * * *', 'allow' FROM generate_series(1, $1) g`, schedules)
	require.NoError(t, err)
	p := newProxy(t, "")
	d := startDaemon(t, "DATABASE_URL="+p.via(t, url), "ATIS_SOFT_STOP_TIMEOUT=2s", "ATIS_POLL_INTERVAL=1s")
	addr := waitFor(t, d.lines, "ready")["http_addr"].(string)
	finishedSince := func(since time.Time) int {
		return dbtest.Scalar[int](t, pool, `SELECT count(*) FROM job_logs WHERE status = 'completed' AND end_time > $1`, since.UTC())
	}
	require.True(t, poll(20*time.Second, 100*time.Millisecond, func() bool { return finishedSince(time.Now().Add(-time.Minute)) > schedules }),
		"runs complete before the outage")

	for round := 1; round <= rounds; round++ {
		p.setDown(true)
		down := time.Now()
		sawNotReady := false
		for time.Since(down) < outage {
			if !d.alive() {
				t.Fatalf("round %d: the daemon exited %s into the outage:\n%s", round, time.Since(down).Round(time.Millisecond), tail(d.output.String(), 20))
			}
			if readyz(addr) == http.StatusServiceUnavailable {
				sawNotReady = true
			}
			time.Sleep(250 * time.Millisecond)
		}
		require.True(t, sawNotReady, "round %d: /readyz never answered 503 during a %s outage", round, outage)

		p.setDown(false)
		back := time.Now()
		require.True(t, poll(readyzTimeout, 100*time.Millisecond, func() bool { return readyz(addr) == http.StatusOK }),
			"round %d: /readyz not 200 within %s of the database's return", round, readyzTimeout)
		ready := time.Since(back)
		resumed := poll(resumeWithin, 50*time.Millisecond, func() bool { return finishedSince(back) > 0 })
		var first time.Time
		_ = pool.QueryRow(ctx, `SELECT coalesce(min(end_time), 'epoch') FROM job_logs WHERE status = 'completed' AND end_time > $1`, back.UTC()).Scan(&first)
		t.Logf("database outage round %d: %s down; /readyz 200 after %s; first run finished %s after the return",
			round, outage, ready.Round(time.Millisecond), first.Sub(back.UTC()).Round(time.Millisecond))
		require.True(t, d.alive(), "round %d: the daemon exited after the outage", round)
		if !resumed {
			var states string
			_ = pool.QueryRow(ctx, `SELECT coalesce(string_agg(status || ' x' || n, ', '), 'none') FROM (
				SELECT status, count(*) AS n FROM job_logs WHERE coalesce(end_time, start_time, now() AT TIME ZONE 'UTC') > $1 GROUP BY status) s`,
				back.UTC()).Scan(&states)
			t.Fatalf("round %d: no run finished within %s of the database's return; job_logs since: %s; the daemon's last lines:\n%s",
				round, resumeWithin, states, tail(d.output.String(), 15))
		}
	}
	d.stop(t)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
