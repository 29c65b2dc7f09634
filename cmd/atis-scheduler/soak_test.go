package main_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// soakSample is one observation of the daemon during the soak.
type soakSample struct {
	at         time.Duration
	goroutines int64
	rssKB      int64
	conns      int64
	completed  int64 // job_logs rows completed so far
	waiting    int64 // river jobs not yet finalized
}

// TestSoak (make test-soak; not in CI): 10,000 schedules, each firing once a
// minute, spread over the seconds, for 10 minutes on one daemon. Every 30
// seconds it samples the daemon's goroutines (/metrics go_goroutines), its
// RSS and its database sessions; none may grow: the last third's highest
// is at most 1.2 times the first third's highest, plus a little.
// ATIS_SOAK_DURATION and ATIS_SOAK_SCHEDULES change the size.
func TestSoak(t *testing.T) {
	if os.Getenv("ATIS_SOAK") == "" {
		t.Skip("the soak test runs with ATIS_SOAK=1 (make test-soak)")
	}
	duration := 10 * time.Minute
	if s := os.Getenv("ATIS_SOAK_DURATION"); s != "" {
		var err error
		duration, err = time.ParseDuration(s)
		require.NoError(t, err, "ATIS_SOAK_DURATION")
	}
	schedules := 10_000
	if s := os.Getenv("ATIS_SOAK_SCHEDULES"); s != "" {
		var err error
		schedules, err = strconv.Atoi(s)
		require.NoError(t, err, "ATIS_SOAK_SCHEDULES")
	}
	const every = 30 * time.Second

	ctx := context.Background()
	url := migratedURL(t)
	pool := observerPool(t, url)
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression)
		SELECT 'soak-' || g, 'noop', (g % 60) || ' * * * * *' FROM generate_series(1, $1) g`, schedules)
	require.NoError(t, err)
	d := startDaemon(t, "DATABASE_URL="+url, "ATIS_SOFT_STOP_TIMEOUT=5s")
	addr := waitFor(t, d.lines, "ready")["http_addr"].(string)
	pid := d.cmd.Process.Pid

	start := time.Now()
	var samples []soakSample
	// The first sample comes after 30 seconds: by then the pool and the
	// queue have warmed up.
	tick := time.NewTicker(every)
	defer tick.Stop()
	for range tick.C {
		s := soakSample{at: time.Since(start).Round(time.Second), rssKB: procStatusKB(pid, "VmRSS")}
		g, err := metric(addr, "go_goroutines")
		require.NoError(t, err, "the daemon's /metrics")
		s.goroutines = int64(g)
		require.NoError(t, pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'atis-scheduler'),
				(SELECT count(*) FROM job_logs WHERE status = 'completed'),
				(SELECT count(*) FROM river_job WHERE finalized_at IS NULL)`).Scan(&s.conns, &s.completed, &s.waiting))
		samples = append(samples, s)
		require.True(t, d.alive(), "the daemon exited:\n%s", tail(d.output.String(), 20))
		if time.Since(start) >= duration {
			break
		}
	}
	d.stop(t)

	var table strings.Builder
	fmt.Fprintf(&table, "soak: %d schedules (each once a minute), %s, one daemon\n", schedules, duration)
	fmt.Fprintf(&table, "%8s %10s %8s %8s %10s %8s %8s\n", "at", "goroutines", "RSS MB", "sessions", "completed", "runs/s", "waiting")
	for i, s := range samples {
		rate := "-"
		if i > 0 {
			rate = fmt.Sprintf("%.0f", float64(s.completed-samples[i-1].completed)/(s.at-samples[i-1].at).Seconds())
		}
		fmt.Fprintf(&table, "%8s %10d %8d %8d %10d %8s %8d\n", s.at, s.goroutines, s.rssKB>>10, s.conns, s.completed, rate, s.waiting)
	}
	t.Log(table.String())

	require.GreaterOrEqual(t, len(samples), 3, "samples")
	third := len(samples) / 3
	first, last := samples[:third], samples[len(samples)-third:]
	flat := func(name string, slack int64, v func(soakSample) int64) {
		t.Helper()
		var firstMax, lastMax int64
		for _, s := range first {
			firstMax = max(firstMax, v(s))
		}
		for _, s := range last {
			lastMax = max(lastMax, v(s))
		}
		require.LessOrEqual(t, float64(lastMax), 1.2*float64(firstMax)+float64(slack),
			"%s grew: the first third's highest %d, the last third's %d", name, firstMax, lastMax)
	}
	flat("goroutines", 20, func(s soakSample) int64 { return s.goroutines })
	flat("RSS (kB)", 16<<10, func(s soakSample) int64 { return s.rssKB })
	flat("database sessions", 2, func(s soakSample) int64 { return s.conns })
	end := samples[len(samples)-1]
	require.Greater(t, end.completed, samples[len(samples)-1-third].completed, "runs still complete in the last third")
}
