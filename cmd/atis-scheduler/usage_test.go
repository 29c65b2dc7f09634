package main_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/cli"
)

// TestUsageErrorsExit2: one rule for every mistake in how the binary is
// called: exit 2, one line saying what is wrong, and where to look. These
// printed the help and exited 0 (an unknown subcommand), or exited 1.
func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()

	env := []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=1"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "lsit"}, `unknown command "lsit" for "atis-scheduler jobs" (did you mean list?): see atis-scheduler jobs --help`},
		{[]string{"bogus"}, `unknown command "bogus" for "atis-scheduler": see atis-scheduler --help`},
		{[]string{"runs", "list", "--status", "borked"}, `--status "borked" is not one of queued, processing, completed, failed, cancelled`},
		{[]string{"runs", "list", "--since", "2x"}, `--since="2x"`},
		{[]string{"jobs", "run"}, `accepts 1 arg(s), received 0: see atis-scheduler jobs run --help`},
		{[]string{"jobs", "list", "--nope"}, `unknown flag: --nope`},
		{[]string{"version", "extra"}, `unknown command "extra"`},
	} {
		res := run(t, env, tt.args...)
		require.Equal(t, cli.ExitUsage, res.code, "%v: %s", tt.args, res.stderr)
		lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
		require.Len(t, lines, 1, "%v: one line, got:\n%s", tt.args, res.stderr)
		require.Contains(t, lines[0], tt.want, tt.args)
		require.Empty(t, res.stdout, "%v: no help on stdout", tt.args)
	}
	res := run(t, env, "jobs")
	require.Zero(t, res.code, "a group alone shows its help")
	require.Contains(t, res.stdout, "Available Commands")
}

// TestAdminCommands runs the admin commands through the real binary: jobs
// show, integrations list and show, names wherever an id is taken, and the
// errors that used to be raw (strconv, a foreign key).
func TestAdminCommands(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := migratedURL(t)
	pool := observerPool(t, url)
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, timezone, max_attempts, retry_delay_minutes)
			VALUES ('nightly', 'noop', '30 2 * * *', 'Asia/Baku', 3, 10);
		INSERT INTO integrations (name, integration_type, provider, sync_frequency, config, credentials)
			VALUES ('Local students', 'lms', 'http_json', 'hourly', '{"base_url": "https://lms.example/api"}', '{"type": "bearer", "token": "planted-s3cret-token"}');
		INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, status, records_processed)
			SELECT id, 'full', '2026-11-30 10:00', 'completed', 42 FROM integrations WHERE name = 'Local students'`)
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + url}

	res := run(t, env, "jobs", "show", "nightly")
	require.Zero(t, res.code, res.stderr)
	for _, want := range []string{"Schedule:    ", "(nightly)", "When:", "daily at 02:30 (30 2 * * *, Asia/Baku)",
		"up to 3 attempts, 10 min apart", "Next fire times (Asia/Baku):", " 02:30:00 ", "+04:00", " 22:30:00 UTC", "Last runs:", "none yet"} {
		require.Contains(t, res.stdout, want)
	}
	require.Equal(t, 10, strings.Count(res.stdout, " 22:30:00 UTC"), "ten fire times")

	res = run(t, env, "integrations", "list")
	require.Zero(t, res.code, res.stderr)
	require.Regexp(t, `Local students\s+lms\s+http_json\s+yes\s+hourly\s+2026-11-30T10:00:00Z\s+completed`, res.stdout)
	res = run(t, env, "integrations", "show", "Local students")
	require.Zero(t, res.code, res.stderr)
	require.Contains(t, res.stdout, "Sync frequency:")
	require.Regexp(t, `full\s+completed\s+2026-11-30T10:00:00Z\s+-\s+42`, res.stdout)
	require.NotContains(t, res.stdout+res.stderr, "planted-s3cret-token")
	require.NotContains(t, res.stdout, "lms.example", "never its config")

	res = run(t, env, "syncs", "list", "--integration", "Local students")
	require.Zero(t, res.code, res.stderr)
	require.Contains(t, res.stdout, "Local students")
	for _, args := range [][]string{{"syncs", "list", "--integration", "Nobody"}, {"integrations", "show", "Nobody"}, {"jobs", "show", "nobody"}} {
		res = run(t, env, args...)
		require.Equal(t, cli.ExitNotFound, res.code, "%v: an unknown name is an error, not an empty table: %s", args, res.stderr)
		require.NotContains(t, res.stderr, "strconv")
	}

	res = run(t, env, "jobs", "run", "nightly", "--user", "424242")
	require.Equal(t, cli.ExitUsage, res.code)
	require.Contains(t, res.stderr, "--user 424242: no user has that id (users.id)")
	require.NotContains(t, res.stderr, "foreign key")
}
