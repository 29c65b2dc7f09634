package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dashboard"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// pageTarget is the bound on every page's p95.
const pageTarget = 100 * time.Millisecond

// BenchmarkPages times every page against pageTarget on the data
// set: 10,000 schedules, 1,000,000 job_logs rows over 90 days (a tenth of
// them one busy schedule's, id 101), 100,000 sync logs of 50 integrations. Each page
// is requested 40 times after 5 warm-ups, one request at a time, through
// the daemon's handler with its default configuration (loopback, no token).
func BenchmarkPages(b *testing.B) {
	pool := dbtest.NewPool(b)
	start := time.Now()
	seedBulk(b, pool)
	fmt.Printf("dashboard bench: seeded 10,000 schedules, 1,000,000 job_logs, 100,000 sync logs in %s\n", time.Since(start).Round(time.Second))
	srv := serve(b, dashboard.Config{Pool: pool})
	month := time.Now().UTC().Add(-30 * 24 * time.Hour)
	pages := []string{"/", "/schedules", "/schedules?sort=name", "/schedules?q=bulk-99", "/schedules/101", "/schedules/5100",
		"/runs", "/runs?status=cancelled", "/runs?class=log_retention", "/runs?schedule=101", "/runs?schedule=4421&status=failed",
		"/runs?from=" + month.Format("2006-01-02T15:04") + "&to=" + month.Add(time.Hour).Format("2006-01-02T15:04"),
		"/runs/999999", "/integrations", "/licenses", "/retention"}
	for b.Loop() {
		var worst time.Duration
		for _, p := range pages {
			p50, p95 := timePage(b, srv.URL+p)
			worst = max(worst, p95)
			verdict := "ok"
			if p95 > pageTarget {
				verdict = "OVER"
			}
			fmt.Printf("dashboard %-60s p50 %6.1f ms  p95 %6.1f ms  (target %d ms: %.2f) %s\n", p,
				ms(p50), ms(p95), pageTarget.Milliseconds(), ms(p95)/ms(pageTarget), verdict)
		}
		b.ReportMetric(ms(worst), "worst_p95_ms")
		b.ReportMetric(ms(worst)/ms(pageTarget), "ratio_to_target")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func timePage(b *testing.B, u string) (p50, p95 time.Duration) {
	var times []time.Duration
	for i := range 45 {
		t0 := time.Now()
		resp, err := http.Get(u)
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(b, http.StatusOK, resp.StatusCode, u)
		if i >= 5 {
			times = append(times, time.Since(t0))
		}
	}
	slices.Sort(times)
	return times[len(times)/2], times[len(times)*95/100]
}

// seedBulk writes the data set.
func seedBulk(b *testing.B, pool *pgxpool.Pool) {
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO scheduled_jobs (id, name, job_class, cron_expression, interval_minutes, parameters, consecutive_failures, failure_count,
				run_count, last_run_status, last_run_at, last_run_duration, last_run_message)
			SELECT 100 + g, 'bulk-' || g, CASE WHEN g % 3 = 0 THEN 'noop' ELSE 'http_request' END,
				CASE WHEN g % 2 = 0 THEN (g % 60) || ' * * * *' END, CASE WHEN g % 2 = 1 THEN 5 + g % 120 END,
				'{"url": "https://svc.example.az/ping", "headers": {"Authorization": "Bearer x"}}',
				CASE WHEN g % 100 = 0 THEN 2 ELSE 0 END, g % 7, 100, CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'success' END,
				now() - (g % 600) * interval '1 minute', g % 30, CASE WHEN g % 100 = 0 THEN 'upstream answered 503' END
			FROM generate_series(1, 10000) g`,
		`SELECT setval(pg_get_serial_sequence('scheduled_jobs', 'id'), 20000)`,
		`UPDATE scheduled_jobs SET needs_plan = false, next_run_at = now() AT TIME ZONE 'UTC' + (id % 1440) * interval '1 minute'
			WHERE name LIKE 'bulk-%'`,
		`UPDATE scheduled_jobs SET schedule_error = 'cron_expression "61 * * * *": minute 61 is out of range', next_run_at = NULL
			WHERE name LIKE 'bulk-%' AND id % 1000 = 7`,
		`INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, result, error_message,
				start_time, end_time, duration, scheduled_job_id, created_at)
			SELECT g::text, g, CASE WHEN g % 1000 = 0 THEN 'log_retention' WHEN g % 3 = 0 THEN 'noop' ELSE 'http_request' END, 'default', 1,
				CASE WHEN g % 67 = 0 THEN 'cancelled' WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END,
				'{"scheduled_job_id": 1, "parameters": {}}', '{"status": 200, "bytes": 512}',
				CASE WHEN g % 20 = 0 THEN 'http_request: GET https://svc.example.az/ping answered 503' END,
				t, t + interval '2 seconds', 2, CASE WHEN g % 10 = 0 THEN 101 ELSE 101 + g % 10000 END, t
			FROM generate_series(1, 1000000) g, LATERAL (SELECT now() AT TIME ZONE 'UTC' - (1000000 - g) * interval '7776 milliseconds' AS t) x`,
		`INSERT INTO integrations (id, name, integration_type, provider, sync_frequency, last_sync_at)
			SELECT 1000 + g, 'integration-' || g, 'lms', 'http_json', 'hourly', now() - interval '30 minutes' FROM generate_series(1, 50) g`,
		`INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, end_time, status, records_processed, error_message)
			SELECT 1001 + g % 50, 'incremental', t, t + interval '20 seconds', CASE WHEN g % 31 = 0 THEN 'failed' ELSE 'completed' END, g % 500,
				CASE WHEN g % 31 = 0 THEN 'page 3: provider answered 500' END
			FROM generate_series(1, 100000) g, LATERAL (SELECT now() AT TIME ZONE 'UTC' - (100000 - g) * interval '77 seconds' AS t) x`,
		`INSERT INTO system_modules (code, name) VALUES ('lms', 'LMS') ON CONFLICT DO NOTHING`,
		`INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status)
			SELECT 'KEY-' || g, 'lms', 'standard', now() - interval '2 years', now() + (g - 1000) * interval '1 day',
				CASE WHEN g < 1000 THEN 'expired' ELSE 'active' END FROM generate_series(1, 2000) g`,
		`ANALYZE`,
	} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(b, err, sql)
	}
}
