package settings_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/settings"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/settingstest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var (
	appKey   = laravelcrypt.Key("0123456789abcdef0123456789abcdef")
	otherKey = laravelcrypt.Key("fedcba9876543210fedcba9876543210")
)

// encrypted is config_value of an encrypted row: the JSON string of the
// payload of plain.
func encrypted(t *testing.T, plain string) json.RawMessage {
	t.Helper()
	return settingstest.Encrypted(t, plain, appKey)
}

func TestDecode(t *testing.T) {
	t.Parallel()

	keys := laravelcrypt.Keys{appKey}
	tests := []struct {
		name      string
		value     json.RawMessage
		dataType  string
		encrypted bool
		keys      laravelcrypt.Keys
		want      string
		wantErr   string
	}{
		{name: "PlainAsStored", value: json.RawMessage(`"30"`), dataType: "integer", want: `"30"`},
		{name: "PlainObject", value: json.RawMessage(`{"value": [1]}`), dataType: "json", want: `{"value": [1]}`},
		{name: "String", value: encrypted(t, "Bearer s3cr3t"), dataType: "string", encrypted: true, keys: keys, want: `"Bearer s3cr3t"`},
		{name: "SerializedString", value: encrypted(t, `s:6:"s3cr3t";`), dataType: "string", encrypted: true, keys: keys, want: `"s3cr3t"`},
		{name: "StringWithQuotes", value: encrypted(t, `a "quoted" \ value`), dataType: "string", encrypted: true, keys: keys, want: `"a \"quoted\" \\ value"`},
		{name: "Integer", value: encrypted(t, "45"), dataType: "integer", encrypted: true, keys: keys, want: `45`},
		{name: "SerializedInteger", value: encrypted(t, "i:45;"), dataType: "integer", encrypted: true, keys: keys, want: `45`},
		{name: "SerializedIntegerString", value: encrypted(t, `s:2:"45";`), dataType: "integer", encrypted: true, keys: keys, want: `45`},
		{name: "Boolean", value: encrypted(t, "true"), dataType: "boolean", encrypted: true, keys: keys, want: `true`},
		{name: "SerializedBoolean", value: encrypted(t, "b:0;"), dataType: "boolean", encrypted: true, keys: keys, want: `false`},
		{name: "BooleanOne", value: encrypted(t, "1"), dataType: "boolean", encrypted: true, keys: keys, want: `true`},
		{name: "JSON", value: encrypted(t, `{"a": [1, 2]}`), dataType: "json", encrypted: true, keys: keys, want: `{"a":[1,2]}`},
		{name: "Array", value: encrypted(t, ` [30, 7, 1] `), dataType: "array", encrypted: true, keys: keys, want: `[30,7,1]`},
		{name: "SerializedJSON", value: encrypted(t, `s:6:"[3, 2]";`), dataType: "array", encrypted: true, keys: keys, want: `[3,2]`},
		{name: "PreviousKey", value: encrypted(t, "x"), dataType: "string", encrypted: true, keys: laravelcrypt.Keys{otherKey, appKey}, want: `"x"`},

		{name: "NoKey", value: encrypted(t, "s3cr3t"), dataType: "string", encrypted: true,
			wantErr: "system_configs k is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it"},
		{name: "WrongKey", value: encrypted(t, "s3cr3t"), dataType: "string", encrypted: true, keys: laravelcrypt.Keys{otherKey},
			wantErr: "system_configs k could not be decrypted with ATIS_APP_KEY (MAC mismatch: is it the web app's APP_KEY?)"},
		{name: "NotAString", value: json.RawMessage(`{"iv": "s3cr3t"}`), dataType: "string", encrypted: true, keys: keys,
			wantErr: "system_configs k is marked encrypted but config_value is not a JSON string holding the encrypted payload"},
		{name: "NotAPayload", value: json.RawMessage(`"s3cr3t in clear"`), dataType: "string", encrypted: true, keys: keys,
			wantErr: "system_configs k is marked encrypted but could not be decrypted: laravelcrypt: not a valid encrypted payload: not base64"},
		{name: "NotAnInteger", value: encrypted(t, "s3cr3t"), dataType: "integer", encrypted: true, keys: keys,
			wantErr: "system_configs k (data_type integer): the decrypted value is not a whole number"},
		{name: "NotABoolean", value: encrypted(t, "s3cr3t"), dataType: "boolean", encrypted: true, keys: keys,
			wantErr: "system_configs k (data_type boolean): the decrypted value is not true, false, 1 or 0"},
		{name: "NotJSON", value: encrypted(t, "{s3cr3t"), dataType: "json", encrypted: true, keys: keys,
			wantErr: "system_configs k (data_type json): the decrypted value is not JSON"},
		{name: "NotAnArray", value: encrypted(t, `{"s3cr3t": 1}`), dataType: "array", encrypted: true, keys: keys,
			wantErr: "system_configs k (data_type array): the decrypted value is not a JSON array"},
		{name: "UnknownType", value: encrypted(t, "s3cr3t"), dataType: "blob", encrypted: true, keys: keys,
			wantErr: "system_configs k (data_type blob): the decrypted value cannot be read: that data_type is not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := settings.Decode("k", tt.value, tt.dataType, tt.encrypted, tt.keys)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "s3cr3t")
				var verr *settings.ValueError
				require.ErrorAs(t, err, &verr)
				return
			}
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))
			require.Equal(t, tt.want, string(got))
		})
	}
}

func TestReader(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	_, err := pool.Exec(ctx, `INSERT INTO system_configs (config_key, config_value, scope, scope_id, data_type, is_encrypted, updated_at) VALUES
		('token', $1, 'global', NULL, 'string', true, now() - interval '1 day'),
		('token', $2, 'global', NULL, 'string', true, now()),
		('token', '"global, stale, with a scope_id"', 'global', 9, 'string', false, now() - interval '2 days'),
		('token', '"module one"', 'module', 1, 'string', false, now()),
		('days', '"30"', 'global', NULL, 'integer', false, now()),
		('days', $3, 'module', 7, 'integer', true, now()),
		('broken', '"not a payload"', 'global', NULL, 'string', true, now())`,
		encrypted(t, "old token"), encrypted(t, "new token"), encrypted(t, "i:12;"))
	require.NoError(t, err)
	reader := settings.Reader{Pool: pool, Keys: laravelcrypt.Keys{appKey}}

	t.Run("GetNewestOfDuplicates", func(t *testing.T) {
		t.Parallel()

		got, err := reader.Get(ctx, "token", "global", nil)
		require.NoError(t, err)
		require.Equal(t, `"new token"`, string(got))
	})
	t.Run("GetScoped", func(t *testing.T) {
		t.Parallel()

		got, err := reader.Get(ctx, "days", "module", new(int64(7)))
		require.NoError(t, err)
		require.Equal(t, `12`, string(got))
	})
	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()

		_, err := reader.Get(ctx, "nope", "global", nil)
		require.ErrorIs(t, err, settings.ErrNotFound)
		require.EqualError(t, err, "system_configs nope is not set")
		_, err = reader.Get(ctx, "days", "module", new(int64(8)))
		require.EqualError(t, err, "system_configs days (scope module, scope_id 8) is not set")
	})
	t.Run("GetWithoutKey", func(t *testing.T) {
		t.Parallel()

		_, err := settings.Reader{Pool: pool}.Get(ctx, "token", "global", nil)
		require.EqualError(t, err, "system_configs token is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it")
	})
	t.Run("Latest", func(t *testing.T) {
		t.Parallel()

		got, err := reader.Latest(ctx, []string{"token", "days", "broken"}, "global", "module")
		require.NoError(t, err)
		var lines []string
		for _, s := range got {
			line := s.Name() + " = " + string(s.Value)
			if s.Err != nil {
				line = s.Err.Error()
			}
			lines = append(lines, line)
		}
		require.Equal(t, []string{
			"system_configs broken is marked encrypted but could not be decrypted: laravelcrypt: not a valid encrypted payload: not base64",
			`days = "30"`,
			"days (scope module, scope_id 7) = 12",
			`token = "new token"`,
			`token (scope module, scope_id 1) = "module one"`,
		}, lines)
		require.True(t, got[2].Encrypted)
		require.False(t, got[1].Encrypted)
		require.NotContains(t, strings.Join(lines, "\n"), "old token")
		require.NotContains(t, strings.Join(lines, "\n"), "stale")
	})
}
