package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/cli"
	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/settingstest"
)

// buildBinary builds atis-scheduler from this tree into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "atis-scheduler")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/atis-edu/atis-scheduler/cmd/atis-scheduler").CombinedOutput()
	require.NoError(t, err, "build: %s", out)
	return bin
}

// runBinary runs bin with exactly env (plus PATH) and returns stdout,
// stderr and the exit code.
func runBinary(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ATIS_LOG_FORMAT=json"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestValidateChecksWhatARunNeeds: `jobs validate` fails (exit 1, one line
// per row with the reason) for schedules whose runs would be cancelled:
// a from_config key missing or not decryptable with ATIS_APP_KEY, an
// integration_sync of an integration gone or disabled, a class switched
// off; it passes the same rows once what they need is there, and warns of
// a pause switch.
func TestValidateChecksWhatARunNeeds(t *testing.T) {
	t.Parallel()

	appKey := laravelcrypt.Key("0123456789abcdef0123456789abcdef")
	bin := buildBinary(t)
	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	exec(`TRUNCATE scheduled_jobs RESTART IDENTITY CASCADE`) // this test owns the table
	var enabledID, disabledID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
		VALUES ('Local students', 'lms', 'http_json', '{}', '{}', true) RETURNING id`).Scan(&enabledID))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
		VALUES ('Old LMS', 'lms', 'http_json', '{}', '{}', false) RETURNING id`).Scan(&disabledID))
	hook := func(key string) map[string]any {
		return map[string]any{"url": "https://lms.example.test/hook", "headers": map[string]any{"Authorization": map[string]string{"from_config": key}}}
	}
	for _, row := range []struct {
		name, class string
		params      any
	}{
		{"missing-key", "http_request", hook("lms.missing")},
		{"encrypted-key", "http_request", hook("lms.token")},
		{"plain-key", "http_request", hook("lms.tenant")},
		{"sync-gone", "integration_sync", map[string]any{"integration_id": 999999}},
		{"sync-disabled", "integration_sync", map[string]any{"integration_id": disabledID}},
		{"sync-ok", "integration_sync", map[string]any{"integration_id": enabledID}},
		{"sql-off", "sql", map[string]any{"statement": "SELECT 1"}},
	} {
		exec(`INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters) VALUES ($1, $2, '* * * * *', $3)`, row.name, row.class, row.params)
	}
	exec(`INSERT INTO system_configs (config_key, config_value, scope, data_type) VALUES ('lms.tenant', '"tenant-1"', 'global', 'string')`)
	exec(`INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted) VALUES ('lms.token', $1, 'global', 'string', true)`,
		string(settingstest.Encrypted(t, "Bearer s3cret-token", appKey)))
	env := []string{"DATABASE_URL=" + url}

	t.Run("FailsPerRowWithTheReason", func(t *testing.T) {
		out, errOut, code := runBinary(t, bin, env, "jobs", "validate")
		require.Equal(t, cli.ExitFailure, code, errOut)
		require.Equal(t, `error: scheduled job 1 (missing-key): a run would fail: http_request: header "Authorization": system_configs lms.missing is not set
error: scheduled job 2 (encrypted-key): a run would fail: http_request: header "Authorization": system_configs lms.token is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it
error: scheduled job 4 (sync-gone): a run would fail: integration_sync: integration 999999 does not exist (integrations.id)
error: scheduled job 5 (sync-disabled): a run would fail: integration_sync: integration `+strconv.FormatInt(disabledID, 10)+` (Old LMS) is disabled: set integrations.is_enabled, or pause this schedule
error: scheduled job 7 (sql-off): job class sql is disabled: set ATIS_ENABLE_SQL_JOBS=true to allow it (it lets anyone who can write scheduled_jobs run SQL as the daemon's database role)
`, out)
		require.Contains(t, errOut, "some scheduled jobs cannot run: 5 of them")
		require.NotContains(t, out+errOut, "s3cret", "a decrypted value is never shown")

		out, _, code = runBinary(t, bin, env, "jobs", "validate", "--json")
		require.Equal(t, cli.ExitFailure, code)
		var problems []struct {
			ID     int64    `json:"id"`
			Errors []string `json:"errors"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &problems))
		require.Len(t, problems, 5)
		require.Equal(t, int64(1), problems[0].ID)
	})

	t.Run("WrongAppKey", func(t *testing.T) {
		out, _, code := runBinary(t, bin, append(env, "ATIS_APP_KEY=fedcba9876543210fedcba9876543210"), "jobs", "validate")
		require.Equal(t, cli.ExitFailure, code)
		require.Contains(t, out, `error: scheduled job 2 (encrypted-key): a run would fail: http_request: header "Authorization": system_configs lms.token could not be decrypted with ATIS_APP_KEY`)
	})

	t.Run("PassesOnceEverythingIsThere", func(t *testing.T) {
		exec(`INSERT INTO system_configs (config_key, config_value, scope, data_type) VALUES ('lms.missing', '"now set"', 'global', 'string')`)
		exec(`UPDATE integrations SET is_enabled = true WHERE id = $1`, disabledID)
		exec(`UPDATE scheduled_jobs SET parameters = jsonb_build_object('integration_id', $1::bigint) WHERE name = 'sync-gone'`, enabledID)
		exec(`INSERT INTO platform.feature_flags (key, is_enabled) VALUES ('scheduler.paused.integration_sync', true)`)
		out, errOut, code := runBinary(t, bin, append(env, "ATIS_APP_KEY="+string(appKey), "ATIS_ENABLE_SQL_JOBS=true"), "jobs", "validate")
		require.Zero(t, code, errOut)
		require.Equal(t, `warning: scheduled job 4 (sync-gone): class integration_sync is paused (platform.feature_flags scheduler.paused.integration_sync is enabled): no run is enqueued until it is turned off
warning: scheduled job 5 (sync-disabled): class integration_sync is paused (platform.feature_flags scheduler.paused.integration_sync is enabled): no run is enqueued until it is turned off
warning: scheduled job 6 (sync-ok): class integration_sync is paused (platform.feature_flags scheduler.paused.integration_sync is enabled): no run is enqueued until it is turned off
every scheduled job can run
`, out)
	})

	t.Run("HelpSaysWhatIsChecked", func(t *testing.T) {
		out, _, code := runBinary(t, bin, nil, "jobs", "validate", "--help")
		require.Zero(t, code)
		for _, want := range []string{"from_config", "ATIS_APP_KEY", "integration_sync", "enabled", "ATIS_ENABLE_SQL_JOBS", "exits 1"} {
			require.Contains(t, strings.Join(strings.Fields(out), " "), want)
		}
	})
}
