package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/dashboard"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/atis-edu/atis-scheduler/workers/httprequest"
	"github.com/atis-edu/atis-scheduler/workers/noop"
)

// riverUIBundle is a dashboard serving River UI over a River client that
// works our classes with the Recorder, and a browser signed in to it.
type riverUIBundle struct {
	pool    *pgxpool.Pool
	river   *river.Client[pgx.Tx]
	harness *schedtest.Harness
	srv     *httptest.Server
	http    *http.Client // signed in
}

// setupRiverUI serves River UI; the River client is started only when
// start says so (an unstarted one leaves runs waiting in the queue).
func setupRiverUI(t *testing.T, start bool) *riverUIBundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.NewPool(t)
	registry, err := workers.NewRegistry(httprequest.New(httprequest.Config{Pool: pool}), noop.New())
	require.NoError(t, err)
	rc := schedtest.NewClient(t, pool, registry, scheduler.RecorderConfig{})
	b := &riverUIBundle{pool: pool, river: rc,
		harness: &schedtest.Harness{Pool: pool, Scheduler: scheduler.New(pool, rc, registry, dbtest.Logger(), scheduler.Config{})}}
	if start {
		b.start(t)
	}
	reconciler := scheduler.NewReconciler(pool, dbtest.Logger(), scheduler.ReconcilerConfig{InstanceID: "test"})
	uiCtx, stopUI := context.WithCancel(ctx)
	t.Cleanup(stopUI)
	ui, err := dashboard.RiverUI(uiCtx, rc, dbtest.Logger())
	require.NoError(t, err)
	b.srv = serve(t, dashboard.Config{Pool: pool, Runner: b.harness.Scheduler, Token: testToken, Addr: "127.0.0.1:9464", RiverUI: ui,
		Reconcile: func(ctx context.Context) error { _, err := reconciler.FollowQueue(ctx); return err }})
	b.http = client(t)
	code, _ := login(t, b.http, b.srv.URL, testToken, "River Operator")
	require.Equal(t, http.StatusSeeOther, code)
	return b
}

func (b *riverUIBundle) start(t *testing.T) {
	t.Helper()
	require.NoError(t, b.river.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.river.StopAndCancel(ctx)
	})
}

// schedule inserts a paused schedule of class and returns its id.
func (b *riverUIBundle) schedule(t *testing.T, name, class, params string, maxAttempts int) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters, max_attempts, is_active)
		VALUES ($1, $2, '0 0 1 1 *', $3, $4, false) RETURNING id`, name, class, params, maxAttempts).Scan(&id))
	return id
}

// api calls River UI's API as the signed-in browser.
func (b *riverUIBundle) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+dashboard.RiverUIPrefix+"/api/"+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(got)
}

// logs are a run's job_logs rows, "attempt:status" in attempt order.
func (b *riverUIBundle) logs(t *testing.T, jobID int64) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT attempt || ':' || status FROM job_logs WHERE river_job_id = $1 ORDER BY attempt`, jobID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// waitState waits until River's row of the job is in state.
func (b *riverUIBundle) waitState(t *testing.T, jobID int64, state string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var got string
		err := b.pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, jobID).Scan(&got)
		return err == nil && got == state
	}, 30*time.Second, 20*time.Millisecond, "river_job %d never %s", jobID, state)
}

// bookkeeping is what the schedule says of its last run.
func (b *riverUIBundle) bookkeeping(t *testing.T, id int64) (status string, running bool) {
	t.Helper()
	var s *string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT last_run_status, is_running FROM scheduled_jobs WHERE id = $1`, id).Scan(&s, &running))
	if s != nil {
		status = *s
	}
	return status, running
}

// TestRiverUI: River UI is served at /river/ to signed-in operators only,
// under a CSP of its own; it never shows a schedule's secret; and a run
// cancelled or retried from its API leaves job_logs and the schedule's
// bookkeeping saying so.
func TestRiverUI(t *testing.T) {
	t.Parallel()

	t.Run("SignedInOperatorsOnly", func(t *testing.T) {
		t.Parallel()
		b := setupRiverUI(t, false)
		anon := client(t)
		code, _, h := get(t, anon, b.srv.URL+"/river/")
		require.Equal(t, http.StatusSeeOther, code)
		require.Equal(t, "/login?next=%2Friver%2F", h.Get("Location"))
		code, _, _ = get(t, anon, b.srv.URL+"/river/api/jobs?state=available")
		require.Equal(t, http.StatusUnauthorized, code)
		code, _, _ = post(t, anon, b.srv.URL+"/river/api/jobs/cancel", nil)
		require.Equal(t, http.StatusUnauthorized, code)
		// The read-only loopback pages do not link it to the anonymous.
		code, body, _ := get(t, anon, b.srv.URL+"/")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `id="river-ui"`, "linked: signing in opens it")

		// Without a token nobody can sign in: River UI is not served.
		pool := dbtest.NewPool(t)
		ui, err := dashboard.RiverUI(t.Context(), b.river, dbtest.Logger())
		require.NoError(t, err)
		srv := serve(t, dashboard.Config{Pool: pool, Addr: "127.0.0.1:9464", RiverUI: ui})
		code, _, _ = get(t, anon, srv.URL+"/river/")
		require.Equal(t, http.StatusNotFound, code)
		_, body, _ = get(t, anon, srv.URL+"/")
		require.NotContains(t, body, `id="river-ui"`)
	})

	t.Run("OwnCSP", func(t *testing.T) {
		t.Parallel()
		b := setupRiverUI(t, false)
		code, body, h := get(t, b.http, b.srv.URL+"/river/")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `src="/river/assets/`)
		csp := h.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'")
		require.Contains(t, csp, "frame-ancestors 'none'")
		require.Equal(t, "DENY", h.Get("X-Frame-Options"))
		code, body, h = get(t, b.http, b.srv.URL+"/")
		require.Equal(t, http.StatusOK, code)
		require.NotContains(t, h.Get("Content-Security-Policy"), "script-src", "our pages stay script-free")
		require.Contains(t, body, `<a href="/river/" id="river-ui"`)

		// A change asked by another site's page is refused, signed in or not.
		req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/river/api/jobs/cancel", strings.NewReader(`{"ids": ["1"]}`))
		require.NoError(t, err)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := b.http.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})

	t.Run("ArgsHoldNoSecret", func(t *testing.T) {
		t.Parallel()
		b := setupRiverUI(t, true)
		target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(target.Close)
		const headerSecret, urlSecret = "Bearer riverui-header-s3cret", "riverui-url-s3cret"
		u := strings.Replace(target.URL, "http://", "http://svc:"+urlSecret+"@", 1)
		id := b.schedule(t, "secret-call", "http_request",
			fmt.Sprintf(`{"url": %q, "headers": {"Authorization": %q}}`, u+"/health", headerSecret), 1)
		jobID, err := b.harness.Scheduler.RunNow(context.Background(), id, nil)
		require.NoError(t, err)
		require.Equal(t, "completed", b.harness.Wait(t, jobID).Status, "the run read its secrets from its schedule")
		b.waitState(t, jobID, "completed") // River's completer writes it after the Recorder
		for _, path := range []string{fmt.Sprintf("jobs/%d", jobID), "jobs?state=completed&limit=100"} {
			code, body := b.api(t, http.MethodGet, path, "")
			require.Equal(t, http.StatusOK, code, body)
			require.Contains(t, body, `"http_request"`, path)
			require.NotContains(t, body, "s3cret", path)
		}
	})

	t.Run("CancelWaitingThenRetry", func(t *testing.T) {
		t.Parallel()
		b := setupRiverUI(t, false) // nothing works the queue yet: the run waits
		id := b.schedule(t, "waits", "noop", "{}", 1)
		jobID, err := b.harness.Scheduler.RunNow(context.Background(), id, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"1:queued"}, b.logs(t, jobID))

		code, body := b.api(t, http.MethodPost, "jobs/cancel", fmt.Sprintf(`{"ids": ["%d"]}`, jobID))
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, []string{"1:cancelled"}, b.logs(t, jobID))
		status, running := b.bookkeeping(t, id)
		require.Equal(t, "cancelled", status)
		require.False(t, running)

		code, body = b.api(t, http.MethodPost, "jobs/retry", fmt.Sprintf(`{"ids": ["%d"]}`, jobID))
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, []string{"1:queued"}, b.logs(t, jobID), "back in line")
		_, running = b.bookkeeping(t, id)
		require.True(t, running)

		b.start(t)
		require.Equal(t, "completed", b.harness.Wait(t, jobID).Status)
		require.Equal(t, []string{"1:completed"}, b.logs(t, jobID))
		status, running = b.bookkeeping(t, id)
		require.Equal(t, "success", status)
		require.False(t, running)
	})

	t.Run("DeleteWaiting", func(t *testing.T) {
		t.Parallel()
		b := setupRiverUI(t, false)
		id := b.schedule(t, "deleted", "noop", "{}", 1)
		jobID, err := b.harness.Scheduler.RunNow(context.Background(), id, nil)
		require.NoError(t, err)
		_, running := b.bookkeeping(t, id)
		require.True(t, running)

		code, body := b.api(t, http.MethodPost, "jobs/delete", fmt.Sprintf(`{"ids": ["%d"]}`, jobID))
		require.Equal(t, http.StatusOK, code, body)
		// River's row is gone; ours says so and no longer waits.
		require.Equal(t, []string{"1:failed"}, b.logs(t, jobID))
		var msg string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT error_message FROM job_logs WHERE river_job_id = $1`, jobID).Scan(&msg))
		require.Contains(t, msg, "the queue no longer holds this job (deleted")
		_, running = b.bookkeeping(t, id)
		require.False(t, running)
	})

	t.Run("CancelRunningThenRetry", func(t *testing.T) {
		t.Parallel()
		b := setupRiverUI(t, true)
		var calls atomic.Int32
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				<-r.Context().Done() // the first call hangs until the run is cancelled
			}
		}))
		t.Cleanup(target.Close)
		id := b.schedule(t, "hangs", "http_request", fmt.Sprintf(`{"url": %q}`, target.URL+"/slow"), 3)
		jobID, err := b.harness.Scheduler.RunNow(context.Background(), id, nil)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return calls.Load() == 1 }, 30*time.Second, 20*time.Millisecond)

		code, body := b.api(t, http.MethodPost, "jobs/cancel", fmt.Sprintf(`{"ids": ["%d"]}`, jobID))
		require.Equal(t, http.StatusOK, code, body)
		o := b.harness.Wait(t, jobID)
		require.Equal(t, "cancelled", o.Status, o.Error)
		require.Equal(t, 1, o.Attempt)
		b.waitState(t, jobID, "cancelled")
		require.Equal(t, []string{"1:cancelled"}, b.logs(t, jobID), "not a failure, and no attempt 2 waiting")
		status, running := b.bookkeeping(t, id)
		require.Equal(t, "cancelled", status)
		require.False(t, running)

		code, body = b.api(t, http.MethodPost, "jobs/retry", fmt.Sprintf(`{"ids": ["%d"]}`, jobID))
		require.Equal(t, http.StatusOK, code, body)
		require.Eventually(t, func() bool { return len(b.logs(t, jobID)) == 2 }, 30*time.Second, 20*time.Millisecond)
		o = b.harness.Wait(t, jobID)
		require.Equal(t, "completed", o.Status, o.Error)
		require.Equal(t, []string{"1:cancelled", "2:completed"}, b.logs(t, jobID))
		status, running = b.bookkeeping(t, id)
		require.Equal(t, "success", status)
		require.False(t, running)
	})
}

// EnvRiverUIScreenshot names a file TestRiverUIBrowser also writes River
// UI's screenshot to (`make screenshot` points it at docs/river-ui.png).
const EnvRiverUIScreenshot = "ATIS_RIVER_UI_SCREENSHOT"

// TestRiverUIBrowser drives River UI in headless chromium: a link to it
// leads through sign-in to it, and it loads under its CSP without a
// console error and lists our runs by their class.
func TestRiverUIBrowser(t *testing.T) {
	t.Parallel()

	path := chromium(t)
	b := setupRiverUI(t, true)
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(target.Close)
	for _, s := range []struct{ name, class, params string }{
		{"smoke", "noop", "{}"},
		{"lms-health", "http_request", fmt.Sprintf(`{"url": %q}`, target.URL+"/health")},
		{"nightly-report", "noop", "{}"},
	} {
		id := b.schedule(t, s.name, s.class, s.params, 1)
		jobID, err := b.harness.Scheduler.RunNow(context.Background(), id, nil)
		require.NoError(t, err)
		require.Equal(t, "completed", b.harness.Wait(t, jobID).Status)
		b.waitState(t, jobID, "completed")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1440, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	var errs consoleErrors
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(errs.listen))
	defer cancel()
	require.NoError(t, chromedp.Do(ctx))
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(sctx, steps...))
	}

	// The navigation's link, signed out, leads through sign-in to River UI.
	run(chromedp.Navigate(b.srv.URL+"/"), chromedp.Click(chromedp.CSS("#river-ui")), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Browser Operator"),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#login-submit")))
	require.Eventually(t, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		loc, err := chromedp.Run(sctx, chromedp.Location())
		return err == nil && strings.HasPrefix(loc, b.srv.URL+"/river/")
	}, 30*time.Second, 50*time.Millisecond, "signed in onto River UI")

	run(chromedp.Navigate(b.srv.URL + "/river/jobs?state=completed"))
	var body string
	require.Eventually(t, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var err error
		body, err = chromedp.Run(sctx, chromedp.Text(chromedp.CSS("body")))
		return err == nil && strings.Contains(body, "http_request") && strings.Contains(body, "noop")
	}, 30*time.Second, 100*time.Millisecond, "River UI lists our runs by class; the page says: %s", body)
	require.Empty(t, errs.take(), "console errors (a CSP violation is one)")

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(artifacts, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(artifacts, "river-ui.png"), png, 0o644))
	if out := os.Getenv(EnvRiverUIScreenshot); out != "" {
		require.NoError(t, os.WriteFile(out, png, 0o644))
		t.Logf("wrote %s", out)
	}
	require.NoError(t, chromedp.Cancel(ctx))
}
