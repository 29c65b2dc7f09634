package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// artifacts is where the browser test leaves its screenshots (gitignored).
const artifacts = "testdata/artifacts"

// EnvScreenshot names a file the browser test also writes the overview's
// screenshot to (`make screenshot` points it at docs/dashboard.png); the
// phone-width ones go beside it (docs/dashboard-phone.png,
// docs/dashboard-runs-phone.png).
const EnvScreenshot = "ATIS_DASHBOARD_SCREENSHOT"

// chromium returns the path of Debian's chromium, installing it with
// apt-get when it is missing and that is possible; otherwise it skips the
// test, saying why.
func chromium(t *testing.T) string {
	t.Helper()
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("browser test skipped: chromium is not installed and there is no apt-get to install it (apt-get install chromium)")
	}
	var prefix []string
	if os.Geteuid() != 0 {
		if exec.Command("sudo", "-n", "true").Run() != nil {
			t.Skip("browser test skipped: chromium is not installed and installing it needs root (sudo apt-get install chromium)")
		}
		prefix = []string{"sudo", "-n"}
	}
	install := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, append(prefix, args...)[0], append(prefix, args...)[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	t.Log("chromium is missing: installing it with apt-get")
	if _, err := install("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"); err != nil {
		if out, err := install("apt-get", "update", "-qq"); err != nil {
			t.Skipf("browser test skipped: apt-get update failed: %v: %s", err, out)
		}
		if out, err := install("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"); err != nil {
			t.Skipf("browser test skipped: apt-get install chromium failed: %v: %s", err, out)
		}
	}
	if p := find(); p != "" {
		return p
	}
	t.Skip("browser test skipped: chromium is still not on PATH after apt-get install chromium")
	return ""
}

// consoleErrors collects what a page would show in red in the console:
// console.error calls, uncaught exceptions, and the browser's own error
// entries (CSP violations, failed loads).
type consoleErrors struct {
	mu   sync.Mutex
	list []string
}

func (c *consoleErrors) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			msg = "console.error"
		}
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			msg = fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	}
	if msg != "" {
		c.mu.Lock()
		c.list = append(c.list, msg)
		c.mu.Unlock()
	}
}

func (c *consoleErrors) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.list
	c.list = nil
	return out
}

// TestBrowser drives the dashboard in headless chromium: every page loads
// without a console error, signing in, pause, resume and run now work by
// clicking, with their effect in the database, and every page fits a
// phone's width (420 and 360 px) without scrolling sideways.
func TestBrowser(t *testing.T) {
	t.Parallel()

	path := chromium(t)
	b := setup(t, testToken, "127.0.0.1:9464")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1440, 1000))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run its sandbox as root
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	var errs consoleErrors
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(errs.listen))
	defer cancel()
	require.NoError(t, chromedp.Do(ctx)) // start the browser on a context without a deadline
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		require.NoError(t, chromedp.Do(sctx, steps...))
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err)
		return s
	}
	// waitText polls until the element's text holds want: after a click
	// the old page may still be the one showing.
	waitText := func(sel, want string) {
		t.Helper()
		require.Eventually(t, func() bool {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
			return err == nil && strings.Contains(s, want)
		}, 30*time.Second, 50*time.Millisecond, "%s never said %q", sel, want)
	}
	shot := func(name string) []byte {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(artifacts, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(artifacts, name), png, 0o644))
		return png
	}

	for i, p := range b.pages() {
		run(chromedp.Navigate(b.srv.URL+p), chromedp.WaitVisible(chromedp.CSS("main")))
		require.Empty(t, errs.take(), "console errors on %s", p)
		shot(fmt.Sprintf("page-%02d%s.png", i, strings.NewReplacer("/", "-", "?", "-", "=", "-", "&", "-").Replace(p)))
	}

	// Sign in by typing the token, from a link whose next= would lead a
	// browser to another site once it drops the tab (/<TAB>/evil.example
	// is //evil.example to Chromium): it stays on the dashboard.
	run(chromedp.Navigate(b.srv.URL+"/login?next=/%09/evil.example"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Browser Operator"),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#logout")))
	require.Contains(t, text(".who"), "Browser Operator")
	location, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, b.srv.URL+"/", location, "signed in onto the dashboard, not elsewhere")

	detail := fmt.Sprintf("%s/schedules/%d", b.srv.URL, b.ids.smoke)
	run(chromedp.Navigate(detail), chromedp.Click(chromedp.CSS(".toolbar button.pause")))
	waitText("#flash", `"smoke" paused`)
	waitActive(t, b, b.ids.smoke, false)
	run(chromedp.Click(chromedp.CSS(".toolbar button.resume")))
	waitText("#flash", `"smoke" resumed`)
	waitActive(t, b, b.ids.smoke, true)

	run(chromedp.Click(chromedp.CSS(".toolbar button.runnow")))
	waitText("#flash", "enqueued as run")
	var runID int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT (new_state->>'run_id')::bigint FROM platform.audit_logs
		WHERE action = 'run_now' AND new_state->>'performed_by_name' = 'Browser Operator'`).Scan(&runID))
	require.Equal(t, "completed", b.harness.Wait(t, runID).Status)
	require.Empty(t, errs.take(), "console errors while acting")

	// Screenshots, signed in so the action buttons show.
	run(chromedp.Navigate(b.srv.URL+"/schedules"), chromedp.WaitVisible(chromedp.CSS("#schedules")))
	shot("schedules.png")
	out := os.Getenv(EnvScreenshot)
	if out != "" { // README's picture: the planted hostile text would only puzzle a reader there
		_, err := b.pool.Exec(context.Background(), `UPDATE scheduled_jobs SET last_run_message = 'http_request: GET https://lms.example.az/health answered 503'
			WHERE id = $1`, b.ids.failing)
		require.NoError(t, err)
		_, err = b.pool.Exec(context.Background(), `UPDATE integration_sync_logs SET error_message = 'page 3: GET https://moodle.example.az/api answered 502'
			WHERE id = $1`, b.ids.failedSync)
		require.NoError(t, err)
	}
	run(chromedp.Navigate(b.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	png := shot("overview.png")
	require.Empty(t, errs.take(), "console errors")
	if out != "" {
		require.NoError(t, os.WriteFile(out, png, 0o644))
		t.Logf("wrote %s", out)
	}
	require.False(t, strings.Contains(string(png[:8]), "JFIF"), "a PNG, not a JPEG")

	// Phones: every page, signed in (the action buttons are the widest
	// cells), fits the screen's width at 420 and 360 px: nothing makes the
	// page scroll sideways (a table may scroll inside its card).
	for _, width := range []int64{420, 360} {
		run(chromedp.EmulateViewport(width, 900, chromedp.EmulateMobile))
		for i, p := range append(b.pages(), fmt.Sprintf("/schedules/%d", b.ids.smoke)) {
			run(chromedp.Navigate(b.srv.URL+p), chromedp.WaitVisible(chromedp.CSS("main")))
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			fit, err := chromedp.Run(sctx, chromedp.Evaluate[overflow](fmt.Sprintf(overflowJS, width)))
			cancel()
			require.NoError(t, err)
			// A phone widens its layout viewport (innerWidth) to fit a page
			// wider than the screen: both must stay at the screen's width.
			require.LessOrEqual(t, fit.ScrollWidth, int(width), "%s overflows at %d px: %v", p, width, fit.Wide)
			require.LessOrEqual(t, fit.InnerWidth, int(width), "%s overflows at %d px: %v", p, width, fit.Wide)
			shot(fmt.Sprintf("phone%d-%02d%s.png", width, i, strings.NewReplacer("/", "-", "?", "-", "=", "-", "&", "-").Replace(p)))
		}
		require.Empty(t, errs.take(), "console errors at %d px", width)
	}
	run(chromedp.EmulateViewport(420, 900, chromedp.EmulateMobile), chromedp.Navigate(b.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	phone := shot("overview-phone.png")
	// The runs form (its zone, the dispatch filter) and a row as a phone
	// shows it; the whole list would make a picture metres long.
	run(chromedp.Navigate(b.srv.URL+"/runs?class=integration_sync&quiet=1"), chromedp.WaitVisible(chromedp.CSS("main")))
	phoneRuns := shot("runs-phone.png")
	if out != "" {
		base := strings.TrimSuffix(out, filepath.Ext(out))
		require.NoError(t, os.WriteFile(base+"-phone.png", phone, 0o644))
		require.NoError(t, os.WriteFile(base+"-runs-phone.png", phoneRuns, 0o644))
		t.Logf("wrote %s-phone.png and %s-runs-phone.png", base, base)
	}
	require.NoError(t, chromedp.Cancel(ctx))
}

// overflow is what overflowJS measures: the page's width against the
// screen's, and the elements that stick out (to say what to fix).
type overflow struct {
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
	Wide        []string `json:"wide"`
}

// overflowJS, given a screen's width in px, measures a page. It runs through the
// DevTools protocol (the pages themselves have no script, and their CSP
// allows none).
const overflowJS = `(() => {
	const w = %d, wide = [];
	for (const el of document.querySelectorAll('body *')) {
		const r = el.getBoundingClientRect();
		if (r.right > w + 0.5 && wide.length < 8) wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
			(el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') + ' ' + Math.round(r.right));
	}
	return {scrollWidth: document.documentElement.scrollWidth, innerWidth: w, wide};
})()`

// waitActive polls until the schedule's is_active is want.
func waitActive(t *testing.T, b *testBundle, id int64, want bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var active bool
		err := b.pool.QueryRow(context.Background(), `SELECT is_active FROM scheduled_jobs WHERE id = $1`, id).Scan(&active)
		return err == nil && active == want
	}, 10*time.Second, 20*time.Millisecond)
}
