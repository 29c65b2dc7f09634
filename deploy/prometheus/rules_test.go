// Package prometheus_test checks the alert rules of alerts.yml: promtool
// checks and unit-tests them, and a real Prometheus scraping the real
// daemon shows that every series they read exists with the labels they
// group by. Debian's prometheus package provides promtool and prometheus
// (.ci/run installs it); without them the tests skip, saying so.
package prometheus_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/promqltest"
)

var binary string

func TestMain(m *testing.M) { dbtest.MainWithBinary(m, &binary) }

// tool returns the path of a program of Debian's prometheus package, or
// skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed: apt-get install prometheus (.ci/run does)", name)
	}
	return path
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	require.NotEmpty(t, rules)
	return rules
}

// TestPromtool: the rules load (promtool check rules) and their unit
// tests pass (promtool test rules).
func TestPromtool(t *testing.T) {
	t.Parallel()

	promtool := tool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestAlertsAndRunbooks: every alert issue 20 asks for is there, is
// unit-tested, and its runbook_url names a section of README.md.
func TestAlertsAndRunbooks(t *testing.T) {
	t.Parallel()

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		anchors[slug(m[1])] = true
	}
	tests, err := os.ReadFile("alerts_test.yml")
	require.NoError(t, err)

	var names []string
	for _, r := range readRules(t) {
		names = append(names, r.Alert)
		u, err := url.Parse(r.Annotations["runbook_url"])
		require.NoError(t, err, r.Alert)
		require.Equal(t, "/atis-edu/atis-scheduler/blob/main/README.md", u.Path, "%s: runbook_url", r.Alert)
		require.True(t, anchors[u.Fragment], "%s: README.md has no section #%s", r.Alert, u.Fragment)
		require.NotEmpty(t, r.Annotations["summary"], r.Alert)
		require.Contains(t, string(tests), "alertname: "+r.Alert+"\n        exp_alerts:", "%s fires in alerts_test.yml", r.Alert)
	}
	for _, want := range []string{"AtisSchedulerDown", "AtisSchedulerNotReady", "AtisSchedulerNoHeartbeat",
		"AtisSchedulerEnqueueLagHigh", "AtisSchedulerRunsFailingInARow", "AtisSchedulerQueueBacklogGrowing",
		"AtisSchedulerSyncFailing", "AtisSchedulerDeliveriesFailing", "AtisSchedulerRetentionBehind",
		"AtisSchedulerLicenseCheckNotRun"} {
		require.Contains(t, names, want)
	}
}

// slug is GitHub's anchor of a heading.
func slug(heading string) string {
	heading = strings.ToLower(strings.TrimSpace(heading))
	return regexp.MustCompile(`[^\p{L}\p{N} _-]`).ReplaceAllString(strings.ReplaceAll(heading, " ", "-"), "")
}

// fixture makes the database hold something for every state gauge to say.
const fixture = `
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes) VALUES ('tick', 'noop', 1);
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes, consecutive_failures, is_active)
		VALUES ('broken', 'noop', 60, 4, false);
	INSERT INTO integrations (id, name, integration_type, provider, is_enabled) VALUES
		(901, 'sis', 'api', 'http_json', true), (902, 'mail', 'notification', 'smtp', true);
	INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, status) VALUES
		(901, 'full', localtimestamp - interval '1 hour', 'failed');
	INSERT INTO system_notifications (id, type, title, message, level, start_at, target_institutions) VALUES
		(801, 'system', 'a', 'a', 'info', localtimestamp, '{}');
	INSERT INTO notification_deliveries (notification_id, integration_id, status, last_error, updated_at) VALUES
		(801, 902, 'failed', 'refused', localtimestamp);
	INSERT INTO retention_progress (table_name, next_block) VALUES ('job_logs', 7);
	-- available in a queue no daemon works
	INSERT INTO river_job (kind, args, queue, state, max_attempts) VALUES ('elsewhere', '{}', 'elsewhere', 'available', 1)`

// TestRulesReadRealSeries starts the daemon on a fresh database holding a
// failing schedule, integration, delivery and retention pass, and a
// Prometheus that scrapes it every second; every selector of every rule
// must then match series, and the labels a rule groups or matches by must
// be on them.
func TestRulesReadRealSeries(t *testing.T) {
	t.Parallel()

	prometheus := tool(t, "prometheus")
	ctx := context.Background()
	dbURL := dbtest.NewURL(t)
	_, err := dbtest.Pool(t, dbURL).Exec(ctx, fixture)
	require.NoError(t, err)

	addr := dbtest.StartDaemon(t, binary, "DATABASE_URL="+dbURL)
	api := startPrometheus(t, prometheus, addr)

	type check struct {
		alert  string
		sel    promqltest.Selector
		labels []string
	}
	var checks []check
	for _, r := range readRules(t) {
		e, err := promqltest.Parse(r.Expr)
		require.NoError(t, err, r.Alert)
		require.NotEmpty(t, e.Selectors, r.Alert)
		for _, s := range e.Selectors {
			checks = append(checks, check{r.Alert, s, e.Labels})
		}
	}

	deadline := time.Now().Add(90 * time.Second) // an every-minute schedule fires within one
	for _, c := range checks {
		var got []map[string]string
		for {
			got = seriesOf(t, api, c.sel.String())
			if len(got) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond) // the next scrape, every second
		}
		require.NotEmpty(t, got, "%s reads %s: Prometheus has no such series from the daemon", c.alert, c.sel)
		for _, l := range c.labels {
			// A rule's grouping names the labels of all its selectors;
			// each must be on this selector's series or on another's.
			if !slices.ContainsFunc(got, func(s map[string]string) bool { _, ok := s[l]; return ok }) {
				require.True(t, slices.ContainsFunc(checks, func(o check) bool {
					return o.alert == c.alert && o.sel != c.sel && hasLabel(t, api, o.sel.String(), l)
				}), "%s groups or matches by %q, which no series it reads has (%s: %v)", c.alert, l, c.sel, got)
			}
		}
	}
}

func hasLabel(t *testing.T, api, selector, label string) bool {
	return slices.ContainsFunc(seriesOf(t, api, selector), func(s map[string]string) bool { _, ok := s[label]; return ok })
}

// seriesOf asks Prometheus's series API for the series selector matches.
func seriesOf(t *testing.T, api, selector string) []map[string]string {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/series?" + url.Values{"match[]": {selector},
		"start": {fmt.Sprint(time.Now().Add(-5 * time.Minute).Unix())}}.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "series %s: %s", selector, body)
	var out struct {
		Data []map[string]string `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	return out.Data
}

// startPrometheus runs prometheus scraping the daemon at addr every second
// as job atis-scheduler, with alerts.yml loaded, and returns its URL.
func startPrometheus(t *testing.T, prometheus, addr string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("alerts.yml")
	require.NoError(t, err)
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: atis-scheduler
    static_configs: [{targets: [%q]}]
`, rules, addr)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600))
	listen := freePort(t)
	cmd := exec.Command(prometheus, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen, "--log.format=json")
	startProcess(t, cmd, func(line string) (string, bool) {
		return "", strings.Contains(line, "Server is ready to receive web requests")
	})
	return "http://" + listen
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// startProcess starts cmd and waits until ready accepts a line of its
// stderr, whose value it returns; the process is killed when the test ends,
// and its output logged if the test failed.
func startProcess(t *testing.T, cmd *exec.Cmd, ready func(line string) (string, bool)) string {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1000)
	var output strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), output.String())
		}
	})
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "%s exited before it was ready:\n%s", filepath.Base(cmd.Path), output.String())
			output.WriteString(line + "\n")
			if v, ok := ready(line); ok {
				go func() { // keep draining, or the process blocks on a full pipe
					for range lines { //nolint:revive // drained on purpose
					}
				}()
				return v
			}
		case <-timeout:
			t.Fatalf("%s not ready within 30s:\n%s", filepath.Base(cmd.Path), output.String())
		}
	}
}
