package config_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/config"
)

func TestLoad(t *testing.T) {
	t.Parallel()

	secretFile := filepath.Join(t.TempDir(), "db-url")
	require.NoError(t, os.WriteFile(secretFile, []byte("postgres://u:s3cret@db/atis\n"), 0o600))

	debug := slog.LevelDebug
	info := slog.LevelInfo
	tests := []struct {
		name    string
		env     []string
		want    config.Config
		wantErr string
	}{
		{
			name: "Defaults",
			want: config.Config{HTTPAddr: "127.0.0.1:9464", LogLevel: &info, SoftStopTimeout: 30 * time.Second, Workers: 10},
		},
		{
			name: "EverySetting",
			env: []string{"DATABASE_URL=postgres://a@b/c", "ATIS_HTTP_ADDR=:9000", "ATIS_LOG_FORMAT=json",
				"ATIS_LOG_LEVEL=debug", "ATIS_WORKERS=3", "ATIS_SOFT_STOP_TIMEOUT=5s"},
			want: config.Config{DatabaseURL: "postgres://a@b/c", HTTPAddr: ":9000", LogFormat: "json",
				LogLevel: &debug, SoftStopTimeout: 5 * time.Second, Workers: 3},
		},
		{
			name: "DatabaseURLFromFile",
			env:  []string{"DATABASE_URL_FILE=" + secretFile},
			want: config.Config{DatabaseURL: "postgres://u:s3cret@db/atis", DatabaseURLFile: "postgres://u:s3cret@db/atis\n",
				HTTPAddr: "127.0.0.1:9464", LogLevel: &info, SoftStopTimeout: 30 * time.Second, Workers: 10},
		},
		{name: "WorkersNotANumber", env: []string{"ATIS_WORKERS=many"}, wantErr: `ATIS_WORKERS="many" is not a valid whole number`},
		{name: "WorkersNegative", env: []string{"ATIS_WORKERS=-1"}, wantErr: "ATIS_WORKERS=-1 is out of range"},
		{name: "BadLogFormat", env: []string{"ATIS_LOG_FORMAT=xml"}, wantErr: `ATIS_LOG_FORMAT="xml" is not one of text, json`},
		{name: "BadLogLevel", env: []string{"ATIS_LOG_LEVEL=loud"}, wantErr: `ATIS_LOG_LEVEL="loud" is not a valid log level`},
		{name: "BadHTTPAddr", env: []string{"ATIS_HTTP_ADDR=9464"}, wantErr: `ATIS_HTTP_ADDR="9464" is not a host:port`},
		{name: "BadDuration", env: []string{"ATIS_SOFT_STOP_TIMEOUT=soon"}, wantErr: `ATIS_SOFT_STOP_TIMEOUT="soon" is not a valid duration`},
		{name: "MissingSecretFile", env: []string{"DATABASE_URL_FILE=/nonexistent/db-url"}, wantErr: "/nonexistent/db-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := config.Load(tt.env)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRequireDatabase(t *testing.T) {
	t.Parallel()

	require.ErrorIs(t, config.Config{}.RequireDatabase(), config.ErrNoDatabaseURL)
	require.NoError(t, config.Config{DatabaseURL: "postgres://x"}.RequireDatabase())
}
