package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/atis-edu/atis-scheduler/workers/httprequest"
	"github.com/atis-edu/atis-scheduler/workers/noop"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/cli"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
)

func TestRunsAndSyncs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	h := schedtest.Start(t, pool, httprequest.New(httprequest.Config{}), noop.New())
	var failID, okID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters, max_attempts, retry_delay_minutes, is_active)
		VALUES ('ping-lms', 'http_request', 60, $1, 2, 0, false) RETURNING id`, fmt.Sprintf(`{"url": %q}`, failing.URL+"/health")).Scan(&failID))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, is_active)
		VALUES ('smoke', 'noop', 60, false) RETURNING id`).Scan(&okID))
	failRun, err := h.Scheduler.RunNow(ctx, failID, nil)
	require.NoError(t, err)
	require.Equal(t, "failed", h.Wait(t, failRun).Status)
	okRun, err := h.Scheduler.RunNow(ctx, okID, nil)
	require.NoError(t, err)
	require.Equal(t, "completed", h.Wait(t, okRun).Status)
	env := []string{"DATABASE_URL=" + url}

	t.Run("RunsList", func(t *testing.T) {
		t.Parallel()

		out, errOut, code := execute(t, env, "runs", "list")
		require.Zero(t, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 3)
		require.Regexp(t, `^RUN\s+SCHEDULE\s+CLASS\s+STATUS\s+ATTEMPTS`, lines[0])
		require.Regexp(t, fmt.Sprintf(`^%d\s+smoke\s+noop\s+completed\s+1\s`, okRun), lines[1])
		require.Regexp(t, fmt.Sprintf(`^%d\s+ping-lms\s+http_request\s+failed\s+2\s.*answered 50…$`, failRun), lines[2])

		out, _, code = execute(t, env, "runs", "list", "--status", "failed", "--job", "ping-lms", "--since", "1h", "--json")
		require.Zero(t, code)
		var runs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &runs))
		require.Len(t, runs, 1)
		require.Equal(t, float64(failRun), runs[0]["id"])
		require.Equal(t, float64(2), runs[0]["attempts"])

		out, _, code = execute(t, env, "runs", "list", "--job", "smoke", "--status", "failed", "--json")
		require.Zero(t, code)
		require.Equal(t, "[]\n", out)
	})

	t.Run("RunsShow", func(t *testing.T) {
		t.Parallel()

		out, errOut, code := execute(t, env, "runs", "show", fmt.Sprint(failRun))
		require.Zero(t, code, errOut)
		require.Contains(t, out, "Status:         failed after 2 attempt(s)")
		require.Equal(t, 2, strings.Count(out, "error: http_request: GET http://127.0.0.1:"), out)
		require.Contains(t, out, "Attempt 1: failed")
		require.Contains(t, out, "Attempt 2: failed")

		out, _, code = execute(t, env, "runs", "show", fmt.Sprint(failRun), "--json")
		require.Zero(t, code)
		var d struct {
			ID       int64
			Status   string
			Attempts []struct {
				Attempt int
				Status  string
				Error   string `json:"error_message"`
			} `json:"attempts_detail"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &d))
		require.Equal(t, failRun, d.ID)
		require.Len(t, d.Attempts, 2)
		require.Contains(t, d.Attempts[1].Error, "answered 500")
	})

	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()

		_, errOut, code := execute(t, env, "runs", "show", "999999")
		require.Equal(t, cli.ExitNotFound, code)
		require.Contains(t, errOut, "no such run: 999999")
		_, _, code = execute(t, env, "runs", "show", "abc")
		require.Equal(t, cli.ExitUsage, code)
		_, errOut, code = execute(t, env, "runs", "list", "--status", "weird")
		require.Equal(t, cli.ExitUsage, code, "a usage error, as --since's (it exited 1)")
		require.Contains(t, errOut, `status "weird" is not one of`)
		_, errOut, code = execute(t, env, "runs", "list", "--since", "yesterday")
		require.Equal(t, cli.ExitUsage, code)
		require.Contains(t, errOut, "--since")
		_, _, code = execute(t, env, "runs", "list", "--job", "nobody")
		require.Equal(t, cli.ExitNotFound, code)
	})

	t.Run("SyncsList", func(t *testing.T) {
		t.Parallel()

		var integ int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider)
			VALUES ('Moodle', 'lms', 'http_json') RETURNING id`).Scan(&integ))
		_, err := pool.Exec(ctx, `INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, end_time, status,
				records_processed, records_created, records_updated, records_failed, error_message)
			VALUES ($1, 'full', '2026-06-01 10:00', '2026-06-01 10:01', 'completed', 100, 90, 10, 0, NULL),
			       ($1, 'incremental', '2026-06-01 11:00', '2026-06-01 11:00:05', 'failed', 0, 0, 0, 0, 'page 1: malformed JSON')`, integ)
		require.NoError(t, err)

		out, errOut, code := execute(t, env, "syncs", "list", "--integration", fmt.Sprint(integ))
		require.Zero(t, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 3)
		require.Regexp(t, `^SYNC\s+INTEGRATION\s+TYPE\s+STATUS`, lines[0])
		require.Regexp(t, `Moodle \(\d+\)\s+incremental\s+failed\s+.*page 1: malformed JSON$`, lines[1])
		require.Regexp(t, `Moodle \(\d+\)\s+full\s+completed\s+2026-06-01T10:00:00Z\s+2026-06-01T10:01:00Z\s+100\s+90\s+10\s+0\s+-$`, lines[2])

		out, _, code = execute(t, env, "syncs", "list", "--json")
		require.Zero(t, code)
		var syncs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &syncs))
		require.Len(t, syncs, 2)
		require.Equal(t, "incremental", syncs[0]["sync_type"])
	})
}

// TestHelpEverywhere: every command answers --help.
func TestHelpEverywhere(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{{}, {"run"}, {"migrate"}, {"migrate", "status"}, {"jobs"}, {"jobs", "next"}, {"jobs", "list"},
		{"jobs", "validate"}, {"jobs", "run"}, {"jobs", "pause"}, {"jobs", "resume"}, {"runs"}, {"runs", "list"}, {"runs", "show"},
		{"syncs"}, {"syncs", "list"}, {"healthcheck"}, {"version"}} {
		out, errOut, code := execute(t, nil, append(args, "--help")...)
		require.Zero(t, code, "%v: %s", args, errOut)
		require.Contains(t, out, "Usage:", "%v", args)
	}
}
