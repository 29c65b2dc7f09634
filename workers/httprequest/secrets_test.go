package httprequest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/settingstest"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/atis-edu/atis-scheduler/workers/httprequest"
)

var (
	appKey   = laravelcrypt.Key("0123456789abcdef0123456789abcdef")
	otherKey = laravelcrypt.Key("fedcba9876543210fedcba9876543210")
)

// headerServer answers every request with status and keeps the headers it
// received.
type headerServer struct {
	*httptest.Server
	mu       sync.Mutex
	received []http.Header
}

func newHeaderServer(t *testing.T, status int) *headerServer {
	t.Helper()
	s := &headerServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.received = append(s.received, r.Header.Clone())
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *headerServer) headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// rowsHolding counts, by table, the rows of every table of the database
// whose text holds secret; scheduled_jobs.parameters, where an admin put
// it, is left out.
func rowsHolding(t *testing.T, pool *pgxpool.Pool, secret string) map[string]int {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "public.river_job")
	found := map[string]int{}
	for _, table := range tables {
		text := "x::text"
		if table == "public.scheduled_jobs" {
			text = "(to_jsonb(x) - 'parameters')::text"
		}
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` x WHERE strpos(`+text+`, $1) > 0`, secret).Scan(&n))
		if n > 0 {
			found[table] = n
		}
	}
	return found
}

// TestHTTPRequestSecretsStayOutOfTheQueue: header values of an http_request
// schedule reach the server, and no row of the database but the schedule's
// own parameters, whether the run succeeds or fails: not River's job (args,
// errors, metadata), not job_logs, not the schedule's other columns.
func TestHTTPRequestSecretsStayOutOfTheQueue(t *testing.T) {
	t.Parallel()

	for name, status := range map[string]int{"Succeeds": http.StatusOK, "Fails": http.StatusInternalServerError} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			secret := fmt.Sprintf("planted-SECRET-%d", status)
			pool := dbtest.NewPool(t)
			exec(t, pool, `INSERT INTO system_configs (config_key, config_value, data_type) VALUES ('lms.tenant', '"tenant-1"', 'string')`)
			server := newHeaderServer(t, status)
			h := schedtest.Start(t, pool, httprequest.New(httprequest.Config{Pool: pool}))
			out := h.Run(t, "http_request", map[string]any{"url": server.URL + "/hook",
				"headers": map[string]any{"Authorization": "Bearer " + secret, "X-Api-Key": secret + "-key", "X-Tenant": map[string]string{"from_config": "lms.tenant"}}})
			if status == http.StatusOK {
				require.Equal(t, "completed", out.Status, out.Error)
			} else {
				require.Equal(t, "failed", out.Status)
				require.Contains(t, out.Error, "answered 500")
			}
			require.Len(t, server.headers(), 1)
			require.Equal(t, "Bearer "+secret, server.headers()[0].Get("Authorization"))
			require.Equal(t, secret+"-key", server.headers()[0].Get("X-Api-Key"))
			require.Equal(t, "tenant-1", server.headers()[0].Get("X-Tenant"))

			require.Empty(t, rowsHolding(t, pool, secret), "rows holding the secret")
			require.Equal(t, 1, dbtest.Scalar[int](t, pool, `SELECT count(*) FROM scheduled_jobs WHERE strpos(parameters::text, $1) > 0`, secret))
			args := dbtest.Scalar[string](t, pool, `SELECT args::text FROM river_job`)
			require.Contains(t, args, `"parameters_redacted": true`)
			require.Contains(t, args, `"X-Tenant": {"from_config": "lms.tenant"}`, "a reference is no secret: shown as is")
			require.Equal(t, 1, dbtest.Scalar[int](t, pool, `SELECT count(*) FROM job_logs WHERE payload->'parameters'->'headers'->>'Authorization' = '[redacted]'`))
		})
	}
}

// TestHTTPRequestFromConfig: a header {"from_config": key} takes its value at
// run time from system_configs (scope global, the newest row), decrypted
// with the app key when encrypted; what cannot be read fails the run with a
// message naming the key, never the value, and sends nothing.
func TestHTTPRequestFromConfig(t *testing.T) {
	t.Parallel()

	const secret = "cfg-SECRET-value"
	encrypt := func(t *testing.T, plain string, key laravelcrypt.Key) string {
		t.Helper()
		return string(settingstest.Encrypted(t, plain, key))
	}
	tests := []struct {
		name      string
		insert    func(t *testing.T, pool *pgxpool.Pool)
		key       string // the header's config key; lms.token unless set
		keys      laravelcrypt.Keys
		wantSent  string
		wantError string
	}{
		{
			name: "Encrypted",
			insert: func(t *testing.T, pool *pgxpool.Pool) {
				exec(t, pool, `INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted)
					VALUES ('lms.token', $1, 'global', 'string', true)`, encrypt(t, "Bearer "+secret, appKey))
			},
			keys: laravelcrypt.Keys{appKey}, wantSent: "Bearer " + secret,
		},
		{
			name: "EncryptedSerializedWithPreviousKey",
			insert: func(t *testing.T, pool *pgxpool.Pool) {
				exec(t, pool, `INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted)
					VALUES ('lms.token', $1, 'global', 'string', true)`, encrypt(t, fmt.Sprintf(`s:%d:"%s";`, len(secret), secret), appKey))
			},
			keys: laravelcrypt.Keys{otherKey, appKey}, wantSent: secret,
		},
		{
			name: "PlainNewestOfDuplicates",
			insert: func(t *testing.T, pool *pgxpool.Pool) {
				exec(t, pool, `INSERT INTO system_configs (config_key, config_value, scope, data_type, updated_at) VALUES
					('lms.token', '"stale"', 'global', 'string', now() - interval '1 hour'),
					('lms.token', to_jsonb($1::text), 'global', 'string', now()),
					('lms.token', '"of a module"', 'module', 'string', now() + interval '1 hour')`, secret)
			},
			wantSent: secret,
		},
		{
			name: "NoAppKey",
			insert: func(t *testing.T, pool *pgxpool.Pool) {
				exec(t, pool, `INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted)
					VALUES ('lms.token', $1, 'global', 'string', true)`, encrypt(t, secret, appKey))
			},
			wantError: `http_request: header "Authorization": system_configs lms.token is encrypted; set ATIS_APP_KEY (the web app's APP_KEY) to read it`,
		},
		{
			name: "WrongAppKey",
			insert: func(t *testing.T, pool *pgxpool.Pool) {
				exec(t, pool, `INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted)
					VALUES ('lms.token', $1, 'global', 'string', true)`, encrypt(t, secret, appKey))
			},
			keys:      laravelcrypt.Keys{otherKey},
			wantError: `http_request: header "Authorization": system_configs lms.token could not be decrypted with ATIS_APP_KEY (MAC mismatch: is it the web app's APP_KEY?)`,
		},
		{
			name:      "MissingKey",
			insert:    func(*testing.T, *pgxpool.Pool) {},
			key:       "lms.missing",
			keys:      laravelcrypt.Keys{appKey},
			wantError: `http_request: header "Authorization": system_configs lms.missing is not set`,
		},
		{
			name: "NotAString",
			insert: func(t *testing.T, pool *pgxpool.Pool) {
				exec(t, pool, `INSERT INTO system_configs (config_key, config_value, scope, data_type)
					VALUES ('lms.token', jsonb_build_object('token', $1::text), 'global', 'json')`, secret)
			},
			wantError: `http_request: header "Authorization": system_configs lms.token is not a string, a number or a boolean`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			pool := dbtest.NewPool(t)
			tt.insert(t, pool)
			server := newHeaderServer(t, http.StatusOK)
			h := schedtest.Start(t, pool, httprequest.New(httprequest.Config{Pool: pool, AppKeys: tt.keys}))
			key := tt.key
			if key == "" {
				key = "lms.token"
			}
			out := h.Run(t, "http_request", map[string]any{"url": server.URL,
				"headers": map[string]any{"Authorization": map[string]string{"from_config": key}, "X-Tenant": "atis"}})
			if tt.wantError != "" {
				require.Equal(t, "cancelled", out.Status)
				require.Equal(t, tt.wantError, out.Error)
				require.Empty(t, server.headers(), "nothing is sent")
			} else {
				require.Equal(t, "completed", out.Status, out.Error)
				require.Len(t, server.headers(), 1)
				require.Equal(t, tt.wantSent, server.headers()[0].Get("Authorization"))
				require.Equal(t, "atis", server.headers()[0].Get("X-Tenant"))
			}
			found := rowsHolding(t, pool, secret)
			if tt.name == "PlainNewestOfDuplicates" || tt.name == "NotAString" {
				require.Equal(t, map[string]int{"public.system_configs": 1}, found, "the value is where the admin put it, and only there")
			} else {
				require.Empty(t, found, "rows holding the decrypted value")
			}
		})
	}
}

// TestHTTPRequestRunTimeParameters: a run whose queued parameters are
// redacted reads its schedule's when it runs; a schedule gone or no longer
// valid cancels the run with a message saying so.
func TestHTTPRequestRunTimeParameters(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	server := newHeaderServer(t, http.StatusNoContent)
	class := httprequest.New(httprequest.Config{Pool: pool})
	redacted := func(params string) workers.Args {
		return workers.Args{Parameters: httprequest.Redact(json.RawMessage(params)), ParametersRedacted: true}
	}
	schedule := func(t *testing.T, params string) int64 {
		t.Helper()
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters, is_active)
			VALUES ('h', 'http_request', '0 0 1 1 *', $1, false) RETURNING id`, params).Scan(&id))
		return id
	}
	work := func(t *testing.T, class workers.Class, args workers.Args) *rivertest.WorkResult {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		worker, ok := workers.WorkerOf(class)
		require.True(t, ok)
		res, err := rivertest.NewWorker(t, riverpgxv5.New(pool), &river.Config{}, worker).
			Work(ctx, t, tx, workers.NewRunArgs(httprequest.Name, args), nil)
		require.NoError(t, err)
		return res
	}
	lastError := func(res *rivertest.WorkResult) string {
		return strings.TrimPrefix(res.Job.Errors[len(res.Job.Errors)-1].Error, "JobCancelError: ")
	}
	valid := fmt.Sprintf(`{"url": %q, "headers": {"Authorization": "Bearer rt-SECRET"}}`, server.URL)

	t.Run("ReadsTheSchedule", func(t *testing.T) {
		args := redacted(valid)
		args.ScheduledJobID = schedule(t, valid)
		res := work(t, class, args)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, "Bearer rt-SECRET", server.headers()[0].Get("Authorization"))
	})
	t.Run("ScheduleGone", func(t *testing.T) {
		args := redacted(valid)
		args.ScheduledJobID = 987654
		res := work(t, class, args)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, "http_request: scheduled job 987654 is gone: its parameters (redacted in the queue) cannot be read", lastError(res))
	})
	t.Run("NoLongerValid", func(t *testing.T) {
		args := redacted(valid)
		args.ScheduledJobID = schedule(t, `{"url": "ftp://example.test", "headers": {"Authorization": "Bearer rt-SECRET"}}`)
		res := work(t, class, args)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, fmt.Sprintf(`scheduled job %d: its parameters no longer validate: http_request parameters: "url" "ftp://example.test" is not an absolute http(s) URL`,
			args.ScheduledJobID), lastError(res))
	})
	t.Run("NoDatabase", func(t *testing.T) {
		args := redacted(valid)
		args.ScheduledJobID = schedule(t, valid)
		res := work(t, httprequest.New(httprequest.Config{}), args)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Equal(t, "http_request: the queued parameters are redacted and no database is configured to read them", lastError(res))
	})
}

// TestHTTPRequestHeaderValues: a header value is a string or a from_config
// reference; errors name the header and never quote its value; Redact shows
// references and hides strings.
func TestHTTPRequestHeaderValues(t *testing.T) {
	t.Parallel()

	class := httprequest.New(httprequest.Config{})
	tests := []struct {
		headers string
		wantErr string
	}{
		{headers: `{"A": "v-SECRET", "B": {"from_config": "lms.token"}}`},
		{headers: `{"A": 12345}`, wantErr: `http_request parameters: header "A" must be a string or {"from_config": "<system_configs key>"}`},
		{headers: `{"A": {"from_config": ""}}`, wantErr: `header "A" must be a string or`},
		{headers: `{"A": {"from_config": 7}}`, wantErr: `header "A" must be a string or`},
		{headers: `{"A": {"from_config": "k", "value": "v-SECRET"}}`, wantErr: `header "A" must be a string or`},
		{headers: `{"A": ["v-SECRET"]}`, wantErr: `header "A" must be a string or`},
	}
	for _, tt := range tests {
		err := class.ValidateParameters(json.RawMessage(`{"url": "https://example.test", "headers": ` + tt.headers + `}`))
		if tt.wantErr == "" {
			require.NoError(t, err, tt.headers)
			continue
		}
		require.ErrorContains(t, err, tt.wantErr, tt.headers)
		require.NotContains(t, err.Error(), "SECRET")
		require.NotContains(t, err.Error(), "12345")
	}
	shown := httprequest.Redact(json.RawMessage(`{"url": "https://u:p-SECRET@example.test/x?k=q-SECRET",
		"headers": {"A": "v-SECRET", "B": {"from_config": "lms.token"}, "C": {"from_config": "k", "value": "v-SECRET"}}}`))
	require.JSONEq(t, `{"url": "https://[redacted]@example.test/x?k=[redacted]",
		"headers": {"A": "[redacted]", "B": {"from_config": "lms.token"}, "C": "[redacted]"}}`, string(shown))
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// TestTimeoutOfRedactedParameters: a run queued with redacted parameters
// (a URL whose user info reads [redacted] does not parse) keeps its own
// timeout_seconds, not the client's job timeout.
func TestTimeoutOfRedactedParameters(t *testing.T) {
	t.Parallel()

	params := json.RawMessage(`{"url": "https://user:pa55-SECRET@example.test/x", "timeout_seconds": 120}`)
	worker, ok := workers.WorkerOf(httprequest.New(httprequest.Config{}))
	require.True(t, ok)
	args := workers.Args{Parameters: httprequest.Redact(params), ParametersRedacted: true, ScheduledJobID: 7}
	require.Contains(t, string(args.Parameters), "[redacted]@")
	got := worker.Timeout(&river.Job[workers.RunArgs]{Args: workers.NewRunArgs(httprequest.Name, args)})
	require.Equal(t, 125*time.Second, got)
}
