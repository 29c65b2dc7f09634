package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// hostile is a provider that misbehaves in every way an HTTP API can.
type hostile struct {
	*httptest.Server
	stop chan struct{} // closed when the test ends: every handler returns
}

const (
	hugeBody  = 1 << 30
	deepLevel = 100_000
)

func newHostile(t *testing.T) *hostile {
	t.Helper()
	h := &hostile{stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/hang", h.hang)
	mux.HandleFunc("/drip", h.drip)
	mux.HandleFunc("/huge", h.huge)
	mux.HandleFunc("/utf8", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("{\"data\": [{\"id\": \"\xff\xfe\", \"name\": \"\xc3\x28\"}]}"))
	})
	mux.HandleFunc("/deep", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"data": [{"id": 1, "deep": ` + strings.Repeat("[", deepLevel) + strings.Repeat("]", deepLevel) + `}]}`))
	})
	mux.HandleFunc("/cut", h.cut)
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<`+r.URL.Path+`>; rel="next"`)
		_, _ = w.Write([]byte(`{"data": [{"id": 1}]}`))
	})
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Close)
	t.Cleanup(func() { close(h.stop) }) // runs first: frees the handlers Close waits for
	return h
}

// hang never answers.
func (h *hostile) hang(_ http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-h.stop:
	}
}

// drip answers 200 and then one byte of the body a second.
func (h *hostile) drip(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	body := []byte(`{"data": [` + strings.Repeat(" ", 600) + `]}`)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for _, b := range body {
		if _, err := w.Write([]byte{b}); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-h.stop:
			return
		case <-tick.C:
		}
	}
}

// huge streams a 1 GiB body of records from one small buffer, chunked:
// no Content-Length warns the client.
func (h *hostile) huge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	head := []byte(`{"data": [`)
	chunk := bytes.Repeat([]byte(`{"id": 1},`), (1<<20)/10)
	if _, err := w.Write(head); err != nil {
		return
	}
	for left := hugeBody - len(head); left > 0; left -= len(chunk) {
		select {
		case <-r.Context().Done():
			return
		case <-h.stop:
			return
		default:
		}
		if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
			return
		}
	}
}

// cut promises a body and closes the connection halfway through it.
func (h *hostile) cut(w http.ResponseWriter, _ *http.Request) {
	body := []byte(`{"data": [` + strings.Repeat(`{"id": 1},`, 1000) + `{"id": 2}]}`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler) // the server closes the connection
}

// TestChaosHostileProviders syncs from providers that never answer, drip,
// send a gigabyte, invalid UTF-8, JSON 100,000 levels deep, a body cut
// short and a next page that loops to itself. Each sync must end failed
// with a message that says why; the daemon's memory must stay bounded and
// an every-second schedule must keep running meanwhile.
func TestChaosHostileProviders(t *testing.T) {
	t.Parallel()

	// One page read up to the default max_page_bytes (16 MiB) costs up to
	// three times that at its peak (the read buffer's growth and the
	// collector's headroom). Reading a whole 1 GiB
	// body would cost gigabytes.
	const maxRSS = 256 << 10 // kB
	ctx := context.Background()
	h := newHostile(t)
	url := migratedURL(t)
	pool := observerPool(t, url)
	cases := []struct {
		path    string
		config  map[string]any
		wantMsg string // a regular expression
	}{
		{"/hang", map[string]any{"timeout_seconds": 2}, `^page 1: http://127\.0\.0\.1:\d+/hang: no answer within 2s$`},
		{"/drip", map[string]any{"timeout_seconds": 2}, `^page 1: \S+/drip: reading the body: no answer within 2s$`},
		{"/huge", map[string]any{"timeout_seconds": 20}, `^page 1: \S+/huge: the body is larger than max_page_bytes \(16777216 bytes\)$`},
		{"/utf8", map[string]any{"timeout_seconds": 2}, `^page 1: .*invalid byte sequence for encoding "UTF8"`},
		// The record is nested too deep to store: the message must say so,
		// not pass on the database's "stack depth limit exceeded".
		{"/deep", map[string]any{"timeout_seconds": 2}, `^page 1: .*(?i:nest)`},
		{"/cut", map[string]any{"timeout_seconds": 2}, `^page 1: \S+/cut: reading the body: unexpected EOF$`},
		// A next link back to a page already fetched stops at once (with
		// max_pages alone it took 100,000 requests).
		{"/loop", map[string]any{"timeout_seconds": 2, "pagination": map[string]any{"type": "link"}},
			`^page 2: the next page is page 1 again: the pagination loops; stopping$`},
	}
	ids := map[string]int64{}
	for _, c := range cases {
		cfg := map[string]any{"base_url": h.URL + c.path, "records_path": "data", "id_field": "id", "max_retries": 0}
		for k, v := range c.config {
			cfg[k] = v
		}
		raw, err := json.Marshal(cfg)
		require.NoError(t, err)
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
			VALUES ($1, 'api', 'http_json', $2, '{}', true) RETURNING id`, "hostile"+c.path, raw).Scan(&id))
		ids[c.path] = id
	}
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, overlap_policy)
		VALUES ('heartbeat', 'noop', '* * * * * *', 'allow')`)
	require.NoError(t, err)

	d := startDaemon(t, "DATABASE_URL="+url, "ATIS_SOFT_STOP_TIMEOUT=2s", "ATIS_POLL_INTERVAL=1s")
	waitFor(t, d.lines, "ready")
	pid := d.cmd.Process.Pid
	require.True(t, poll(20*time.Second, 100*time.Millisecond, func() bool {
		return dbtest.Scalar[int](t, pool, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
			WHERE s.name = 'heartbeat' AND l.status = 'completed'`) > 0
	}), "the heartbeat runs before the hostile syncs")
	baseRSS := procStatusKB(pid, "VmHWM")

	// Short: one sync each. Full: a sync of each every 5 seconds for a
	// minute (overlap skip), then until the last ones end.
	repeatFor := chaosDuration(0, time.Minute)
	schedule := `NULL, 60`
	if repeatFor > 0 {
		schedule = `'*/5 * * * * *', NULL`
	}
	begin := time.Now().UTC()
	_, err = pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, interval_minutes, parameters)
		SELECT 'sync-' || i.name, 'integration_sync', `+schedule+`, jsonb_build_object('integration_id', i.id) FROM integrations i
		WHERE i.name LIKE 'hostile/%'`)
	require.NoError(t, err)
	peak := int64(0)
	sample := func() bool { peak = max(peak, procStatusKB(pid, "VmHWM")); return false }
	if repeatFor > 0 {
		poll(repeatFor, 200*time.Millisecond, sample)
		_, err = pool.Exec(ctx, `UPDATE scheduled_jobs SET is_active = false WHERE job_class = 'integration_sync'`)
		require.NoError(t, err)
	}
	done := poll(60*time.Second, 200*time.Millisecond, func() bool {
		sample()
		return dbtest.Scalar[int](t, pool, `SELECT count(*) FROM integrations i WHERE i.name LIKE 'hostile/%' AND NOT EXISTS (
				SELECT 1 FROM integration_sync_logs l WHERE l.integration_id = i.id)`)+
			dbtest.Scalar[int](t, pool, `SELECT count(*) FROM integration_sync_logs WHERE status = 'running'`) == 0
	})
	// Watch the heartbeat for 5 seconds at least, however fast the syncs fail.
	poll(time.Until(begin.Add(5*time.Second)), 200*time.Millisecond, sample)
	end := time.Now().UTC()
	sample()
	require.True(t, d.alive(), "the daemon exited:\n%s", tail(d.output.String(), 20))

	beats := times(t, pool, `SELECT l.end_time FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE s.name = 'heartbeat' AND l.status = 'completed' AND l.end_time BETWEEN $1 AND $2 ORDER BY l.end_time`, begin, end)
	gap := maxGap(begin, end, beats)
	t.Logf("hostile providers: all syncs ended=%v in %s; daemon VmHWM %d MB before, %d MB peak (bound %d MB); heartbeat: %d runs, longest gap %s",
		done, end.Sub(begin).Round(time.Millisecond), baseRSS>>10, peak>>10, maxRSS>>10, len(beats), gap.Round(time.Millisecond))

	for _, c := range cases {
		type syncLog struct {
			Status, Message string
			Took            float64
		}
		rows, err := pool.Query(ctx, `SELECT status, coalesce(error_message, ''),
				extract(epoch FROM coalesce(end_time, now() AT TIME ZONE 'UTC') - start_time)::float8
			FROM integration_sync_logs WHERE integration_id = $1 ORDER BY id`, ids[c.path])
		require.NoError(t, err)
		logs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[syncLog])
		require.NoError(t, err)
		if len(logs) == 0 {
			t.Errorf("%s: no sync ran; its runs: %v; its river jobs: %v", c.path,
				column(t, pool, `SELECT l.attempt || ' ' || l.status || ' ' || coalesce(l.error_message, '') FROM job_logs l
					JOIN scheduled_jobs s ON s.id = l.scheduled_job_id WHERE s.name = $1`, "sync-hostile"+c.path),
				column(t, pool, `SELECT id || ' ' || state || ' ' || args::text || ' ' || errors::text FROM river_job
					WHERE kind = 'integration_sync' AND (args->'parameters'->>'integration_id')::bigint = $1`, ids[c.path]))
			continue
		}
		last := logs[len(logs)-1]
		t.Logf("  %-6s %d syncs, the last %s after %4.1fs: %s", c.path, len(logs), last.Status, last.Took, last.Message)
		for _, l := range logs {
			if l.Status != "failed" || !regexp.MustCompile(c.wantMsg).MatchString(l.Message) {
				t.Errorf("%s: a sync ended %q with %q, want failed with %q", c.path, l.Status, l.Message, c.wantMsg)
				break
			}
		}
	}
	require.Less(t, peak, int64(maxRSS), "the daemon's peak RSS (VmHWM, kB)")
	require.LessOrEqual(t, gap, 3*time.Second, "the every-second heartbeat stalled during the hostile syncs")
	d.stop(t)
}

// maxGap is the longest stretch of [from, to] without one of times.
func maxGap(from, to time.Time, times []time.Time) time.Duration {
	var gap time.Duration
	last := from
	for _, t := range append(times, to) {
		gap = max(gap, t.Sub(last))
		last = t
	}
	return gap
}

// times returns the single timestamp column of every row of a query.
func times(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []time.Time {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	require.NoError(t, err, sql)
	out, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err, sql)
	return out
}
