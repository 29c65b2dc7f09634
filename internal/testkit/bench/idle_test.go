package bench_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/benchtable"
	"github.com/atis-edu/atis-scheduler/internal/testkit/procstat"
)

// BenchmarkIdle: the real binary with its default settings and 1,000 noop
// schedules none of which is due (once a year, on 1 January), plus the
// schedules the migrations add; measured for 30 s after a 5 s settling.
//
//   - CPU: utime+stime from /proc/<pid>/stat over the 30 s (100 ticks/s).
//   - RSS: the highest VmRSS sampled each second.
//   - Queries/s: with pg_stat_statements loaded, the calls on the daemon's
//     database; otherwise the database's xact_commit+xact_rollback delta in
//     pg_stat_database (each autocommit statement is one transaction; a
//     backend flushes these counters when idle at most every 10 s, so the
//     figure is ±10 s of one session's work; the benchmark's own first
//     read is subtracted).
//
// Target: RSS < 40 MB, CPU < 1 %.
func BenchmarkIdle(b *testing.B) {
	for b.Loop() {
		n := scaled(1_000, 50)
		window := scaledDuration(30*time.Second, 10*time.Second)
		url := newURLWithSchedules(b, repeat("0 0 0 1 1 *", n))
		obs := observerPool(b, url)
		d := startDaemon(b, url)
		time.Sleep(5 * time.Second)

		counter := queryCounter(b, obs)
		q0 := counter()
		t0, err := procstat.CPUTicks(d.pid)
		require.NoError(b, err)
		began := time.Now()
		var rssKB int64
		for time.Since(began) < window {
			rssKB = max(rssKB, procstat.StatusKB(d.pid, "VmRSS"))
			time.Sleep(time.Second)
		}
		t1, err := procstat.CPUTicks(d.pid)
		require.NoError(b, err)
		q1 := counter()
		secs := time.Since(began).Seconds()
		require.True(b, d.alive(), "atis-scheduler exited:\n%s", d.lastLines())
		d.stop(b)

		cpu := float64(t1-t0) / secs
		qps := float64(q1.n-q0.n-1) / secs // less the first read itself
		rss := float64(rssKB) / 1024
		fmt.Printf("idle (%d schedules not due, %s): CPU %.2f %%, RSS %.0f MB, %.1f queries/s (%s)\n", n, window.Round(time.Second), cpu, rss, qps, q1.source)
		b.ReportMetric(cpu, "cpu_%")
		b.ReportMetric(rss, "rss_MB")
		b.ReportMetric(qps, "queries/s")
		note := fmt.Sprintf("the real binary, default env, %d schedules due once a year plus the migrations' own (integration_dispatch fires every minute); queries/s from %s", n, q1.source)
		addRows(
			benchtable.Row{Scenario: "idle: RSS", Ours: fmt.Sprintf("%.0f MB", rss), Baseline: "—", Ratio: "—", Target: "< 40 MB", Met: benchtable.MetString(rss < 40)},
			benchtable.Row{Scenario: "idle: CPU", Ours: fmt.Sprintf("%.2f %%", cpu), Baseline: "—", Ratio: "—", Target: "< 1 %", Met: benchtable.MetString(cpu < 1)},
			benchtable.Row{Scenario: "idle: queries/s", Ours: fmt.Sprintf("%.1f", qps), Baseline: "—", Ratio: "—", Target: "reported", Met: "—", Note: note},
		)
	}
}

// queryCount is a reading of a query counter.
type queryCount struct {
	n      int64
	source string
}

// queryCounter returns a function reading how many statements the
// database has run: pg_stat_statements' calls when the server loads it,
// else pg_stat_database's transactions.
func queryCounter(b *testing.B, pool *pgxpool.Pool) func() queryCount {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var preload string
	require.NoError(b, pool.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries')`).Scan(&preload))
	source, sql := "pg_stat_database xact_commit+xact_rollback delta",
		`SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`
	if strings.Contains(preload, "pg_stat_statements") {
		if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err == nil {
			source, sql = "pg_stat_statements calls",
				`SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`
		}
	}
	return func() queryCount {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var n int64
		require.NoError(b, pool.QueryRow(ctx, sql).Scan(&n))
		return queryCount{n: n, source: source}
	}
}
