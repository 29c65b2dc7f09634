package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/cli"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// execute runs the command line in-process and returns stdout, stderr and
// the exit code main would use.
func execute(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := cli.Execute(context.Background(), args, append([]string{"ATIS_LOG_FORMAT=json"}, env...), &stdout, &stderr)
	if err != nil {
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), cli.ExitCode(err)
}

func TestJobsNext(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		args     []string
		want     string
		wantCode int
	}{
		{"DSTGapInBerlin", []string{"30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-28T00:00:00Z", "--count", "3"},
			"2026-03-28T02:30:00+01:00\n2026-03-29T03:30:00+02:00\n2026-03-30T02:30:00+02:00\n", 0},
		{"UnquotedFieldsAreJoined", []string{"0", "9", "*", "*", "MON", "--from", "2026-11-22T00:00:00Z", "--count", "1"},
			"2026-11-23T09:00:00Z\n", 0},
		{"LastDay", []string{"0 0 L * *", "--from", "2026-02-01T00:00:00Z", "--count", "2"},
			"2026-02-28T00:00:00Z\n2026-03-31T00:00:00Z\n", 0},
		{"BadExpression", []string{"61 * * * *"}, "", cli.ExitUsage},
		{"BadZone", []string{"@daily", "--tz", "Mars/Base"}, "", cli.ExitUsage},
		{"BadFrom", []string{"@daily", "--from", "tomorrow"}, "", cli.ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			out, errOut, code := execute(t, nil, append([]string{"jobs", "next"}, tt.args...)...)
			require.Equal(t, tt.wantCode, code, errOut)
			require.Equal(t, tt.want, out)
		})
	}
}

func TestJobsAdmin(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	_, err := pool.Exec(ctx, `TRUNCATE scheduled_jobs RESTART IDENTITY CASCADE; -- this test owns the table
		INSERT INTO users DEFAULT VALUES;
		INSERT INTO scheduled_jobs (name, job_class, cron_expression, interval_minutes) VALUES
			('ping', 'http_request', '*/5 * * * *', NULL),
			('broken', 'nope', '* * * * *', NULL),
			('both', 'noop', '0 * * * *', 15),
			('twin', 'noop', NULL, 5), ('twin', 'noop', ' ', 10); -- a blank cron: the interval holds
		UPDATE scheduled_jobs SET parameters = '{"url": "https://example.test/health"}' WHERE name = 'ping';`)
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + url}

	// The subtests run in order on one database: each builds on the rows above.
	t.Run("ListTableAndJSON", func(t *testing.T) {
		out, errOut, code := execute(t, env, "jobs", "list")
		require.Zero(t, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 6)
		require.Regexp(t, `^ID\s+NAME\s+CLASS\s+SCHEDULE\s+TZ\s+ACTIVE\s+NEXT RUN`, lines[0])
		require.Regexp(t, `^1\s+ping\s+http_request\s+\*/5 \* \* \* \*\s+UTC\s+yes`, lines[1])
		require.Regexp(t, `^4\s+twin\s+noop\s+every 5 min`, lines[4])
		require.Regexp(t, `^5\s+twin\s+noop\s+every 10 min`, lines[5])

		out, errOut, code = execute(t, env, "jobs", "list", "--json")
		require.Zero(t, code, errOut)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &rows))
		require.Len(t, rows, 5)
		require.Equal(t, "broken", rows[1]["name"])
		require.Equal(t, "nope", rows[1]["job_class"])
		require.Equal(t, true, rows[1]["is_active"])
	})

	t.Run("ValidateTableAndJSON", func(t *testing.T) {
		out, _, code := execute(t, env, "jobs", "validate")
		require.Equal(t, cli.ExitFailure, code)
		require.Regexp(t, `^error: scheduled job 2 \(broken\): unknown job class "nope" \(known: http_request, [a-z_, ]+\)
warning: scheduled job 3 \(both\): both cron_expression "0 \* \* \* \*" and interval_minutes 15 are set: the cron expression wins
$`, out)

		out, _, code = execute(t, env, "jobs", "validate", "--json")
		require.Equal(t, cli.ExitFailure, code)
		var problems []struct {
			ID       int64
			Errors   []string
			Warnings []string
		}
		require.NoError(t, json.Unmarshal([]byte(out), &problems))
		require.Len(t, problems, 2)
		require.Equal(t, int64(2), problems[0].ID)
		require.Len(t, problems[0].Errors, 1)
		require.Len(t, problems[1].Warnings, 1)
	})

	t.Run("RunPauseResume", func(t *testing.T) {
		out, errOut, code := execute(t, env, "jobs", "run", "ping", "--user", "1")
		require.Zero(t, code, errOut)
		require.Regexp(t, `^enqueued run \d+ of scheduled job 1 \(ping\)\n$`, out)
		require.Equal(t, int64(1), dbtest.Scalar[int64](t, pool, "SELECT executed_by FROM job_logs WHERE scheduled_job_id = 1"))

		out, errOut, code = execute(t, env, "jobs", "pause", "3")
		require.Zero(t, code, errOut)
		require.Equal(t, "paused scheduled job 3 (both)\n", out)
		require.False(t, dbtest.Scalar[bool](t, pool, "SELECT is_active FROM scheduled_jobs WHERE id = 3"))
		// The same audit row as the dashboard's action (internal/admin), naming the CLI.
		require.Equal(t, "scheduled_jobs 3 false atis-scheduler CLI", dbtest.Scalar[string](t, pool,
			`SELECT concat_ws(' ', resource, new_state->>'id', new_state->>'is_active', new_state->>'via') FROM platform.audit_logs WHERE action = 'pause'`))
		require.Equal(t, 1, dbtest.Scalar[int](t, pool, `SELECT count(*) FROM platform.audit_logs WHERE action = 'run_now' AND new_state->>'via' = 'atis-scheduler CLI'`))
		out, _, code = execute(t, env, "jobs", "resume", "both")
		require.Zero(t, code)
		require.Equal(t, "resumed scheduled job 3 (both)\n", out)
		require.True(t, dbtest.Scalar[bool](t, pool, "SELECT is_active FROM scheduled_jobs WHERE id = 3"))

		_, errOut, code = execute(t, env, "jobs", "run", "twin")
		require.Equal(t, cli.ExitUsage, code)
		require.Contains(t, errOut, `several scheduled jobs have this name "twin" (ids [4 5]): use an id`)
		_, errOut, code = execute(t, env, "jobs", "pause", "999")
		require.Equal(t, cli.ExitNotFound, code)
		require.Contains(t, errOut, "no such scheduled job: 999")
		_, errOut, code = execute(t, env, "jobs", "run", "broken")
		require.Equal(t, cli.ExitFailure, code)
		require.Contains(t, errOut, `cannot run: unknown job class "nope"`)
	})

	// Deleting a schedule that has run: it asks for --yes, says how much
	// history stays, and the history stays readable by name.
	t.Run("Delete", func(t *testing.T) {
		_, errOut, code := execute(t, env, "jobs", "delete", "ping")
		require.Equal(t, cli.ExitUsage, code)
		require.Contains(t, errOut, "this would delete scheduled job 1 (ping); its 1 runs of history would stay: add --yes to delete it")
		require.Equal(t, 1, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduled_jobs WHERE id = 1"))

		out, errOut, code := execute(t, env, "jobs", "delete", "ping", "--yes")
		require.Zero(t, code, errOut)
		require.Equal(t, "deleted scheduled job 1 (ping); its 1 runs of history stay (atis-scheduler runs list --job \"ping\")\n", out)
		require.Zero(t, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduled_jobs WHERE id = 1"))
		require.Equal(t, 1, dbtest.Scalar[int](t, pool, `SELECT count(*) FROM platform.audit_logs WHERE action = 'delete' AND new_state->>'runs_kept' = '1'`))

		out, errOut, code = execute(t, env, "runs", "list", "--job", "ping")
		require.Zero(t, code, errOut)
		require.Contains(t, out, "ping", "the deleted schedule's runs, by its name")
	})
}
