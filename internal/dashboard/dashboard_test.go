package dashboard_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/httprequest"
	"github.com/atis-edu/atis-scheduler/workers/noop"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dashboard"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/workers"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const testToken = "test-token-0123456789abcdef"

// Planted by seed: none of these may ever be rendered raw.
const (
	hostileName   = `<img src=x onerror=alert(1)>`
	hostileError  = `<script>alert(2)</script> upstream said no (GET https://svc:` + urlSecret + `@lms.example.az/health)`
	headerSecret  = "Bearer hdr-s3cret-value"
	urlSecret     = "url-pa55word"
	integSecret   = "integ-t0ken-secret"
	integHdrValue = "integ-header-secret"
)

type testBundle struct {
	pool    *pgxpool.Pool
	harness *schedtest.Harness
	srv     *httptest.Server
	ids     seeded
}

type seeded struct {
	hostile, smoke, failing, invalid, paused int64
	run                                      int64
	integration, webhook                     int64 // Moodle students (failing), Ops webhook (deliveries)
	failedSync                               int64 // Moodle's failed sync log
	syncRun                                  int64 // the integration_sync run that wrote it, from no schedule
}

// classes are the job classes of every dashboard test: http_request,
// whose parameters hold secrets to redact, and noop.
var classes = []workers.Class{httprequest.New(httprequest.Config{}), noop.New()}

// serve serves the dashboard built from cfg, with a registry of classes,
// until the test ends.
func serve(tb testing.TB, cfg dashboard.Config) *httptest.Server {
	tb.Helper()
	registry, err := workers.NewRegistry(classes...)
	require.NoError(tb, err)
	cfg.Registry = registry
	ui := dashboard.New(cfg)
	require.NotNil(tb, ui)
	srv := httptest.NewServer(ui)
	tb.Cleanup(srv.Close)
	return srv
}

// setup serves a dashboard on a fresh database holding seed's rows, with
// token as ATIS_UI_TOKEN and addr as the listener's configured address.
func setup(t *testing.T, token, addr string) *testBundle {
	t.Helper()
	return setupConfig(t, dashboard.Config{Token: token, Addr: addr})
}

// setupConfig is setup with more of the dashboard's configuration (its
// pool, runner and logger are the test's).
func setupConfig(t *testing.T, cfg dashboard.Config) *testBundle {
	t.Helper()
	pool := dbtest.NewPool(t)
	h := schedtest.Start(t, pool, classes...)
	cfg.Pool, cfg.Runner = pool, h.Scheduler
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := serve(t, cfg)
	return &testBundle{pool: pool, harness: h, srv: srv, ids: seed(t, pool, h)}
}

// seed plants a small but complete picture: schedules of every kind (one
// named with HTML, one with secret headers), runs, an integration with
// credentials and syncs, licenses, and a retention run.
func seed(t testing.TB, pool *pgxpool.Pool, h *schedtest.Harness) seeded {
	t.Helper()
	ctx := context.Background()
	var s seeded
	q := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	row := func(dst *int64, sql string, args ...any) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(dst), sql)
	}
	row(&s.hostile, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, parameters)
		VALUES ($1, 'http_request', '30 2 * * *', 'Asia/Baku', $2) RETURNING id`, hostileName,
		fmt.Sprintf(`{"url": "https://svc:%s@lms.example.az/health", "headers": {"Authorization": %q, "X-Ref": {"from_config": "lms.api_token"}}}`, urlSecret, headerSecret))
	row(&s.smoke, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, is_active) VALUES ('smoke', 'noop', 15, true) RETURNING id`)
	row(&s.failing, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters, consecutive_failures, failure_count, run_count,
			last_run_status, last_run_message, last_run_at, last_run_duration)
		VALUES ('lms-health', 'http_request', '*/5 * * * *', '{"url": "https://lms.example.az/health"}', 3, 3, 10, 'failed', $1,
			now() - interval '4 minutes', 2) RETURNING id`, hostileError)
	row(&s.invalid, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, schedule_error, needs_plan)
		VALUES ('broken-cron', 'noop', '61 * * * *', 'cron_expression "61 * * * *": minute 61 is out of range', false) RETURNING id`)
	row(&s.paused, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, is_active) VALUES ('nightly-report', 'noop', '0 3 * * *', false) RETURNING id`)
	q(`UPDATE scheduled_jobs SET next_run_at = now() AT TIME ZONE 'UTC' + (id % 7 + 1) * interval '3 minutes', needs_plan = false
		WHERE is_active AND schedule_error IS NULL AND id <> $1`, s.hostile)
	q(`UPDATE scheduled_jobs SET schedule_error = 'cron_expression "61 * * * *": minute 61 is out of range', next_run_at = NULL WHERE id = $1`, s.invalid)

	var err error
	s.run, err = h.Scheduler.RunNow(ctx, s.smoke, nil)
	require.NoError(t, err)
	h.Wait(t, s.run)
	// A failed run with a hostile error message, and the last day's history.
	q(`INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, payload, error_message, error_trace, start_time, end_time, duration, scheduled_job_id, result)
		VALUES ('900001', 900001, 'http_request', 1, 'failed', $2, $1, 'goroutine 1 [running]', now() AT TIME ZONE 'UTC' - interval '30 minutes',
			now() AT TIME ZONE 'UTC' - interval '29 minutes', 60, $3, '{"status": 500}')`,
		hostileError, fmt.Sprintf(`{"parameters": {"headers": {"Authorization": %q}}}`, headerSecret), s.failing)
	q(`INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, start_time, end_time, duration, scheduled_job_id)
		SELECT (800000 + g)::text, 800000 + g, 'noop', 1, CASE WHEN g % 9 = 0 THEN 'failed' WHEN g % 13 = 0 THEN 'cancelled' ELSE 'completed' END,
			now() AT TIME ZONE 'UTC' - g * interval '7 minutes', now() AT TIME ZONE 'UTC' - g * interval '7 minutes' + interval '3 seconds', 3, $1
		FROM generate_series(1, 200) g`, s.smoke)
	// A run still going long after its usual 2 seconds.
	q(`INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, start_time, scheduled_job_id)
		VALUES ('900002', 900002, 'http_request', 1, 'processing', now() AT TIME ZONE 'UTC' - interval '20 minutes', $1)`, s.failing)

	q(`INSERT INTO scheduler_instances (id, hostname, pid, version, started_at, heartbeat_at)
		VALUES ('app1_4242_00aa11bb22cc', 'app1', 4242, 'v1.4.0', now() AT TIME ZONE 'UTC' - interval '26 hours', now() AT TIME ZONE 'UTC' - interval '4 seconds'),
		       ('app2_977_00dd33ee44ff', 'app2', 977, 'v1.4.0', now() AT TIME ZONE 'UTC' - interval '3 hours', now() AT TIME ZONE 'UTC' - interval '9 minutes')`)

	row(&s.integration, `INSERT INTO integrations (name, integration_type, provider, sync_frequency, config, credentials, last_sync_at)
		VALUES ('Moodle students', 'lms', 'http_json', 'hourly', $1, $2, now() - interval '2 hours') RETURNING id`,
		fmt.Sprintf(`{"base_url": "https://moodle.example.az/api", "headers": {"X-Api-Key": %q}}`, integHdrValue),
		fmt.Sprintf(`{"type": "bearer", "token": %q}`, integSecret))
	q(`INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, end_time, status, records_processed, records_created, error_message)
		VALUES ($1, 'full', now() - interval '2 hours', now() - interval '119 minutes', 'completed', 1200, 1200, NULL)`, s.integration)
	row(&s.failedSync, `INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, end_time, status, records_processed,
			records_created, error_message, sync_summary)
		VALUES ($1, 'incremental', now() - interval '1 hour', now() - interval '59 minutes', 'failed', 0, 0, $2, '{"pages": 3, "requests": 4}')
		RETURNING id`, s.integration, hostileError)
	// The run integration_dispatch started for it: no schedule, 250 ms.
	s.syncRun = 900004
	q(`INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, payload, result, error_message, start_time, end_time, duration)
		VALUES ('900004', 900004, 'integration_sync', 1, 'failed', $1, $2, 'sync failed', now() - interval '61 minutes',
			now() - interval '61 minutes' + interval '250 milliseconds', 0)`,
		fmt.Sprintf(`{"parameters": {"integration_id": %d}, "scheduled_for": "0001-01-01T00:00:00Z"}`, s.integration),
		fmt.Sprintf(`{"sync_log_id": %d}`, s.failedSync))
	// The every-minute dispatch classes.
	q(`INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, start_time, end_time, duration)
		SELECT (700000 + g)::text, 700000 + g, CASE WHEN g % 2 = 0 THEN 'integration_dispatch' ELSE 'notification_dispatch' END, 1, 'completed',
			now() AT TIME ZONE 'UTC' - g * interval '1 minute', now() AT TIME ZONE 'UTC' - g * interval '1 minute' + interval '40 milliseconds', 0
		FROM generate_series(1, 4) g`)
	// A webhook whose deliveries fail: one given up, one retrying, one delivered.
	row(&s.webhook, `INSERT INTO integrations (name, integration_type, provider, config) VALUES ('Ops webhook', 'notification', 'webhook', '{}')
		RETURNING id`)
	q(`INSERT INTO system_notifications (type, title, message) VALUES ('alert', 'Exam results published', 'x'), ('maintenance', 'Downtime tonight', 'y'),
		('announcement', 'Welcome', 'z')`)
	q(`INSERT INTO notification_deliveries (notification_id, integration_id, status, attempts, last_error, next_attempt_at, delivered_at, created_at, updated_at)
		SELECT n.id, $1, v.status, v.attempts, v.err, now() + interval '4 minutes', v.delivered, now() - interval '3 hours', now() - v.ago
		FROM system_notifications n JOIN (VALUES
			('Exam results published', 'failed', 5, 'webhook answered 410 Gone', NULL::timestamp, interval '2 hours'),
			('Downtime tonight', 'pending', 2, 'webhook answered 503', NULL, interval '10 minutes'),
			('Welcome', 'delivered', 1, NULL, now() - interval '3 hours', interval '3 hours')) v(title, status, attempts, err, delivered, ago)
		ON v.title = n.title`, s.webhook)
	q(`INSERT INTO integrations (name, integration_type, provider, sync_frequency) VALUES ('Calendar', 'calendar', 'http_json', 'daily')`)

	q(`INSERT INTO system_modules (code, name) VALUES ('lms', 'LMS') ON CONFLICT DO NOTHING`)
	var lic int64
	row(&lic, `INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status, issued_to)
		VALUES ('KEY-AAAA-BBBB-1234', 'lms', 'standard', now() - interval '1 year', now() + interval '5 days', 'active', 'Baku State School')
		RETURNING id`)
	q(`INSERT INTO license_expiry_warnings (license_id, expires_at, threshold_days) SELECT id, expires_at, 7 FROM licenses WHERE id = $1`, lic)
	q(`INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status)
		VALUES ('KEY-CCCC-DDDD-9876', 'lms', 'trial', now() - interval '40 days', now() - interval '10 days', 'expired')`)

	q(`INSERT INTO job_logs (job_id, river_job_id, job_class, attempt, status, start_time, end_time, duration, result)
		VALUES ('900003', 900003, 'log_retention', 1, 'completed', now() AT TIME ZONE 'UTC' - interval '5 hours', now() AT TIME ZONE 'UTC' - interval '5 hours', 12,
		'{"tables": {"job_logs": {"days": 90, "source": "default", "cutoff": "2026-08-25T03:15:00Z", "deleted": 4321, "batches": 1, "complete": true,
		  "archive_file": "/var/lib/atis/archive/job_logs/2026-11-23.jsonl.gz"}}, "budget_exhausted": false}')`)
	return s
}

// client is a browser stand-in: a cookie jar, and redirects left to the
// test.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string, http.Header) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

var (
	loginNonce = regexp.MustCompile(`name="login_csrf" value="([^"]+)"`)
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// login signs c in as name and returns the session's CSRF token.
func login(t *testing.T, c *http.Client, base, token, name string) (int, string) {
	t.Helper()
	_, body, _ := get(t, c, base+"/login")
	m := loginNonce.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	code, _, _ := post(t, c, base+"/login", url.Values{"login_csrf": {m[1]}, "token": {token}, "name": {name}, "next": {"/"}})
	if code != http.StatusSeeOther {
		return code, ""
	}
	_, body, _ = get(t, c, base+"/")
	m = csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	return code, m[1]
}

// pages are every page of a seeded dashboard.
func (b *testBundle) pages() []string {
	return []string{"/", "/schedules", "/schedules?sort=name", fmt.Sprintf("/schedules/%d", b.ids.hostile),
		fmt.Sprintf("/schedules/%d", b.ids.failing), fmt.Sprintf("/schedules/%d", b.ids.invalid), "/runs", "/runs?status=failed",
		fmt.Sprintf("/runs/%d", b.ids.run), "/runs/900001", "/runs?quiet=1", fmt.Sprintf("/runs/%d", b.ids.syncRun), "/integrations",
		fmt.Sprintf("/integrations/syncs/%d", b.ids.failedSync), "/deliveries", "/licenses", "/retention", "/login"}
}

func TestPages(t *testing.T) {
	t.Parallel()

	b := setup(t, "", "127.0.0.1:9464")
	c := client(t)
	want := map[string][]string{
		"/":             {"Instances", "Queue", "Attempts in the last 24 hours", "<svg", "lms-health", "Running longer than usual", "900002", "Next 20 fire times", "smoke"},
		"/schedules":    {"Cannot run (1)", "minute 61 is out of range", "every 15 minutes", "daily at 02:30", "Asia/Baku", "paused"},
		"/integrations": {"Moodle students", "failing", "1200", "Calendar", "now (never synced)"},
		"/licenses":     {"Expiring within 30 days", "Baku State School", "7 d", "…1234", "…9876"},
		"/retention":    {"job_logs", "4321", "/var/lib/atis/archive/job_logs/2026-11-23.jsonl.gz", "90 days"},
		"/runs/900001":  {"Attempt 1", "goroutine 1 [running]", "failed"},
	}
	for _, p := range b.pages() {
		code, body, h := get(t, c, b.srv.URL+p)
		require.Equal(t, http.StatusOK, code, p)
		require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'none'", p)
		require.NotContains(t, h.Get("Content-Security-Policy"), "unsafe-inline", p)
		require.Equal(t, "DENY", h.Get("X-Frame-Options"), p)
		require.Equal(t, "no-referrer", h.Get("Referrer-Policy"), p)
		require.NotContains(t, body, "<script", p)
		require.NotContains(t, body, "style=", p)
		for _, s := range want[p] {
			require.Contains(t, body, s, p)
		}
	}

	t.Run("ScheduleDetail", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.hostile))
		// 02:30 in Baku (UTC+4, no DST) is 22:30 UTC: ten of them.
		require.Equal(t, 10, strings.Count(body, " 02:30:00 &#43;04"), body)
		require.Equal(t, 10, strings.Count(body, " 22:30:00 UTC"), body)
		require.Contains(t, body, "[redacted]")
		require.Contains(t, body, "lms.api_token") // a from_config reference names a key, not a value
	})

	t.Run("Keyset", func(t *testing.T) {
		t.Parallel()

		_, err := b.pool.Exec(context.Background(), `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, next_run_at, needs_plan)
			SELECT 'bulk-' || g, 'noop', 60, now() AT TIME ZONE 'UTC' + g * interval '1 minute', false FROM generate_series(1, 250) g`)
		require.NoError(t, err)
		seen := map[string]bool{}
		next := "/schedules"
		for pages := 0; next != ""; pages++ {
			require.Less(t, pages, 5)
			_, body, _ := get(t, c, b.srv.URL+next)
			for _, m := range regexp.MustCompile(`>(bulk-\d+)<`).FindAllStringSubmatch(body, -1) {
				require.False(t, seen[m[1]], "%s twice", m[1])
				seen[m[1]] = true
			}
			next = ""
			if m := regexp.MustCompile(`href="(/schedules\?[^"]+)" class="button" id="more"`).FindStringSubmatch(body); m != nil {
				next = strings.ReplaceAll(m[1], "&amp;", "&")
			}
		}
		require.Len(t, seen, 250)
	})

	t.Run("RunFilters", func(t *testing.T) {
		t.Parallel()

		_, body, _ := get(t, c, b.srv.URL+"/runs?status=cancelled&schedule=smoke")
		require.Contains(t, body, "cancelled")
		require.NotContains(t, body, `<span class="st st-completed">`)
		_, body, _ = get(t, c, b.srv.URL+"/runs?schedule=no-such-schedule")
		require.Contains(t, body, "no schedule has the id or name")
		from := time.Now().UTC().Add(-10 * time.Minute).Format("2006-01-02T15:04")
		_, body, _ = get(t, c, b.srv.URL+"/runs?class=noop&from="+from)
		require.Contains(t, body, "800001")
		require.NotContains(t, body, ">800003<")
	})
}

// TestNothingRawOrSecret: a schedule named with HTML, error messages with
// script, secret headers, URL credentials and integration credentials show
// escaped or not at all, on every page.
func TestNothingRawOrSecret(t *testing.T) {
	t.Parallel()

	b := setup(t, testToken, "127.0.0.1:9464")
	c := client(t)
	code, _ := login(t, c, b.srv.URL, testToken, "Operator")
	require.Equal(t, http.StatusSeeOther, code)
	var sawEscaped bool
	for _, p := range b.pages() {
		_, body, _ := get(t, c, b.srv.URL+p)
		for _, raw := range []string{hostileName, "<img", "<script", headerSecret, "hdr-s3cret", urlSecret, integSecret, integHdrValue, testToken, "KEY-AAAA"} {
			require.NotContains(t, body, raw, "%s shows %q", p, raw)
		}
		sawEscaped = sawEscaped || strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;")
	}
	require.True(t, sawEscaped, "the hostile name is shown, escaped")
}

func TestAccess(t *testing.T) {
	t.Parallel()

	t.Run("NonLoopbackWithoutTokenIsOff", func(t *testing.T) {
		t.Parallel()

		require.Nil(t, dashboard.New(dashboard.Config{Addr: "0.0.0.0:9464"}))
		require.Nil(t, dashboard.New(dashboard.Config{Addr: ":9464"}))
	})

	t.Run("LoopbackWithoutTokenIsReadOnly", func(t *testing.T) {
		t.Parallel()

		b := setup(t, "", "127.0.0.1:9464")
		c := client(t)
		_, body, _ := get(t, c, b.srv.URL+"/schedules")
		require.Contains(t, body, `id="actions-off"`)
		require.Contains(t, body, "ATIS_UI_TOKEN")
		require.NotContains(t, body, `class="runnow"`)
		code, _, _ := post(t, c, fmt.Sprintf("%s/schedules/%d/pause", b.srv.URL, b.ids.smoke), url.Values{})
		require.Equal(t, http.StatusForbidden, code)
		requireActive(t, b, b.ids.smoke, true)
	})

	t.Run("RebindingHostRefused", func(t *testing.T) {
		t.Parallel()

		b := setup(t, "", "127.0.0.1:9464")
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/", nil)
		require.NoError(t, err)
		req.Host = "attacker.example:9464"
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	})

	t.Run("NonLoopbackNeedsSession", func(t *testing.T) {
		t.Parallel()

		b := setup(t, testToken, "0.0.0.0:9464")
		c := client(t)
		for _, p := range b.pages() {
			if p == "/login" {
				continue
			}
			code, _, h := get(t, c, b.srv.URL+p)
			require.Equal(t, http.StatusSeeOther, code, p)
			require.True(t, strings.HasPrefix(h.Get("Location"), "/login?next="), p)
		}
		code, _ := login(t, c, b.srv.URL, "wrong-token-0123456789", "Mallory")
		require.Equal(t, http.StatusUnauthorized, code)
		code, _ = login(t, c, b.srv.URL, testToken, "Operator")
		require.Equal(t, http.StatusSeeOther, code)
		code, _, _ = get(t, c, b.srv.URL+"/schedules")
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("SessionCookie", func(t *testing.T) {
		t.Parallel()

		b := setup(t, testToken, "127.0.0.1:9464")
		c := client(t)
		_, body, _ := get(t, c, b.srv.URL+"/login")
		nonce := loginNonce.FindStringSubmatch(body)[1]
		resp, err := c.PostForm(b.srv.URL+"/login", url.Values{"login_csrf": {nonce}, "token": {testToken}, "name": {"Operator"}})
		require.NoError(t, err)
		resp.Body.Close()
		var cookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "atis_session" {
				cookie = ck
			}
		}
		require.NotNil(t, cookie)
		require.True(t, cookie.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
		require.NotContains(t, cookie.Value, testToken)

		// A cookie whose payload was edited (another name, a later expiry)
		// is no session.
		payload, mac, _ := strings.Cut(cookie.Value, ".")
		raw, err := base64.RawURLEncoding.DecodeString(payload)
		require.NoError(t, err)
		forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), "Operator", "Admin", 1))) + "." + mac
		req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/schedules/%d/pause", b.srv.URL, b.ids.smoke), strings.NewReader(""))
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: "atis_session", Value: forged})
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		requireActive(t, b, b.ids.smoke, true)

		// A login form posted without its nonce (login CSRF) is refused.
		code, _, _ := post(t, client(t), b.srv.URL+"/login", url.Values{"token": {testToken}, "name": {"x"}})
		require.Equal(t, http.StatusForbidden, code)
	})
}

func requireActive(t *testing.T, b *testBundle, id int64, want bool) {
	t.Helper()
	var active bool
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT is_active FROM scheduled_jobs WHERE id = $1`, id).Scan(&active))
	require.Equal(t, want, active)
}

func TestActions(t *testing.T) {
	t.Parallel()

	b := setup(t, testToken, "127.0.0.1:9464")
	c := client(t)
	code, csrf := login(t, c, b.srv.URL, testToken, "Aysel Operator")
	require.Equal(t, http.StatusSeeOther, code)
	ctx := context.Background()
	pause := fmt.Sprintf("%s/schedules/%d/pause", b.srv.URL, b.ids.smoke)

	t.Run("NoCSRFNoAction", func(t *testing.T) {
		code, _, _ := post(t, c, pause, url.Values{"back": {"/schedules"}})
		require.Equal(t, http.StatusForbidden, code)
		code, _, _ = post(t, c, pause, url.Values{"csrf": {csrf + "x"}})
		require.Equal(t, http.StatusForbidden, code)
		requireActive(t, b, b.ids.smoke, true)
		// Another browser, without the session, with the right CSRF token.
		code, _, _ = post(t, client(t), pause, url.Values{"csrf": {csrf}})
		require.Equal(t, http.StatusUnauthorized, code)
		requireActive(t, b, b.ids.smoke, true)
	})

	t.Run("PauseResume", func(t *testing.T) {
		code, _, h := post(t, c, pause, url.Values{"csrf": {csrf}, "back": {"/schedules"}})
		require.Equal(t, http.StatusSeeOther, code)
		require.Equal(t, "/schedules", h.Get("Location"))
		requireActive(t, b, b.ids.smoke, false)
		_, body, _ := get(t, c, b.srv.URL+"/schedules")
		require.Contains(t, body, `Schedule &#34;smoke&#34; paused.`)
		code, _, _ = post(t, c, fmt.Sprintf("%s/schedules/%d/resume", b.srv.URL, b.ids.smoke), url.Values{"csrf": {csrf}, "back": {"https://evil.example/"}})
		require.Equal(t, http.StatusSeeOther, code)
		requireActive(t, b, b.ids.smoke, true)

		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM platform.audit_logs
			WHERE resource = 'scheduled_jobs' AND action IN ('pause', 'resume') AND new_state->>'performed_by_name' = 'Aysel Operator'
			  AND (new_state->>'id')::bigint = $1 AND notes LIKE '%by Aysel Operator%' AND ip_address = '127.0.0.1'`, b.ids.smoke).Scan(&n))
		require.Equal(t, 2, n)
	})

	t.Run("RunNow", func(t *testing.T) {
		code, _, _ := post(t, c, fmt.Sprintf("%s/schedules/%d/run", b.srv.URL, b.ids.smoke), url.Values{"csrf": {csrf}, "back": {"/"}})
		require.Equal(t, http.StatusSeeOther, code)
		var runID int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT (new_state->>'run_id')::bigint FROM platform.audit_logs
			WHERE action = 'run_now' AND new_state->>'performed_by_name' = 'Aysel Operator'`).Scan(&runID))
		require.Equal(t, "completed", b.harness.Wait(t, runID).Status)

		// A schedule that cannot run says why, and runs nothing.
		code, _, _ = post(t, c, fmt.Sprintf("%s/schedules/%d/run", b.srv.URL, b.ids.invalid), url.Values{"csrf": {csrf}, "back": {"/"}})
		require.Equal(t, http.StatusSeeOther, code)
		_, body, _ := get(t, c, b.srv.URL+"/")
		require.Contains(t, body, "was not run")
	})

	t.Run("PauseSwitch", func(t *testing.T) {
		code, _, _ := post(t, c, b.srv.URL+"/switches", url.Values{"csrf": {csrf}, "class": {"noop"}, "paused": {"true"}})
		require.Equal(t, http.StatusSeeOther, code)
		_, body, _ := get(t, c, b.srv.URL+"/")
		require.Contains(t, body, "<code>scheduler.paused.noop</code>")
		code, _, _ = post(t, c, b.srv.URL+"/switches", url.Values{"csrf": {csrf}, "class": {"noop"}, "paused": {"false"}})
		require.Equal(t, http.StatusSeeOther, code)
		var enabled bool
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT is_enabled FROM platform.feature_flags WHERE key = 'scheduler.paused.noop'`).Scan(&enabled))
		require.False(t, enabled)
		code, _, _ = post(t, c, b.srv.URL+"/switches", url.Values{"csrf": {csrf}, "class": {"'; DROP TABLE x"}, "paused": {"true"}})
		require.Equal(t, http.StatusBadRequest, code)
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM platform.audit_logs WHERE resource = 'platform.feature_flags'
			AND action IN ('pause_class', 'resume_class') AND new_state->>'performed_by_name' = 'Aysel Operator'`).Scan(&n))
		require.Equal(t, 2, n)
	})
}
