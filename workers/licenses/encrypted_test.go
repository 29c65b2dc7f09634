package licenses_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/testkit/settingstest"
	"github.com/atis-edu/atis-scheduler/workers/licenses"
)

var appKey = laravelcrypt.Key("0123456789abcdef0123456789abcdef")

// encrypted is the config_value the web app writes for an encrypted row.
func encrypted(t *testing.T, plain string) string {
	t.Helper()
	return string(settingstest.Encrypted(t, plain, appKey))
}

// TestEncryptedConfig: encrypted warning days (a json row, and an array row
// of a module written by Crypt::encrypt) are decrypted with the app key;
// without it the config is an error naming the row and its warnings are
// skipped.
func TestEncryptedConfig(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	setupEncrypted := func(t *testing.T) *testBundle {
		t.Helper()
		b := setup(t)
		_, err := b.pool.Exec(ctx, `INSERT INTO system_configs (config_key, scope, scope_id, config_value, data_type, is_encrypted) VALUES
			('licenses.expiry_warning_days', 'global', NULL, $1, 'json', true),
			('licenses.expiry_warning_days', 'module', $2, $3, 'array', true)`,
			encrypted(t, "[10]"), b.lms, encrypted(t, `s:3:"[6]";`))
		require.NoError(t, err)
		b.license(t, "active", "lms", in(5*day), true)
		b.license(t, "active", "hr", in(5*day), true)
		return b
	}

	t.Run("WithTheAppKey", func(t *testing.T) {
		t.Parallel()

		b := setupEncrypted(t)
		class := licenses.Checker{Pool: b.pool, AppKeys: laravelcrypt.Keys{appKey}, Now: func() time.Time { return now }}
		res, err := class.Check(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"10": 1, "6": 1}, res.Warned)
	})
	t.Run("WithoutTheAppKey", func(t *testing.T) {
		t.Parallel()

		b := setupEncrypted(t)
		res, err := b.class.Check(ctx, nil)
		require.EqualError(t, err, "malformed licenses.expiry_warning_days: system_configs licenses.expiry_warning_days "+
			"is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it")
		require.Equal(t, []string{
			"system_configs licenses.expiry_warning_days is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it",
			fmt.Sprintf("system_configs licenses.expiry_warning_days (scope module, scope_id %d) is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it", b.lms),
		}, res.ConfigErrors)
		require.Empty(t, res.Warned)
	})
	t.Run("DecryptedButMalformed", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		_, err := b.pool.Exec(ctx, `INSERT INTO system_configs (config_key, scope, config_value, data_type, is_encrypted)
			VALUES ('licenses.expiry_warning_days', 'global', $1, 'json', true)`, encrypted(t, `{"days": 4000}`))
		require.NoError(t, err)
		class := licenses.Checker{Pool: b.pool, AppKeys: laravelcrypt.Keys{appKey}, Now: func() time.Time { return now }}
		_, err = class.Check(ctx, nil)
		require.EqualError(t, err, "malformed licenses.expiry_warning_days: system_configs licenses.expiry_warning_days (scope global): "+
			"the decrypted value is not a list of whole days such as [30, 7, 1]")
	})
}
