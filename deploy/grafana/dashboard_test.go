// Package grafana_test checks the Grafana dashboard atis-scheduler.json:
// every metric its queries name is in the real daemon's /metrics, and
// every query parses (promtool, when Debian's prometheus package is
// installed).
package grafana_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/promqltest"
)

var binary string

func TestMain(m *testing.M) { dbtest.MainWithBinary(m, &binary) }

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// queries returns every PromQL expression of the dashboard: its panels'
// targets (rows included) and its variables' label_values() queries, by
// where they are.
func queries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("atis-scheduler.json")
	require.NoError(t, err)
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query struct {
					Query string `json:"query"`
				} `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "panel %q target %d has no expr", p.Title, i)
				out[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		m := labelValues.FindStringSubmatch(v.Query.Query)
		require.NotNil(t, m, "variable %s: a label_values(selector, label) query", v.Name)
		out["variable "+v.Name] = m[1]
	}
	require.NotEmpty(t, out)
	return out
}

// TestDashboardQueriesParse: promtool loads every query (as a recording
// rule, with Grafana's variables given values).
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed: apt-get install prometheus (.ci/run does)")
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", `"$instance"`, `".*"`, "${DS_PROMETHEUS}", "")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for where, expr := range queries(t) {
		q, err := json.Marshal(vars.Replace(expr))
		require.NoError(t, err)
		require.NotContains(t, string(q), "$", "%s: a variable the test does not know", where)
		fmt.Fprintf(&rules, "      - record: dashboard:query\n        expr: %s\n", q)
	}
	file := filepath.Join(t.TempDir(), "dashboard.yml")
	require.NoError(t, os.WriteFile(file, []byte(rules.String()), 0o600))
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s\n%s", out, rules.String())
}

// fixture gives the daemon something of everything the dashboard shows: an
// every-minute noop, a csv sync that creates records, a retention run with a
// row to purge, a request refused and retried, and failing schedules, syncs, deliveries and a retention
// pass for the gauges read from the database.
const fixture = `
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes) VALUES ('tick', 'noop', 1);
	INSERT INTO integrations (id, name, integration_type, provider, is_enabled, config) VALUES
		(900, 'students', 'data_import', 'csv', true, '{"file": "students.csv", "id_column": "id"}'),
		(901, 'sis', 'api', 'http_json', true, '{}'), (902, 'mail', 'notification', 'smtp', true, '{}');
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters)
		VALUES ('students', 'integration_sync', 60, '{"integration_id": 900}');
	INSERT INTO performance_metrics (metric_type, name, value, unit, timestamp)
		VALUES ('job', 'old', 1, 'ms', localtimestamp - interval '400 days');
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters)
		VALUES ('purge', 'log_retention', 60, '{"tables": {"performance_metrics": 30, "platform.audit_logs": 0}}');
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters, max_attempts, retry_delay_minutes)
		VALUES ('refused', 'http_request', 60, '{"url": "http://127.0.0.1:1/"}', 3, 0);
	INSERT INTO scheduled_jobs (name, job_class, interval_minutes, consecutive_failures, is_active)
		VALUES ('broken', 'noop', 60, 4, false);
	INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, status) VALUES
		(901, 'full', localtimestamp - interval '1 hour', 'failed');
	INSERT INTO system_notifications (id, type, title, message, level, start_at, target_institutions) VALUES
		(801, 'system', 'a', 'a', 'info', localtimestamp, '{}');
	INSERT INTO notification_deliveries (notification_id, integration_id, status, last_error, updated_at) VALUES
		(801, 902, 'failed', 'refused', localtimestamp);
	-- kept forever by the purge above, so its progress row stays
	INSERT INTO retention_progress (table_name, next_block) VALUES ('platform.audit_logs', 7)`

// TestDashboardNamesRealMetrics: every metric a query of the dashboard
// names is in the /metrics of a real daemon that has done some of
// everything (up comes from Prometheus itself).
func TestDashboardNamesRealMetrics(t *testing.T) {
	t.Parallel()

	names := map[string][]string{} // metric → where
	for where, expr := range queries(t) {
		e, err := promqltest.Parse(expr)
		require.NoError(t, err, where)
		require.NotEmpty(t, e.Selectors, "%s names no metric: %s", where, expr)
		for _, s := range e.Selectors {
			if s.Name != "up" {
				names[s.Name] = append(names[s.Name], where)
			}
		}
	}

	importDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(importDir, "students.csv"), []byte("id,name\n1,Aysel\n2,Orxan\n"), 0o600))
	dbURL := dbtest.NewURL(t)
	_, err := dbtest.Pool(t, dbURL).Exec(t.Context(), fixture)
	require.NoError(t, err)
	addr := dbtest.StartDaemon(t, binary, "DATABASE_URL="+dbURL, "ATIS_IMPORT_DIR="+importDir)

	var missing []string
	deadline := time.Now().Add(90 * time.Second) // the every-minute runs fire within one
	for {
		exported := scrape(t, "http://"+addr+"/metrics")
		missing = missing[:0]
		for name, where := range names {
			if !exported[name] {
				missing = append(missing, fmt.Sprintf("%s (%s)", name, strings.Join(where, "; ")))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	slices.Sort(missing)
	require.Empty(t, missing, "the dashboard names metrics the daemon does not export")
}

// scrape returns the names of the samples in a /metrics exposition.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	require.NoError(t, sc.Err())
	return out
}
