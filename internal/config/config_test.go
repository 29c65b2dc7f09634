package config_test

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
)

func TestLoad(t *testing.T) {
	t.Parallel()

	secretFile := filepath.Join(t.TempDir(), "database-url")
	require.NoError(t, os.WriteFile(secretFile, []byte("postgres://u:s3cret@db/atis\n"), 0o600))
	appKey := "base64:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyFile := filepath.Join(t.TempDir(), "app-key")
	require.NoError(t, os.WriteFile(keyFile, []byte(appKey+"\n"), 0o600))
	badKeyFile := filepath.Join(t.TempDir(), "bad-key")
	require.NoError(t, os.WriteFile(badKeyFile, []byte("base64:c2VjcmV0\n"), 0o600))
	key := laravelcrypt.Key("0123456789abcdef0123456789abcdef")
	tokenFile := filepath.Join(t.TempDir(), "ui-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("0123456789abcdefXYZ\n"), 0o600))
	old := laravelcrypt.Key("fedcba9876543210")

	debug := slog.LevelDebug
	tests := []struct {
		name    string
		env     []string
		want    config.Config
		wantErr string
	}{
		{
			name: "Defaults",
			want: defaults(config.Config{}),
		},
		{
			name: "EverySetting",
			env: []string{"DATABASE_URL=postgres://a@b/c", "ATIS_HTTP_ADDR=:9000", "ATIS_LOG_FORMAT=json",
				"ATIS_LOG_LEVEL=debug", "ATIS_WORKERS=3", "ATIS_SOFT_STOP_TIMEOUT=5s"},
			want: defaults(config.Config{DatabaseURL: "postgres://a@b/c", HTTPAddr: ":9000", LogFormat: "json",
				LogLevel: &debug, SoftStopTimeout: 5 * time.Second, Workers: 3}),
		},
		{
			name: "DatabaseURLFromFile",
			env:  []string{"DATABASE_URL_FILE=" + secretFile},
			want: defaults(config.Config{DatabaseURL: "postgres://u:s3cret@db/atis", DatabaseURLFile: "postgres://u:s3cret@db/atis\n"}),
		},
		{
			name: "SchedulerSettings",
			env: []string{`ATIS_JOB_CLASS_ALIASES=App\Jobs\Ping=http_request,App\Jobs\Noop=noop`, "ATIS_ENABLE_SQL_JOBS=true",
				"ATIS_FAILURE_ALERT_THRESHOLD=5", "ATIS_JOB_TIMEOUT=2h", "ATIS_POLL_INTERVAL=3s", "ATIS_MISFIRE_GRACE=10s"},
			want: defaults(config.Config{JobClassAliases: map[string]string{`App\Jobs\Ping`: "http_request", `App\Jobs\Noop`: "noop"},
				EnableSQLJobs: true, FailureAlertThreshold: 5, JobTimeout: 2 * time.Hour, PollInterval: 3 * time.Second, MisfireGrace: 10 * time.Second}),
		},
		{name: "BadSQLSwitch", env: []string{"ATIS_ENABLE_SQL_JOBS=perhaps"}, wantErr: `ATIS_ENABLE_SQL_JOBS="perhaps" is not a valid boolean`},
		{name: "BadAliases", env: []string{"ATIS_JOB_CLASS_ALIASES=nonsense"}, wantErr: `ATIS_JOB_CLASS_ALIASES="nonsense" is not a valid list of alias=class pairs`},
		{name: "RiverUIOff", env: []string{"ATIS_RIVER_UI=off"}, want: defaults(config.Config{RiverUI: config.SwitchOff})},
		{name: "RiverUIFalse", env: []string{"ATIS_RIVER_UI=FALSE"}, want: defaults(config.Config{RiverUI: config.SwitchOff})},
		{name: "RiverUIOn", env: []string{"ATIS_RIVER_UI=true"}, want: defaults(config.Config{RiverUI: config.SwitchOn})},
		{name: "BadRiverUI", env: []string{"ATIS_RIVER_UI=maybe"}, wantErr: `ATIS_RIVER_UI="maybe" is not a valid switch (on or off)`},
		{name: "ZeroThreshold", env: []string{"ATIS_FAILURE_ALERT_THRESHOLD=-2"}, wantErr: "ATIS_FAILURE_ALERT_THRESHOLD=-2 is out of range: it must be between 1 and 1000"},
		{
			name: "SystemdCredential",
			env:  []string{"CREDENTIALS_DIRECTORY=" + filepath.Dir(secretFile)},
			want: defaults(config.Config{DatabaseURL: "postgres://u:s3cret@db/atis", DatabaseURLFile: "postgres://u:s3cret@db/atis\n",
				CredentialsDirectory: filepath.Dir(secretFile)}),
		},
		{name: "WorkersNotANumber", env: []string{"ATIS_WORKERS=many"}, wantErr: `ATIS_WORKERS="many" is not a valid whole number`},
		{name: "WorkersNegative", env: []string{"ATIS_WORKERS=-1"}, wantErr: "ATIS_WORKERS=-1 is out of range"},
		{name: "DBTimeZoneUnknown", env: []string{"ATIS_DB_TIMEZONE=Baku"}, wantErr: `ATIS_DB_TIMEZONE="Baku" is not a time zone: use an IANA name such as Asia/Baku`},
		{name: "PoolTooSmall", env: []string{"ATIS_DB_MAX_CONNS=2"}, wantErr: "ATIS_DB_MAX_CONNS=2 is out of range"},
		{name: "CooldownAbovePoll", env: []string{"ATIS_FETCH_COOLDOWN=2s"}, wantErr: "ATIS_FETCH_COOLDOWN=2s must be at least 1ms and at most ATIS_FETCH_POLL_INTERVAL=1s"},
		{name: "ImportDir", env: []string{"ATIS_IMPORT_DIR=/srv/atis/import"}, want: defaults(config.Config{ImportDir: "/srv/atis/import"})},
		{name: "RelativeImportDir", env: []string{"ATIS_IMPORT_DIR=import"}, wantErr: `ATIS_IMPORT_DIR="import" must be an absolute path`},
		{name: "BadLogFormat", env: []string{"ATIS_LOG_FORMAT=xml"}, wantErr: `ATIS_LOG_FORMAT="xml" is not one of text, json`},
		{name: "BadLogLevel", env: []string{"ATIS_LOG_LEVEL=loud"}, wantErr: `ATIS_LOG_LEVEL="loud" is not a valid log level`},
		{name: "BadHTTPAddr", env: []string{"ATIS_HTTP_ADDR=9464"}, wantErr: `ATIS_HTTP_ADDR="9464" is not a host:port`},
		{name: "BadDuration", env: []string{"ATIS_SOFT_STOP_TIMEOUT=soon"}, wantErr: `ATIS_SOFT_STOP_TIMEOUT="soon" is not a valid duration`},
		// Issue 16: each was accepted.
		{name: "PollTooFast", env: []string{"ATIS_POLL_INTERVAL=1ns"}, wantErr: "ATIS_POLL_INTERVAL=1ns is out of range: it must be between 100ms and 1h"},
		{name: "WorkersZero", env: []string{"ATIS_WORKERS=0"}, wantErr: "ATIS_WORKERS=0 is out of range: it must be between 1 and 10000"},
		{name: "PortTooHigh", env: []string{"ATIS_HTTP_ADDR=127.0.0.1:99999"}, wantErr: `ATIS_HTTP_ADDR="127.0.0.1:99999" is not a host:port listen address with a port from 0 to 65535`},
		{name: "PortZeroIsAnyPort", env: []string{"ATIS_HTTP_ADDR=127.0.0.1:0"}, want: defaults(config.Config{HTTPAddr: "127.0.0.1:0"})},
		{name: "SoftStopZero", env: []string{"ATIS_SOFT_STOP_TIMEOUT=0s"}, wantErr: "ATIS_SOFT_STOP_TIMEOUT=0s is out of range: it must be between 1s and 1h"},
		{name: "TrustedProxies", env: []string{"ATIS_HTTPS=true", "ATIS_TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.7,::1"}, want: defaults(config.Config{
			HTTPS: true, TrustedProxies: []config.Prefix{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, {Prefix: netip.MustParsePrefix("192.0.2.7/32")},
				{Prefix: netip.MustParsePrefix("::1/128")}}})},
		{name: "BadTrustedProxy", env: []string{"ATIS_TRUSTED_PROXIES=proxy.example"}, wantErr: `ATIS_TRUSTED_PROXIES="proxy.example" is not a valid list of IP addresses or CIDR ranges`},
		{name: "BadRedactPattern", env: []string{"ATIS_REDACT_PATTERNS=ok (unclosed"}, wantErr: `ATIS_REDACT_PATTERNS="ok (unclosed" is not a valid list of regular expressions separated by spaces`},
		{name: "RiverJobRetention", env: []string{"ATIS_RIVER_JOB_RETENTION=5m"}, want: defaults(config.Config{RiverJobRetention: 5 * time.Minute})},
		{name: "PrepareAhead", env: []string{"ATIS_PREPARE_AHEAD=500ms"}, want: defaults(config.Config{PrepareAhead: 500 * time.Millisecond})},
		{name: "PrepareAheadOff", env: []string{"ATIS_PREPARE_AHEAD=0"}, want: func() config.Config {
			c := defaults(config.Config{})
			c.PrepareAhead = 0
			return c
		}()},
		{name: "PrepareAheadTooLong", env: []string{"ATIS_PREPARE_AHEAD=11s"}, wantErr: "ATIS_PREPARE_AHEAD=11s is out of range: it must be between 0s and 10s"},
		{name: "RiverJobRetentionForever", env: []string{"ATIS_RIVER_JOB_RETENTION=-1ns"}, wantErr: "ATIS_RIVER_JOB_RETENTION=-1ns is out of range: it must be between 1m and 720h"},
		{name: "JobTimeoutTooLong", env: []string{"ATIS_JOB_TIMEOUT=9000h"}, wantErr: "ATIS_JOB_TIMEOUT=9000h is out of range: it must be between 1s and 168h"},
		{name: "AppKey", env: []string{"ATIS_APP_KEY=" + appKey}, want: defaults(config.Config{AppKey: key})},
		{name: "AppKeyRaw", env: []string{"ATIS_APP_KEY=0123456789abcdef0123456789abcdef"}, want: defaults(config.Config{AppKey: key})},
		{name: "AppKeyFromFile", env: []string{"ATIS_APP_KEY_FILE=" + keyFile}, want: defaults(config.Config{AppKey: key, AppKeyFile: key})},
		{
			name: "PreviousKeys",
			env:  []string{"ATIS_APP_KEY=" + appKey, "ATIS_APP_PREVIOUS_KEYS=base64:" + base64.StdEncoding.EncodeToString(old) + ",," + appKey},
			want: defaults(config.Config{AppKey: key, AppPreviousKeys: []laravelcrypt.Key{old, nil, key}}),
		},
		{name: "BadAppKey", env: []string{"ATIS_APP_KEY=base64:c2VjcmV0"}, wantErr: `ATIS_APP_KEY=(hidden) is not a valid application key ` +
			`(as the web app's APP_KEY: base64: and 44 characters): the key is 6 bytes; it must be 32 (AES-256) or 16 (AES-128)`},
		{name: "BadAppKeyRaw", env: []string{"ATIS_APP_KEY=secret"}, wantErr: `ATIS_APP_KEY=(hidden) is not a valid application key`},
		{name: "BadPreviousKey", env: []string{"ATIS_APP_PREVIOUS_KEYS=" + appKey + ",secret"}, wantErr: `ATIS_APP_PREVIOUS_KEYS=(hidden) is not a valid`},
		{name: "BadAppKeyFile", env: []string{"ATIS_APP_KEY_FILE=" + badKeyFile}, wantErr: `ATIS_APP_KEY_FILE="` + badKeyFile + `" is not a valid application key`},
		{name: "UIToken", env: []string{"ATIS_UI_TOKEN=0123456789abcdefXYZ"}, want: defaults(config.Config{UIToken: "0123456789abcdefXYZ"})},
		{
			name: "UITokenFromFile", env: []string{"ATIS_UI_TOKEN_FILE=" + tokenFile},
			want: defaults(config.Config{UIToken: "0123456789abcdefXYZ", UITokenFile: "0123456789abcdefXYZ\n"}),
		},
		{name: "ShortUIToken", env: []string{"ATIS_UI_TOKEN=secret"}, wantErr: "ATIS_UI_TOKEN (or ATIS_UI_TOKEN_FILE) is 6 characters: use at least 16"},
		{name: "MissingSecretFile", env: []string{"DATABASE_URL_FILE=/nonexistent/db-url"}, wantErr: "/nonexistent/db-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := config.Load(tt.env)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "c2VjcmV0")
				require.NotContains(t, err.Error(), "secret")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// defaults is c with every unset field at its documented default, spelled
// out here rather than taken from WithDefaults, which is under test.
func defaults(c config.Config) config.Config {
	info := slog.LevelInfo
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:9464"
	}
	if c.LogLevel == nil {
		c.LogLevel = &info
	}
	if c.Workers == 0 {
		c.Workers = 100
	}
	if c.DBMaxConns == 0 {
		c.DBMaxConns = min(c.Workers+10, 20)
	}
	if c.FailureAlertThreshold == 0 {
		c.FailureAlertThreshold = 3
	}
	set(&c.SoftStopTimeout, 30*time.Second)
	set(&c.JobTimeout, 30*time.Minute)
	set(&c.PollInterval, 10*time.Second)
	set(&c.MisfireGrace, time.Minute)
	if c.DBTimeZone == "" {
		c.DBTimeZone = "UTC"
	}
	set(&c.FetchCooldown, 10*time.Millisecond)
	set(&c.FetchPollInterval, time.Second)
	set(&c.RecordFlushInterval, 50*time.Millisecond)
	set(&c.RiverJobRetention, 24*time.Hour)
	set(&c.PrepareAhead, 2*time.Second)
	if c.RiverUI == "" {
		c.RiverUI = config.SwitchOn
	}
	return c
}

// TestAppKeysNeverPrint: a configuration printed whole shows no key.
// TestEverySettingIsBounded: for each ranged setting, its bounds load and
// one past either bound (and an explicit zero outside the range) is refused
// with a message naming the variable and the range; a value inside is kept.
func TestEverySettingIsBounded(t *testing.T) {
	t.Parallel()

	for _, r := range config.Ranges {
		field, _ := reflect.TypeFor[config.Config]().FieldByNameFunc(func(name string) bool {
			f, _ := reflect.TypeFor[config.Config]().FieldByName(name)
			tag, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			return tag == r.Var
		})
		isDuration := field.Type == reflect.TypeFor[time.Duration]()
		text := func(n int64) string {
			if isDuration {
				return time.Duration(n).String()
			}
			return strconv.FormatInt(n, 10)
		}
		// Settings tied to another are given room for it.
		extra := []string{"ATIS_FETCH_POLL_INTERVAL=1m", "ATIS_FETCH_COOLDOWN=1ms", "ATIS_WORKERS=10000"}
		load := func(n int64) (config.Config, error) {
			var env []string
			for _, e := range extra {
				if !strings.HasPrefix(e, r.Var+"=") {
					env = append(env, e)
				}
			}
			return config.Load(append(env, r.Var+"="+text(n)))
		}
		for _, n := range []int64{r.Min, r.Max, (r.Min + r.Max) / 2} {
			c, err := load(n)
			require.NoError(t, err, "%s=%s", r.Var, text(n))
			require.Equal(t, n, reflect.ValueOf(c).FieldByIndex(field.Index).Int(), "%s=%s is kept", r.Var, text(n))
		}
		for _, n := range []int64{r.Min - 1, r.Max + 1, 0} {
			if n >= r.Min && n <= r.Max {
				continue
			}
			_, err := load(n)
			require.ErrorContains(t, err, r.Var+"=", "%s=%s", r.Var, text(n))
			require.ErrorContains(t, err, "is out of range: it must be between", "%s=%s", r.Var, text(n))
		}
	}
}

func TestAppKeysNeverPrint(t *testing.T) {
	t.Parallel()

	key := "base64:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	cfg, err := config.Load([]string{"ATIS_APP_KEY=" + key, "ATIS_APP_PREVIOUS_KEYS=" + key, "ATIS_UI_TOKEN=0123456789abcdefUI"})
	require.NoError(t, err)
	require.Len(t, cfg.AppKeys(), 2)
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		require.NotContains(t, s, "0123456789")
		require.NotContains(t, s, "MDEy")
		require.NotContains(t, s, "48 49 50") // the bytes as numbers
	}
}

func TestRequireDatabase(t *testing.T) {
	t.Parallel()

	require.ErrorIs(t, config.Config{}.RequireDatabase(), config.ErrNoDatabaseURL)
	require.NoError(t, config.Config{DatabaseURL: "postgres://x"}.RequireDatabase())
}
