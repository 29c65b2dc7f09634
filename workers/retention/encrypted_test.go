package retention_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/testkit/settingstest"
	"github.com/atis-edu/atis-scheduler/workers/retention"
)

var appKey = laravelcrypt.Key("0123456789abcdef0123456789abcdef")

// encrypted is the config_value the web app writes for an encrypted row.
func encrypted(t *testing.T, plain string) string {
	t.Helper()
	return string(settingstest.Encrypted(t, plain, appKey))
}

// TestEncryptedConfig: an encrypted retention.<table>.days (an integer, as
// Crypt::encrypt or Crypt::encryptString writes it) is decrypted with the
// app key; without the key, or when the decrypted value is not days, that
// table is left alone with an error naming the row, and the others go on.
func TestEncryptedConfig(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	tests := []struct {
		name      string
		plain     string
		keys      laravelcrypt.Keys
		wantKept  []string
		wantError string
	}{
		{name: "Serialized", plain: "i:40;", keys: laravelcrypt.Keys{appKey}, wantKept: []string{"20"}},
		{name: "EncryptString", plain: "60", keys: laravelcrypt.Keys{appKey}, wantKept: []string{"20", "50"}},
		{name: "NoAppKey", plain: "i:40;", wantKept: []string{"100", "20", "50"},
			wantError: "system_configs retention.activity_logs.days is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it; activity_logs was not purged"},
		{name: "WrongAppKey", plain: "i:40;", keys: laravelcrypt.Keys{laravelcrypt.Key("fedcba9876543210")}, wantKept: []string{"100", "20", "50"},
			wantError: "system_configs retention.activity_logs.days could not be decrypted with ATIS_APP_KEY (MAC mismatch: is it the web app's APP_KEY?); activity_logs was not purged"},
		{name: "OutOfRange", plain: "99999", keys: laravelcrypt.Keys{appKey}, wantKept: []string{"100", "20", "50"},
			wantError: "system_configs retention.activity_logs.days: the decrypted value is not whole days to keep (0 keeps forever); activity_logs was not purged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			b.class.AppKeys = tt.keys
			b.exec(t, `INSERT INTO activity_logs (activity_type, description, created_at) VALUES ('x', '20', $1), ('x', '50', $2), ('x', '100', $3)`,
				ago(20), ago(50), ago(100))
			b.exec(t, `INSERT INTO performance_metrics (metric_type, name, value, unit, timestamp) VALUES ('x', 'old', 1, 'ms', $1)`, ago(5000))
			b.exec(t, `INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted)
				VALUES ('retention.activity_logs.days', $1, 'global', 'integer', true)`, encrypted(t, tt.plain))
			res, err := b.class.Purge(ctx, retention.Params{})
			if tt.wantError != "" {
				require.EqualError(t, err, tt.wantError)
			} else {
				require.NoError(t, err)
				require.Equal(t, "system_configs", res.Tables["activity_logs"].Source)
			}
			require.Equal(t, tt.wantKept, b.labels(t, "SELECT description FROM activity_logs"))
			require.Zero(t, b.count(t, "SELECT count(*) FROM performance_metrics"), "other tables go on")
		})
	}
}
