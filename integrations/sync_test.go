package integrations_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/integrationsync"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/integrations/httpjson"
	"github.com/atis-edu/atis-scheduler/internal/advisorylock"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type bundle struct {
	pool   *pgxpool.Pool
	engine *integrations.Engine
	logs   *bytes.Buffer
}

func setup(t testing.TB) *bundle {
	t.Helper()
	pool := dbtest.NewPool(t)
	logs := &bytes.Buffer{}
	return &bundle{pool: pool, logs: logs, engine: &integrations.Engine{Pool: pool, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Providers: provider.Providers{"http_json": httpjson.Provider{}}}}
}

// integration inserts an enabled integration and returns its id.
func (b *bundle) integration(t testing.TB, config map[string]any, extra map[string]any) int64 {
	t.Helper()
	cfg, _ := json.Marshal(config)
	cols := map[string]any{"name": fmt.Sprint("lms-", time.Now().UnixNano()), "integration_type": "lms", "provider": "http_json",
		"config": string(cfg), "credentials": "{}", "is_enabled": true}
	for k, v := range extra {
		cols[k] = v
	}
	names, places, vals := "", "", []any{}
	for k, v := range cols {
		if names != "" {
			names, places = names+",", places+","
		}
		vals = append(vals, v)
		names, places = names+k, places+fmt.Sprintf("$%d", len(vals))
	}
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), "INSERT INTO integrations ("+names+") VALUES ("+places+") RETURNING id", vals...).Scan(&id))
	return id
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	return dbtest.Scalar[int](t, b.pool, sql, args...)
}

type syncLog struct {
	Status                              string
	SyncType                            string
	Processed, Created, Updated, Failed int
	Error                               *string
	Details, Summary                    map[string]any
}

func (b *bundle) lastLog(t *testing.T, integrationID int64) syncLog {
	t.Helper()
	var l syncLog
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT status, sync_type, records_processed, records_created, records_updated,
			records_failed, error_message, error_details, sync_summary
		FROM integration_sync_logs WHERE integration_id = $1 ORDER BY id DESC LIMIT 1`, integrationID).
		Scan(&l.Status, &l.SyncType, &l.Processed, &l.Created, &l.Updated, &l.Failed, &l.Error, &l.Details, &l.Summary))
	return l
}

func conf(a *api, path string, pagination map[string]any) map[string]any {
	return map[string]any{"base_url": a.URL + path, "records_path": "data", "id_field": "id", "pagination": pagination,
		"updated_since_param": "updated_since", "max_retries": 2}
}

func TestPaginationTypes(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		path       string
		pagination map[string]any
		wantPages  int
	}{
		{"Page", "/page", map[string]any{"type": "page", "page_param": "page", "size_param": "per_page", "page_size": 100}, 3},
		{"Offset", "/offset", map[string]any{"type": "offset", "offset_param": "offset", "limit_param": "limit", "limit": 100}, 3},
		{"Cursor", "/cursor", map[string]any{"type": "cursor", "cursor_param": "after", "next_cursor_path": "meta.next"}, 3},
		{"Link", "/link", map[string]any{"type": "link"}, 3},
		{"None", "/none", map[string]any{"type": "none"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			a := newAPI(t, 250)
			id := b.integration(t, conf(a, tt.path, tt.pagination), nil)
			res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
			require.NoError(t, err)
			require.Equal(t, tt.wantPages, res.Pages)
			require.Equal(t, 250, res.Created)
			require.Equal(t, 250, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NULL", id))
			require.Equal(t, "student 250", dbtest.Scalar[string](t, b.pool,
				"SELECT payload->>'name' FROM integration_records WHERE integration_id = $1 AND external_id = '250'", id))
		})
	}
}

func TestFullThenIncremental(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	a := newAPI(t, 10_000)
	id := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": 500}), nil)

	res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, "full", res.SyncType, "the first sync is full")
	require.Equal(t, 10_000, res.Created)
	require.Equal(t, 10_000, res.Processed)
	first := b.lastLog(t, id)
	require.Equal(t, "completed", first.Status)
	require.Equal(t, 10_000, first.Created)
	lastSync := dbtest.Scalar[time.Time](t, b.pool, "SELECT last_sync_at FROM integrations WHERE id = $1", id)

	// 100 records change after the first sync began; the next sync asks only for those.
	changedAt := time.Now().UTC().Add(time.Minute)
	for i := 1; i <= 100; i++ {
		a.set(i*50, "v2", changedAt)
	}
	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, "incremental", res.SyncType)
	require.Equal(t, 100, res.Processed, "only changed records were fetched")
	require.Equal(t, 100, res.Updated)
	require.Zero(t, res.Created)
	require.Zero(t, res.Deleted, "an incremental sync deletes nothing")
	require.Equal(t, 100, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1 AND payload->>'version' = 'v2'", id))
	require.True(t, dbtest.Scalar[time.Time](t, b.pool, "SELECT last_sync_at FROM integrations WHERE id = $1", id).After(lastSync))
}

func TestFullSyncMarksDeletions(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	a := newAPI(t, 100)
	id := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": 30}), nil)
	_, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)

	a.remove(3, 4, 5)
	a.set(7, "v2", time.Now())
	res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, integrations.SyncResult{SyncLogID: res.SyncLogID, SyncType: "full", Processed: 97, Updated: 1, Unchanged: 96, Deleted: 3,
		Pages: 4, Requests: 4, Bytes: res.Bytes, Millis: res.Millis, FetchMs: res.FetchMs, ApplyMs: res.ApplyMs}, res, "exact counts")
	require.Equal(t, 3, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NOT NULL", id))
	log := b.lastLog(t, id)
	require.Equal(t, float64(3), log.Summary["deleted"])
	require.Equal(t, float64(96), log.Summary["unchanged"])

	// A record that comes back is alive again.
	a.set(4, "v3", time.Now())
	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Updated)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NOT NULL", id))
}

// TestAnIDSeenTwiceKeepsItsLastRecord: a provider that lists an id twice
// (on one page or across pages) leaves one record, the later one; a full
// sync that sees every live record marks none deleted, and one that misses
// a record still does.
func TestAnIDSeenTwiceKeepsItsLastRecord(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	var body atomic.Value
	body.Store(`{"data": [{"id": "1", "v": "old"}, {"id": "2", "v": "x"}, {"id": "1", "v": "new"}, {"id": "3", "v": "y"}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body.Load().(string))
	}))
	t.Cleanup(srv.Close)
	id := b.integration(t, map[string]any{"base_url": srv.URL, "records_path": "data", "id_field": "id",
		"pagination": map[string]any{"type": "none"}}, nil)

	res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, 3, res.Created)
	require.Equal(t, "new", dbtest.Scalar[string](t, b.pool,
		"SELECT payload->>'v' FROM integration_records WHERE integration_id = $1 AND external_id = '1'", id))

	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{0, 0, 3, 0}, []int{res.Created, res.Updated, res.Unchanged, res.Deleted})

	body.Store(`{"data": [{"id": "2", "v": "x"}, {"id": "2", "v": "x2"}, {"id": "3", "v": "y"}]}`)
	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 1, 1}, []int{res.Created, res.Updated, res.Unchanged, res.Deleted})
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NOT NULL", id))
}

// TestBadPagesFailCleanly: each fault fails the sync with a message naming
// the problem and the page, and applies nothing.
func TestBadPagesFailCleanly(t *testing.T) {
	t.Parallel()

	onPage := func(page int, answer func(w http.ResponseWriter)) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, _ int) bool {
			if r.URL.Query().Get("page") == fmt.Sprint(page) {
				answer(w)
				return true
			}
			return false
		}
	}
	tests := []struct {
		name    string
		fault   func(http.ResponseWriter, *http.Request, int) bool
		config  map[string]any
		wantErr string
	}{
		{"MalformedJSON", onPage(3, func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"data": [{"id": 1},`)) }), nil,
			`page 3: malformed JSON ("{\"data\": [{\"id\": 1},")`},
		{"NotAList", onPage(2, func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"data": {"id": 1}}`)) }), nil,
			`page 2: records_path "data" is not a list but an object`},
		{"MissingRecordsPath", nil, map[string]any{"records_path": "items"}, `page 1: nothing at records_path "items"`},
		{"Oversized", nil, map[string]any{"max_page_bytes": 500}, "page 1: http://127.0.0.1"},
		{"NotFound", onPage(2, func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }), nil, "page 2: http://127.0.0.1"},
		{"ServerErrorEveryTime", onPage(1, func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }), nil, "answered 502 Bad Gateway"},
		{"Hung", onPage(2, func(http.ResponseWriter) { time.Sleep(3 * time.Second) }), map[string]any{"timeout_seconds": 1, "max_retries": 0},
			"page 2: http://127.0.0.1"},
		{"RedirectLoop", func(w http.ResponseWriter, r *http.Request, _ int) bool {
			http.Redirect(w, r, r.URL.String(), http.StatusFound)
			return true
		}, nil, "too many redirects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			a := newAPI(t, 100)
			a.fault = tt.fault
			cfg := conf(a, "/page", map[string]any{"type": "page", "page_size": 30})
			for k, v := range tt.config {
				cfg[k] = v
			}
			id := b.integration(t, cfg, nil)
			_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
			require.ErrorContains(t, err, tt.wantErr)
			log := b.lastLog(t, id)
			require.Equal(t, "failed", log.Status)
			require.Contains(t, *log.Error, tt.wantErr)
			require.Zero(t, b.count(t, "SELECT count(*) FROM integration_records"), "nothing half-applied")
			require.Nil(t, dbtest.Scalar[*time.Time](t, b.pool, "SELECT last_sync_at FROM integrations WHERE id = $1", id), "last_sync_at moves only on success")
		})
	}
	// The specific wording of the size and timeout faults.
	t.Run("Messages", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		a := newAPI(t, 10)
		id := b.integration(t, map[string]any{"base_url": a.URL + "/none", "records_path": "data", "id_field": "id", "max_page_bytes": 100}, nil)
		_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.ErrorContains(t, err, "the body is larger than max_page_bytes (100 bytes)")
		a.fault = func(http.ResponseWriter, *http.Request, int) bool { time.Sleep(2 * time.Second); return true }
		id = b.integration(t, map[string]any{"base_url": a.URL + "/none", "records_path": "data", "id_field": "id", "timeout_seconds": 1, "max_retries": 0}, nil)
		_, err = b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.ErrorContains(t, err, "page 1: "+a.URL+"/none: no answer within 1s")
	})
}

func TestRetries(t *testing.T) {
	t.Parallel()

	t.Run("ServerErrorThenSuccess", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		a := newAPI(t, 50)
		a.fault = func(w http.ResponseWriter, _ *http.Request, n int) bool {
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return true
			}
			return false
		}
		id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
		res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, 50, res.Created)
		require.Equal(t, int64(1), res.Retries)
		require.Equal(t, float64(1), b.lastLog(t, id).Summary["retries"])
	})

	t.Run("TooManyRequestsHonoursRetryAfter", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		a := newAPI(t, 50)
		a.fault = func(w http.ResponseWriter, _ *http.Request, n int) bool {
			if n == 1 {
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
			return false
		}
		id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
		res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.NoError(t, err)
		times := a.requestTimes()
		require.Len(t, times, 2)
		require.GreaterOrEqual(t, times[1].Sub(times[0]), 2*time.Second, "waited as Retry-After said")
		require.Equal(t, int64(1), res.Retries)
	})

	t.Run("ClientErrorIsNotRetried", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		a := newAPI(t, 50)
		a.fault = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
			w.WriteHeader(http.StatusBadRequest)
			return true
		}
		id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
		_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.ErrorContains(t, err, "answered 400 Bad Request")
		require.Len(t, a.requestTimes(), 1)
	})
}

func TestRateLimitIsHonoured(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 250)
	// 120 requests a minute: one every 0.5 s; 5 pages take at least 2 s.
	id := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": 60}), map[string]any{"api_rate_limit": 120})
	began := time.Now()
	res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, 5, res.Pages)
	require.GreaterOrEqual(t, time.Since(began), 2*time.Second)
	// Requests start 0.5 s apart; they arrive a little less apart when the
	// first one also opened the connection (tens of ms on a busy machine,
	// now that the next page is fetched while the last one is written).
	// Without the limit they would come milliseconds apart.
	times := a.requestTimes()
	for i := 1; i < len(times); i++ {
		require.GreaterOrEqual(t, times[i].Sub(times[i-1]), 400*time.Millisecond, "request %d came too soon", i)
	}
}

func TestRefusedCredentialsAreASecurityEvent(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 10)
	a.token = "right-token"
	id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), map[string]any{"credentials": `{"type": "bearer", "token": "wrong-token"}`})
	_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.ErrorContains(t, err, "page 1: the provider answered 401 Unauthorized: check the integration's credentials")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM security_events WHERE event_type = 'integration_auth_failed' AND severity = 'warning'
		AND (event_data->>'integration_id')::bigint = $1`, id))

	_, err = b.pool.Exec(context.Background(), `UPDATE integrations SET credentials = '{"type": "bearer", "token": "right-token"}' WHERE id = $1`, id)
	require.NoError(t, err)
	res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, 10, res.Created)
}

func TestInvalidRecordsAreCountedAndSampled(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 0)
	a.fault = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		_, _ = w.Write([]byte(`{"data": [{"id": 1}, {"name": "no id"}, 42, {"id": null}, {"id": "x2"}]}`))
		return true
	}
	id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
	res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, 5, res.Processed)
	require.Equal(t, 2, res.Created)
	require.Equal(t, 3, res.Failed)
	log := b.lastLog(t, id)
	require.Equal(t, 3, log.Failed)
	sample := fmt.Sprint(log.Details["invalid_records_sample"])
	require.Contains(t, sample, `item 1: no "id"`)
	require.Contains(t, sample, "item 2: not an object")
}

func TestUnknownProviderOrTypeIsAFailedSync(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 1)
	soap := b.integration(t, conf(a, "/none", nil), map[string]any{"provider": "soap"})
	_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: soap}, nil)
	require.ErrorContains(t, err, `unknown provider "soap" (known: http_json)`)
	require.Equal(t, "failed", b.lastLog(t, soap).Status)
	mail := b.integration(t, conf(a, "/none", nil), map[string]any{"integration_type": "email"})
	_, err = b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: mail}, nil)
	require.ErrorContains(t, err, `provider http_json does not support integration_type "email"`)
	disabled := b.integration(t, conf(a, "/none", nil), map[string]any{"is_enabled": false})
	_, err = b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: disabled}, nil)
	require.ErrorContains(t, err, "is disabled")
}

// TestABadConfigIsPermanent: a config or credentials the provider refuses
// fail the sync with the provider's message and are not retried (the job
// engine returns River's cancel error): no retry fixes them, an admin must.
func TestABadConfigIsPermanent(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 1)
	tests := []struct {
		name          string
		config, creds map[string]any
		want          string
	}{
		{"no base_url", map[string]any{"id_field": "id"}, nil, `http_json config: "base_url" is required`},
		{"no id_field", map[string]any{"base_url": a.URL + "/none"}, nil, `http_json config: "id_field" is required`},
		{"bearer without a token", conf(a, "/none", map[string]any{"type": "none"}), map[string]any{"type": "bearer"},
			`http_json credentials: bearer needs "token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string]any{}
			if tt.creds != nil {
				raw, _ := json.Marshal(tt.creds)
				extra["credentials"] = string(raw)
			}
			id := b.integration(t, tt.config, extra)
			_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
			require.ErrorIs(t, err, provider.ErrPermanent, "not retried")
			require.ErrorContains(t, err, tt.want)
			require.Empty(t, a.requestTimes(), "nothing was asked of the provider")
			log := b.lastLog(t, id)
			require.Equal(t, "failed", log.Status)
			require.NotNil(t, log.Error)
			require.Contains(t, *log.Error, tt.want)
			require.NotContains(t, *log.Error, "permanent failure")
		})
	}
}

func TestCancellationEndsTheLogCancelledAndAppliesNothing(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	a.fault = func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		if r.URL.Query().Get("page") == "2" {
			cancel() // the daemon is stopping while page 2 is read
			<-r.Context().Done()
			return true
		}
		return false
	}
	id := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": 30}), nil)
	_, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
	require.ErrorIs(t, err, context.Canceled, "River runs the job again")
	log := b.lastLog(t, id)
	require.Equal(t, "cancelled", log.Status)
	require.Zero(t, b.count(t, "SELECT count(*) FROM integration_records"))
}

func TestOneSyncOfAnIntegrationAtATime(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 10)
	release := make(chan struct{})
	var once sync.Once
	a.fault = func(http.ResponseWriter, *http.Request, int) bool {
		once.Do(func() { <-release })
		return false
	}
	id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
	done := make(chan error, 1)
	go func() {
		_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		done <- err
	}()
	require.Eventually(t, func() bool { return len(a.requestTimes()) == 1 }, 10*time.Second, 10*time.Millisecond)
	res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("a sync of integration %d (%s) is already running", id,
		dbtest.Scalar[string](t, b.pool, "SELECT name FROM integrations WHERE id = $1", id)), res.Skipped)
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM integration_sync_logs WHERE integration_id = $1", id))
}

// TestARunStartNeverSkipsASync: a run of schedule N starting (its overlap
// check holds a transaction lock keyed by N) while integration N syncs must
// not make the sync look already running. The two locks once shared a class,
// and a chaos run lost a sync that way: skipped, with no sync log.
func TestARunStartNeverSkipsASync(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	a := newAPI(t, 10)
	id := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", advisorylock.ScheduleOverlap, advisorylock.Key(id))
	require.NoError(t, err)

	res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Empty(t, res.Skipped)
	require.Equal(t, "completed", b.lastLog(t, id).Status)
}

// TestSecretsNeverLeak plants secrets in the credentials and in a header,
// runs successful and failing syncs through the job path, and searches every
// place they could surface.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	const token, header, password = "tok-SECRET-8c1f", "hdr-SECRET-52aa", "pw-SECRET-77e0"
	ok := newAPI(t, 20)
	ok.token = token
	good := b.integration(t, conf(ok, "/none", map[string]any{"type": "none"}),
		map[string]any{"credentials": fmt.Sprintf(`{"type": "bearer", "token": %q}`, token)})
	refused := b.integration(t, conf(ok, "/none", map[string]any{"type": "none"}),
		map[string]any{"credentials": fmt.Sprintf(`{"type": "basic", "username": "u", "password": %q}`, password)})
	broken := newAPI(t, 0)
	broken.fault = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	}
	cfg := conf(broken, "/none?api_key="+token, map[string]any{"type": "none"})
	cfg["headers"] = map[string]string{"X-Api-Key": header}
	failing := b.integration(t, cfg, map[string]any{"credentials": fmt.Sprintf(`{"type": "api_key", "header": "X-Key", "value": %q}`, header)})

	h := schedtest.Start(t, b.pool, integrationsync.New(b.engine))
	for _, id := range []int64{good, refused, failing} {
		_, err := b.pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters, max_attempts, is_active)
			VALUES ($1, 'integration_sync', 60, $2, 1, false)`, fmt.Sprint("sync-", id), fmt.Sprintf(`{"integration_id": %d}`, id))
		require.NoError(t, err)
		sid := dbtest.Scalar[int64](t, b.pool, "SELECT id FROM scheduled_jobs WHERE name = $1", fmt.Sprint("sync-", id))
		jobID, err := h.Scheduler.RunNow(ctx, sid, nil)
		require.NoError(t, err)
		h.Wait(t, jobID)
	}
	require.Equal(t, "completed", b.lastLog(t, good).Status)
	require.Equal(t, "failed", b.lastLog(t, refused).Status)
	require.Equal(t, "failed", b.lastLog(t, failing).Status)

	everything := dbtest.Scalar[string](t, b.pool, `SELECT concat_ws(' ',
		(SELECT string_agg(l::text, ' ') FROM job_logs l), (SELECT string_agg(s::text, ' ') FROM integration_sync_logs s),
		(SELECT string_agg(e::text, ' ') FROM security_events e), (SELECT string_agg(e::text, ' ') FROM system_errors e),
		(SELECT string_agg(m::text, ' ') FROM performance_metrics m), (SELECT string_agg(r::text, ' ') FROM integration_records r))`)
	require.Contains(t, everything, "answered 502", "the search covers the failures")
	for _, secret := range []string{token, header, password} {
		require.NotContains(t, everything, secret)
		require.NotContains(t, b.logs.String(), secret)
	}
	require.NotEmpty(t, b.logs.String())
}

func TestParameters(t *testing.T) {
	t.Parallel()

	for params, want := range map[string]string{
		`{}`: `integration_sync parameters: "integration_id" is required`,
		`{"integration_id": 1, "sync_type": "delta"}`: `integration_sync parameters: "sync_type" "delta" is not full or incremental`,
	} {
		require.EqualError(t, integrationsync.New(nil).ValidateParameters(json.RawMessage(params)), want)
	}
	require.NoError(t, integrationsync.New(nil).ValidateParameters(json.RawMessage(`{"integration_id": 3, "sync_type": "full"}`)))
}

// TestDeletingAnIntegrationDeletesItsRecords: the trigger that stands in
// for a foreign key's ON DELETE CASCADE.
func TestDeletingAnIntegrationDeletesItsRecords(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	a := newAPI(t, 30)
	gone := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
	kept := b.integration(t, conf(a, "/none", map[string]any{"type": "none"}), nil)
	for _, id := range []int64{gone, kept} {
		_, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
		require.NoError(t, err)
	}
	_, err := b.pool.Exec(ctx, "DELETE FROM integration_sync_logs WHERE integration_id = $1", gone)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, "DELETE FROM integrations WHERE id = $1", gone)
	require.NoError(t, err)
	require.Zero(t, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1", gone))
	require.Equal(t, 30, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1", kept))
}
