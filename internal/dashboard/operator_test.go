package dashboard_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dashboard"
)

// section returns the part of body inside the element with id, up to its
// closing tag name (the first one: sections do not nest).
func section(t *testing.T, body, id, tag string) string {
	t.Helper()
	start := strings.Index(body, `id="`+id+`"`)
	require.GreaterOrEqual(t, start, 0, "no #%s", id)
	end := strings.Index(body[start:], "</"+tag+">")
	require.GreaterOrEqual(t, end, 0, "#%s is not closed", id)
	return body[start : start+end]
}

// fireColumns counts the columns of a schedule page's fire times.
func fireColumns(t *testing.T, body string) []string {
	t.Helper()
	m := regexp.MustCompile(`<table id="fires"><thead><tr>(.*?)</tr>`).FindStringSubmatch(body)
	require.NotNil(t, m, body)
	var cols []string
	for _, c := range regexp.MustCompile(`<th>(.*?)</th>`).FindAllStringSubmatch(m[1], -1) {
		cols = append(cols, c[1])
	}
	return cols
}

// TestOverviewAttention: the overview lists what needs a person: schedules
// that cannot run, with why; failing schedules with since when and their
// last failure; failing integrations and failing deliveries (none of these
// were on it).
func TestOverviewAttention(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	_, body, _ := get(t, client(t), b.srv.URL+"/")

	cannot := section(t, body, "cannot-run", "section")
	require.Contains(t, cannot, "Cannot run (1)")
	require.Contains(t, cannot, fmt.Sprintf(`<a href="/schedules/%d">broken-cron</a>`, b.ids.invalid))
	require.Contains(t, cannot, "minute 61 is out of range")

	failing := section(t, body, "failing", "section")
	require.Contains(t, failing, "Failing since")
	require.Contains(t, failing, "Last failure")
	// The streak began with run 900001, 30 minutes ago; the last failure
	// (last_run_at) was 4 minutes ago.
	require.Regexp(t, `30m 0\ds ago`, failing)
	require.Regexp(t, `4m 0\ds ago`, failing)

	integ := section(t, body, "failing-integrations", "section")
	require.Contains(t, integ, fmt.Sprintf(`<a href="/integrations#integration-%d">Moodle students</a>`, b.ids.integration))
	require.Contains(t, integ, fmt.Sprintf(`href="/integrations/syncs/%d"`, b.ids.failedSync))
	require.Contains(t, integ, "1h 00m ago")
	require.NotContains(t, integ, "Calendar", "never synced is not failing")

	deliveries := section(t, body, "failing-deliveries", "section")
	require.Contains(t, deliveries, "Ops webhook")
	require.Contains(t, deliveries, fmt.Sprintf(`href="/deliveries?integration=%d&amp;status=failed">1</a>`, b.ids.webhook))
	require.Contains(t, deliveries, "webhook answered 503", "the latest error")
	require.Contains(t, deliveries, "3h 00m ago", "failing since the oldest was created")

	t.Run("AllClear", func(t *testing.T) {
		t.Parallel()

		b := setup(t, "", "127.0.0.1:9464")
		ctx := context.Background()
		for _, sql := range []string{
			`UPDATE scheduled_jobs SET schedule_error = NULL, cron_expression = '1 * * * *', consecutive_failures = 0`,
			`INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, end_time, status)
				SELECT id, 'full', now(), now(), 'completed' FROM integrations`,
			`UPDATE notification_deliveries SET status = 'delivered', last_error = NULL`,
		} {
			_, err := b.pool.Exec(ctx, sql)
			require.NoError(t, err, sql)
		}
		_, body, _ := get(t, client(t), b.srv.URL+"/")
		require.NotContains(t, body, `id="cannot-run"`)
		require.Contains(t, body, "No schedule is failing.")
		require.Contains(t, body, "No integration is failing.")
		require.Contains(t, body, "Every notification is getting through.")
	})
}

// TestDeliveriesAndSyncs: a deliveries page lists each notification per
// integration with its status, attempts and last error; sync rows open to
// their sync log; a sync run that no schedule started names its
// integration (it said "Schedule: —").
func TestDeliveriesAndSyncs(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	c := client(t)

	t.Run("Deliveries", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, b.srv.URL+"/deliveries")
		require.Contains(t, body, `href="/deliveries"`, "in the navigation")
		totals := section(t, body, "delivery-totals", "table")
		require.Contains(t, totals, "Ops webhook")
		list := section(t, body, "deliveries", "table")
		for _, want := range []string{"Exam results published", "Downtime tonight", "Welcome", "webhook answered 410 Gone", "webhook answered 503",
			`<span class="st st-failed">failed</span>`, `<span class="st st-pending">pending</span>`, `<span class="st st-delivered">delivered</span>`,
			`data-label="Attempts">5<`, `data-label="Attempts">2<`} {
			require.Contains(t, list, want)
		}

		_, body, _ = get(t, c, b.srv.URL+"/deliveries?integration=Ops+webhook&status=failed")
		list = section(t, body, "deliveries", "table")
		require.Contains(t, list, "Exam results published")
		require.NotContains(t, list, "Downtime tonight")
		_, body, _ = get(t, c, b.srv.URL+"/deliveries?integration=nope")
		require.Contains(t, body, "no one integration has the id or name")
	})

	t.Run("SyncLog", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, b.srv.URL+"/integrations")
		require.Contains(t, body, fmt.Sprintf(`<a href="/integrations/syncs/%d">%d</a>`, b.ids.failedSync, b.ids.failedSync))
		require.Contains(t, body, fmt.Sprintf(`id="integration-%d"`, b.ids.integration))

		_, body, _ = get(t, c, fmt.Sprintf("%s/integrations/syncs/%d", b.srv.URL, b.ids.failedSync))
		require.Contains(t, body, "Moodle students")
		require.Contains(t, body, "upstream said no")
		require.Contains(t, body, `&#34;requests&#34;: 4`)
		require.Contains(t, body, fmt.Sprintf(`<a href="/runs/%d">run %d</a>`, b.ids.syncRun, b.ids.syncRun))

		code, _, _ := get(t, c, b.srv.URL+"/integrations/syncs/999999")
		require.Equal(t, 404, code)
	})

	t.Run("SyncRunNamesItsIntegration", func(t *testing.T) {
		t.Parallel()

		owner := fmt.Sprintf(`<span class="muted">sync of</span> <a href="/integrations#integration-%d">Moodle students</a>`, b.ids.integration)
		_, body, _ := get(t, c, b.srv.URL+"/runs?class=integration_sync")
		require.Contains(t, body, owner)
		_, body, _ = get(t, c, fmt.Sprintf("%s/runs/%d", b.srv.URL, b.ids.syncRun))
		require.Contains(t, body, owner)
		require.NotContains(t, body, "<td>— ·", "no schedule shown as a dash")
		require.Contains(t, body, fmt.Sprintf(`<a href="/integrations/syncs/%d">sync %d</a>`, b.ids.failedSync, b.ids.failedSync))
	})
}

// TestDurationsAndRunSummary: durations under a second show milliseconds
// (they showed "0s"); a run's page starts with a summary: status, attempts
// n of max, scheduled-for, next retry; a schedule in the dashboard's zone
// shows its fire times once (there were two identical UTC columns).
func TestDurationsAndRunSummary(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	c := client(t)
	ctx := context.Background()

	t.Run("Milliseconds", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, b.srv.URL+"/runs?class=integration_sync")
		require.Contains(t, body, `data-label="Duration">250 ms</td>`)
		_, body, _ = get(t, c, fmt.Sprintf("%s/runs/%d", b.srv.URL, b.ids.syncRun))
		require.Contains(t, body, "(250 ms)")
		_, err := b.pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, is_active, last_run_at, last_run_status, last_run_duration)
			VALUES ('quick', 'noop', 60, false, now(), 'success', 0)`)
		require.NoError(t, err)
		_, body, _ = get(t, c, b.srv.URL+"/schedules?q=quick")
		require.Contains(t, body, "success</span> &lt;1s", "a whole-seconds column that holds 0")
		require.NotContains(t, body, " 0s")
	})

	t.Run("Summary", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, fmt.Sprintf("%s/runs/%d", b.srv.URL, b.ids.run))
		summary := section(t, body, "summary", "section")
		require.Contains(t, summary, `<span class="st st-completed">completed</span>`)
		require.Contains(t, summary, "1 of 1")
		require.Contains(t, summary, "Scheduled for")
		require.Contains(t, section(t, summary, "summary-retry", "td"), "none")
		require.Less(t, strings.Index(body, `id="summary"`), strings.Index(body, "Attempt 1:"), "the summary comes first")
	})

	t.Run("NextRetry", func(t *testing.T) {
		t.Parallel()

		var id int64
		require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, is_active, max_attempts, retry_delay_minutes, parameters)
			VALUES ('retrying', 'http_request', 60, false, 3, 5, '{"url": "http://127.0.0.1:1/", "timeout_seconds": 2}') RETURNING id`).Scan(&id))
		run, err := b.harness.Scheduler.RunNow(ctx, id, nil)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			var state string
			err := b.pool.QueryRow(ctx, `SELECT state::text FROM river_job WHERE id = $1`, run).Scan(&state)
			return err == nil && state == "retryable"
		}, 30*time.Second, 50*time.Millisecond)
		require.Eventually(t, func() bool {
			_, body, _ := get(t, c, fmt.Sprintf("%s/runs/%d", b.srv.URL, run))
			return strings.Contains(body, `<span class="st st-failed">failed</span>`)
		}, 30*time.Second, 50*time.Millisecond)
		_, body, _ := get(t, c, fmt.Sprintf("%s/runs/%d", b.srv.URL, run))
		summary := section(t, body, "summary", "section")
		require.Contains(t, summary, `<span class="st st-failed">failed</span>`, "the attempt made, not the one waiting")
		require.Contains(t, section(t, body, "summary-attempts", "td"), "1 of 3")
		retry := section(t, body, "summary-retry", "td")
		require.Contains(t, retry, "UTC")
		require.Regexp(t, `in [45]m \d\ds`, retry)
	})

	t.Run("OneZoneColumn", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.smoke))
		require.Equal(t, []string{"UTC"}, fireColumns(t, body), "a UTC schedule on a UTC dashboard")
		_, body, _ = get(t, c, fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.hostile))
		require.Equal(t, []string{"Asia/Baku", "UTC"}, fireColumns(t, body))
	})
}

// TestTimeZone: with ATIS_DB_TIMEZONE set, pages show times in that zone,
// labelled (they always said UTC), and read the runs page's date filters
// in it.
func TestTimeZone(t *testing.T) {
	t.Parallel()

	baku, err := time.LoadLocation("Asia/Baku")
	require.NoError(t, err)
	b := setupConfig(t, dashboard.Config{Addr: "127.0.0.1:9464", Location: baku})
	c := client(t)

	_, body, _ := get(t, c, b.srv.URL+"/runs/900001")
	require.Contains(t, section(t, body, "zone", "footer"), "Times are Asia/Baku (&#43;04)")
	require.Regexp(t, `rendered \d{4}-\d\d-\d\d \d\d:\d\d:\d\d &#43;04`, body)
	require.Regexp(t, `<th>Started</th><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d &#43;04</td>`, body)

	_, body, _ = get(t, c, b.srv.URL+"/runs")
	require.Contains(t, body, "Started from (Asia/Baku (&#43;04))")

	// Ten minutes ago on Baku's clock: read as UTC it would be four hours
	// ahead, and match nothing.
	from := time.Now().In(baku).Add(-10 * time.Minute).Format("2006-01-02T15:04")
	_, body, _ = get(t, c, b.srv.URL+"/runs?class=noop&from="+from)
	require.Contains(t, body, ">800001<")
	require.NotContains(t, body, ">800003<")

	// A UTC schedule shows its zone and the dashboard's; a Baku one, once.
	_, body, _ = get(t, c, fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.smoke))
	require.Equal(t, []string{"UTC", "Asia/Baku (&#43;04)"}, fireColumns(t, body))
	_, body, _ = get(t, c, fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.hostile))
	require.Equal(t, []string{"Asia/Baku"}, fireColumns(t, body))
}

// TestRunsHideDispatch: quiet=1 hides the every-minute dispatch classes,
// is remembered by the form and the next page's link; date filters say
// their zone.
func TestRunsHideDispatch(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	c := client(t)
	_, body, _ := get(t, c, b.srv.URL+"/runs")
	require.Contains(t, body, ">integration_dispatch<")
	require.Contains(t, body, ">notification_dispatch<")
	require.Contains(t, body, `<input type="checkbox" name="quiet" value="1" id="quiet" >`)
	require.Contains(t, body, "Started from (UTC)")

	_, body, _ = get(t, c, b.srv.URL+"/runs?quiet=1")
	require.NotContains(t, body, ">integration_dispatch<")
	require.NotContains(t, body, ">notification_dispatch<")
	require.Contains(t, body, ">noop<")
	require.Contains(t, body, `id="quiet" checked>`)
	more := regexp.MustCompile(`href="(/runs\?[^"]+)" class="button"`).FindStringSubmatch(body)
	require.NotNil(t, more, "a next page")
	require.Contains(t, more[1], "quiet=1")
}
