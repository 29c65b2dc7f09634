package main_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	"github.com/stretchr/testify/require"
)

// secretsAPI answers the planted-secrets runs and counts, per path, the
// requests that carried the secret they should.
type secretsAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]int
}

func newSecretsAPI(t *testing.T, want map[string][2]string) *secretsAPI {
	t.Helper()
	a := &secretsAPI{seen: map[string]int{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header, value := want[r.URL.Path][0], want[r.URL.Path][1]
		got := r.Header.Get(header)
		if got == value {
			a.mu.Lock()
			a.seen[r.URL.Path]++
			a.mu.Unlock()
		}
		// A careless provider quotes the credentials it was sent.
		echo := "rejected " + header + ": " + got
		switch {
		case strings.HasSuffix(r.URL.Path, "/ok") && strings.HasPrefix(r.URL.Path, "/sync"):
			_, _ = w.Write([]byte(`{"data": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]}`))
		case strings.HasSuffix(r.URL.Path, "/ok"):
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/refused"):
			http.Error(w, echo, http.StatusUnauthorized)
		case strings.HasSuffix(r.URL.Path, "/echo"):
			_, _ = w.Write([]byte(echo)) // 200, not JSON
		default:
			http.Error(w, echo, http.StatusInternalServerError)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *secretsAPI) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[path]
}

// laravelEncrypt encrypts plain as Laravel's Crypt::encryptString does
// with an AES-256-CBC APP_KEY: the base64 of {"iv", "value", "mac", "tag"}.
func laravelEncrypt(t *testing.T, key []byte, plain string) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	iv := make([]byte, aes.BlockSize)
	_, _ = rand.Read(iv)
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	data := append([]byte(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)
	ivText, valueText := base64.StdEncoding.EncodeToString(iv), base64.StdEncoding.EncodeToString(data)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ivText + valueText))
	payload, err := json.Marshal(map[string]string{"iv": ivText, "value": valueText, "mac": hex.EncodeToString(mac.Sum(nil)), "tag": ""})
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(payload)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestChaosPlantedSecrets plants secrets where admins put them: an
// integration's bearer token, an http_request header value, and a header
// read from an encrypted system_configs row (from_config). Across
// succeeding and failing runs, a manual run, retries, a provider that
// refuses the token and one that quotes it back, none of them may appear in
// the daemon's output, /metrics, or any column of any table, except each in
// its own source column; the decrypted config value and the APP_KEY
// appear nowhere at all.
func TestChaosPlantedSecrets(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	appKey := make([]byte, 32)
	_, _ = rand.Read(appKey)
	otherKey := make([]byte, 32)
	_, _ = rand.Read(otherKey)
	appKeyText := "base64:" + base64.StdEncoding.EncodeToString(appKey)
	var (
		bearer     = "chaos-bearer-" + randomHex(12)
		inline     = "chaos-inline-" + randomHex(12)
		fromConfig = "chaos-config-" + randomHex(12)
		wrongKey   = "chaos-wrongkey-" + randomHex(12)
		// Issue 16: a token in the URL's path (Telegram's shape), one in
		// its fragment (OAuth's), a body field named password.
		pathToken = "chaosPATH" + randomHex(8)
		fragment  = "chaos-frag-" + randomHex(12)
		bodyPass  = "chaos-body-" + randomHex(12)
	)
	pathTokenPath := "/bot424242:" + pathToken + "/send"
	api := newSecretsAPI(t, map[string][2]string{
		"/sync/ok": {"Authorization", "Bearer " + bearer}, "/sync/refused": {"Authorization", "Bearer " + bearer},
		"/sync/echo": {"Authorization", "Bearer " + bearer},
		"/inline/ok": {"X-Api-Key", inline}, "/inline/fail": {"X-Api-Key", inline},
		"/config/ok": {"Authorization", fromConfig}, "/config/fail": {"Authorization", fromConfig},
		"/config/badkey": {"Authorization", wrongKey},
	})

	url := migratedURL(t)
	pool := observerPool(t, url)
	_, err := pool.Exec(ctx, `INSERT INTO system_configs (config_key, config_value, scope, data_type, is_encrypted)
		VALUES ('chaos.api_token', to_jsonb($1::text), 'global', 'string', true),
		       ('chaos.wrong_key', to_jsonb($2::text), 'global', 'string', true)`,
		laravelEncrypt(t, appKey, fromConfig), laravelEncrypt(t, otherKey, wrongKey))
	require.NoError(t, err)
	for _, name := range []string{"ok", "refused", "echo"} {
		cfg, _ := json.Marshal(map[string]any{"base_url": api.URL + "/sync/" + name, "records_path": "data", "id_field": "id",
			"max_retries": 0, "timeout_seconds": 5})
		creds, _ := json.Marshal(map[string]any{"type": "bearer", "token": bearer})
		_, err := pool.Exec(ctx, `WITH i AS (
				INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
				VALUES ($1, 'api', 'http_json', $2, $3, true) RETURNING id)
			INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters)
			SELECT 'secret-sync-' || $4, 'integration_sync', '*/2 * * * * *', jsonb_build_object('integration_id', i.id) FROM i`,
			"secret-sync-"+name, cfg, creds, name)
		require.NoError(t, err)
	}
	httpJobs := []struct {
		name, path string
		headers    map[string]any
	}{
		{"secret-inline-ok", "/inline/ok", map[string]any{"X-Api-Key": inline}},
		{"secret-inline-fail", "/inline/fail", map[string]any{"X-Api-Key": inline}},
		{"secret-config-ok", "/config/ok", map[string]any{"Authorization": map[string]any{"from_config": "chaos.api_token"}}},
		{"secret-config-fail", "/config/fail", map[string]any{"Authorization": map[string]any{"from_config": "chaos.api_token"}}},
		{"secret-config-badkey", "/config/badkey", map[string]any{"Authorization": map[string]any{"from_config": "chaos.wrong_key"}}},
	}
	for _, j := range httpJobs {
		params, _ := json.Marshal(map[string]any{"url": api.URL + j.path, "headers": j.headers, "timeout_seconds": 5})
		_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters, max_attempts, retry_delay_minutes)
			VALUES ($1, 'http_request', '*/2 * * * * *', $2, 2, 0)`, j.name, params)
		require.NoError(t, err)
	}
	params, _ := json.Marshal(map[string]any{"url": api.URL + pathTokenPath + "?chat=1#access_token=" + fragment, "method": "POST",
		"body": map[string]any{"user": "ops", "password": bodyPass}, "timeout_seconds": 5})
	_, err = pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters, max_attempts, retry_delay_minutes)
		VALUES ('secret-path-token', 'http_request', '*/2 * * * * *', $1, 2, 0)`, params)
	require.NoError(t, err)

	env := []string{"DATABASE_URL=" + url, "ATIS_APP_KEY=" + appKeyText, "ATIS_SOFT_STOP_TIMEOUT=2s", "ATIS_POLL_INTERVAL=1s"}
	d := startDaemon(t, append(env, "ATIS_LOG_LEVEL=debug")...)
	addr := waitFor(t, d.lines, "ready")["http_addr"].(string)
	manual := run(t, env, "jobs", "run", "secret-inline-ok")
	paths := []string{"/sync/ok", "/sync/refused", "/sync/echo", "/inline/ok", "/inline/fail", "/config/ok", "/config/fail", pathTokenPath}
	used := poll(chaosDuration(20*time.Second, 60*time.Second), 200*time.Millisecond, func() bool {
		for _, p := range paths {
			if api.count(p) < 2 {
				return false
			}
		}
		return true
	})
	if chaosFull {
		time.Sleep(30 * time.Second) // more runs, retries and failures
	}
	_, metrics := get(t, addr, "/metrics")
	d.stop(t)
	output := d.output.String() + manual.stdout + manual.stderr + metrics
	for _, p := range paths {
		t.Logf("planted secrets: %-14s %d requests carried the secret", p, api.count(p))
	}
	require.True(t, used, "every secret reached its server twice (so it was really read and used)")
	require.Equal(t, 0, manual.code, manual.stderr)
	var badkeyMsg string
	require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(l.error_message, '') FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE s.name = 'secret-config-badkey' ORDER BY l.id DESC LIMIT 1`).Scan(&badkeyMsg))
	require.Contains(t, badkeyMsg, "chaos.wrong_key", "the undecryptable config row fails its run, naming the row")

	secrets := []struct {
		name, value string
		home        string // the one column allowed to hold it, "" for none
	}{
		{"bearer token", bearer, "public.integrations.credentials"},
		{"inline header", inline, "public.scheduled_jobs.parameters"},
		{"from_config value", fromConfig, ""},
		{"value under another key", wrongKey, ""},
		{"ATIS_APP_KEY", appKeyText[len("base64:"):], ""},
		{"token in a URL's path", pathToken, "public.scheduled_jobs.parameters"},
		{"token in a URL's fragment", fragment, "public.scheduled_jobs.parameters"},
		{"body field password", bodyPass, "public.scheduled_jobs.parameters"},
	}
	values := make([]string, len(secrets))
	for i, s := range secrets {
		values[i] = s.value
	}
	found := scanDatabase(t, pool, values...)
	var leaks []string
	for i, s := range secrets {
		if n := strings.Count(output, s.value); n > 0 {
			leaks = append(leaks, fmt.Sprintf("%s: %d times in the daemon's output or /metrics, e.g. %q", s.name, n, around(output, s.value)))
		}
		for column, n := range found[i] {
			if column != s.home {
				leaks = append(leaks, fmt.Sprintf("%s: in %d rows of %s", s.name, n, column))
			}
		}
		if s.home != "" {
			require.Positive(t, found[i][s.home], "the scan finds the %s in %s, its source", s.name, s.home)
		}
	}
	t.Logf("planted secrets: scanned %d bytes of output and every column of every table; %d leaks", len(output), len(leaks))
	if len(leaks) > 0 {
		t.Fatalf("secrets found outside their source column:\n%s", strings.Join(leaks, "\n"))
	}
}

// scanDatabase counts, for each secret, the rows of every column of every
// table (outside the system schemas) whose text holds it: schema.table.column
// to rows.
func scanDatabase(t *testing.T, pool *pgxpool.Pool, secrets ...string) []map[string]int {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT c.table_schema, c.table_name, array_agg(c.column_name::text ORDER BY c.ordinal_position)
		FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\_%'
		GROUP BY 1, 2 ORDER BY 1, 2`)
	require.NoError(t, err)
	type table struct {
		Schema, Name string
		Columns      []string
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[table])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	found := make([]map[string]int, len(secrets))
	for i := range found {
		found[i] = map[string]int{}
	}
	for _, tb := range tables {
		counts := make([]string, len(tb.Columns))
		for i, c := range tb.Columns {
			counts[i] = fmt.Sprintf("count(*) FILTER (WHERE strpos(%s::text, $1) > 0)", pgx.Identifier{c}.Sanitize())
		}
		sql := "SELECT " + strings.Join(counts, ", ") + " FROM " + pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
		for i, secret := range secrets {
			n := make([]int64, len(tb.Columns))
			dest := make([]any, len(n))
			for j := range n {
				dest[j] = &n[j]
			}
			require.NoError(t, pool.QueryRow(ctx, sql, secret).Scan(dest...), sql)
			for j, c := range tb.Columns {
				if n[j] > 0 {
					found[i][tb.Schema+"."+tb.Name+"."+c] = int(n[j])
				}
			}
		}
	}
	return found
}

// around quotes s around the first occurrence of sub.
func around(s, sub string) string {
	i := strings.Index(s, sub)
	return s[max(0, i-120):min(len(s), i+len(sub)+40)]
}
