package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/metrics"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// scrape returns the exposition of m's handler.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// series lists the samples of name in an exposition, "labels value" each.
func series(text, name string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			out = append(out, strings.TrimSpace(rest))
		}
	}
	return out
}

// TestStateGauges: each state gauge says what the database holds, and is
// absent while there is nothing to say.
func TestStateGauges(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	m := metrics.New(pool, "test")

	t.Run("NothingToSay", func(t *testing.T) {
		text := scrape(t, m)
		for _, name := range []string{"atis_scheduler_instance_heartbeat_age_seconds", "atis_scheduler_schedule_consecutive_failures",
			"atis_scheduler_integration_failed_syncs", "atis_scheduler_deliveries_failing", "atis_scheduler_retention_pass_unfinished"} {
			require.Empty(t, series(text, name), name)
		}
	})

	_, err := pool.Exec(ctx, `
		INSERT INTO scheduler_instances (id, hostname, pid, heartbeat_at) VALUES ('quiet', 'h', 1, localtimestamp - interval '90 seconds');
		UPDATE scheduled_jobs SET last_run_at = localtimestamp - interval '3 hours' WHERE job_class = 'license_expiry_check';
		INSERT INTO scheduled_jobs (name, job_class, interval_minutes, consecutive_failures, is_active)
			VALUES ('broken', 'noop', 60, 4, false);
		INSERT INTO integrations (id, name, integration_type, provider, is_enabled) VALUES
			(901, 'sis', 'api', 'http_json', true), (902, 'mail', 'notification', 'smtp', true);
		INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, status) VALUES
			(901, 'full', localtimestamp - interval '4 hours', 'failed'),
			(901, 'full', localtimestamp - interval '3 hours', 'completed'),
			(901, 'full', localtimestamp - interval '2 hours', 'failed'),
			(901, 'full', localtimestamp - interval '1 hour', 'failed'),
			(901, 'full', localtimestamp, 'running');
		INSERT INTO system_notifications (id, type, title, message, level, start_at, target_institutions) VALUES
			(801, 'system', 'a', 'a', 'info', localtimestamp, '{}'), (802, 'system', 'b', 'b', 'info', localtimestamp, '{}'),
			(803, 'system', 'c', 'c', 'info', localtimestamp, '{}');
		INSERT INTO notification_deliveries (notification_id, integration_id, status, last_error, updated_at) VALUES
			(801, 902, 'failed', 'refused', localtimestamp),
			(802, 902, 'pending', 'timeout', localtimestamp),
			(803, 902, 'delivered', NULL, localtimestamp);
		INSERT INTO retention_progress (table_name, next_block) VALUES ('job_logs', 7)`)
	require.NoError(t, err)

	text := scrape(t, m)
	age := series(text, "atis_scheduler_instance_heartbeat_age_seconds")
	require.Len(t, age, 1)
	require.True(t, strings.HasPrefix(age[0], `{scheduler_instance="quiet"} `), age[0])
	seconds, err := strconv.ParseFloat(strings.Fields(age[0])[1], 64)
	require.NoError(t, err)
	require.InDelta(t, 90, seconds, 30)

	var brokenID string
	require.NoError(t, pool.QueryRow(ctx, "SELECT id::text FROM scheduled_jobs WHERE name = 'broken'").Scan(&brokenID))
	require.Equal(t, []string{`{job_class="noop",scheduled_job="broken",scheduled_job_id="` + brokenID + `"} 4`},
		series(text, "atis_scheduler_schedule_consecutive_failures"))
	require.Equal(t, []string{`{integration="sis"} 2`}, series(text, "atis_scheduler_integration_failed_syncs"),
		"the failures since the latest completed sync; the running one is not counted")
	require.Equal(t, []string{`{integration="mail",state="given_up"} 1`, `{integration="mail",state="retrying"} 1`},
		series(text, "atis_scheduler_deliveries_failing"))
	require.Equal(t, []string{`{table="job_logs"} 1`}, series(text, "atis_scheduler_retention_pass_unfinished"))

	var license string
	for _, s := range series(text, "atis_scheduler_class_last_run_timestamp_seconds") {
		if strings.HasPrefix(s, `{job_class="license_expiry_check"} `) {
			license = strings.Fields(s)[1]
		}
	}
	require.NotEmpty(t, license, "the active license check's last run:\n%s", text)
	at, err := strconv.ParseFloat(license, 64)
	require.NoError(t, err)
	require.InDelta(t, time.Now().Add(-3*time.Hour).Unix(), at, 60, "an instant, whatever ATIS_DB_TIMEZONE the rows are written in")
}

// TestReadinessAndThreshold: atis_scheduler_ready follows the readiness
// check at each scrape; the failure-alert threshold is exported as set.
func TestReadinessAndThreshold(t *testing.T) {
	t.Parallel()

	m := metrics.New(nil, "test")
	var notReady error
	m.ObserveReadiness(func(context.Context) error { return notReady })
	m.SetFailureAlertThreshold(5)

	text := scrape(t, m)
	require.Equal(t, []string{"1"}, series(text, "atis_scheduler_ready"))
	require.Equal(t, []string{"5"}, series(text, "atis_scheduler_failure_alert_threshold"))

	notReady = errors.New("database does not answer")
	require.Equal(t, []string{"0"}, series(scrape(t, m), "atis_scheduler_ready"))
	require.Regexp(t, regexp.MustCompile(`(?m)^# HELP atis_scheduler_ready `), text)
}
