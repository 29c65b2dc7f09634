package tracing_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/integrations/httpjson"
	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/internal/tracing"
	"github.com/atis-edu/atis-scheduler/workers/integrationsync"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// receiver is an in-process OTLP/HTTP collector: it keeps the spans it is
// sent and the raw bodies.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	spans  []*tracepb.Span
	bodies [][]byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if req.URL.Path != "/v1/traces" || err != nil {
			http.Error(w, fmt.Sprintf("not an OTLP trace export: %s %v", req.URL.Path, err), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		for _, rs := range export.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

// named returns the spans called name.
func (r *receiver) named(name string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.GetAttributes() {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		}
	}
	return m
}

// lms serves records in three pages linked by Link headers, to a bearer
// token.
func lms(t *testing.T, token string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		page = max(page, 1)
		if page < 3 {
			w.Header().Set("Link", fmt.Sprintf(`<%s/students?page=%d>; rel="next"`, srv.URL, page+1))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []map[string]any{
			{"id": 2*page - 1, "name": fmt.Sprint("student ", 2*page-1)}, {"id": 2 * page, "name": fmt.Sprint("student ", 2*page)},
		}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSyncRunSpanTree runs one integration_sync run through River with the
// daemon's tracing middleware, exporting to an in-process OTLP receiver,
// and reads the tree: River's job span, the sync's span under it, a span
// per page under that. It sets the process's environment (the SDK reads
// OTEL_* from it) and the global tracer provider, so it does not run in
// parallel.
func TestSyncRunSpanTree(t *testing.T) {
	const token = "s3cret-bearer-token-of-the-lms"
	ctx := context.Background()
	rcv := newReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "")

	tp, err := tracing.Start(ctx, tracing.Config{Enabled: true, Version: "test"})
	require.NoError(t, err)
	require.True(t, tp.Enabled())
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	pool := dbtest.NewPool(t)
	api := lms(t, token)
	cfg, _ := json.Marshal(map[string]any{"base_url": api.URL + "/students", "records_path": "data", "id_field": "id",
		"pagination": map[string]any{"type": "link"}})
	creds, _ := json.Marshal(map[string]any{"type": "bearer", "token": token})
	var integrationID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
		VALUES ('lms', 'lms', 'http_json', $1, $2, true) RETURNING id`, string(cfg), string(creds)).Scan(&integrationID))

	engine := &integrations.Engine{Pool: pool, Logger: dbtest.Logger(), Providers: provider.Providers{"http_json": httpjson.Provider{}}}
	h := schedtest.StartWithMiddleware(t, pool, tracing.RiverMiddleware(), integrationsync.New(engine))
	out := h.Run(t, integrationsync.Name, map[string]any{"integration_id": integrationID})
	require.Equal(t, "completed", out.Status, out.Error)
	// The job span ends after the recorder has written the outcome: poll
	// with a deadline, flushing, until it has been exported.
	require.Eventually(t, func() bool {
		require.NoError(t, tp.ForceFlush(ctx))
		return len(rcv.named("river.work/"+integrationsync.Name)) == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, tp.Shutdown(ctx))

	jobs := rcv.named("river.work/" + integrationsync.Name)
	require.Len(t, jobs, 1)
	job := jobs[0]
	require.Empty(t, job.GetParentSpanId(), "the job span is a root")
	jobAttrs := attrs(job)
	require.Equal(t, integrationsync.Name, jobAttrs["atis.schedule.name"])
	require.Equal(t, "1", jobAttrs["atis.attempt"])
	require.NotEmpty(t, jobAttrs["atis.run_id"])
	require.NotEmpty(t, jobAttrs["atis.scheduled_job_id"])

	syncs := rcv.named("atis.sync")
	require.Len(t, syncs, 1)
	syncSpan := syncs[0]
	require.Equal(t, hex.EncodeToString(job.GetSpanId()), hex.EncodeToString(syncSpan.GetParentSpanId()), "sync span under the job span")
	require.Equal(t, job.GetTraceId(), syncSpan.GetTraceId())
	require.Equal(t, strconv.FormatInt(integrationID, 10), attrs(syncSpan)["atis.integration_id"])
	require.Equal(t, "3", attrs(syncSpan)["atis.pages"])

	pages := rcv.named("atis.sync.page")
	require.Len(t, pages, 3)
	for i, p := range pages {
		require.Equal(t, hex.EncodeToString(syncSpan.GetSpanId()), hex.EncodeToString(p.GetParentSpanId()), "page %d under the sync span", i)
		require.Equal(t, "2", attrs(p)["atis.records"])
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, body := range rcv.bodies {
		require.NotContains(t, string(body), token, "a secret reached a span")
	}
}

// TestOffByDefault checks that without OTEL_EXPORTER_OTLP_ENDPOINT tracing
// is off and Start creates nothing: no SDK provider, the global tracer
// still OpenTelemetry's no-op, so spans are not recorded.
func TestOffByDefault(t *testing.T) {
	t.Parallel()

	cfg, err := config.Load(nil)
	require.NoError(t, err)
	require.False(t, cfg.Tracing())

	tp, err := tracing.Start(context.Background(), tracing.Config{Enabled: cfg.Tracing()})
	require.NoError(t, err)
	require.False(t, tp.Enabled())
	require.NoError(t, tp.Shutdown(context.Background()))
	_, isSDK := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	require.False(t, isSDK)
	_, span := otel.Tracer("test").Start(context.Background(), "nothing")
	defer span.End()
	require.False(t, span.IsRecording())
	require.False(t, span.SpanContext().IsValid())
}

func TestConfigTracing(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		env  []string
		want bool
	}{
		{"Unset", nil, false},
		{"Endpoint", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318"}, true},
		{"TracesEndpoint", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://collector:4318/v1/traces"}, true},
		{"SDKDisabled", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318", "OTEL_SDK_DISABLED=true"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			cfg, err := config.Load(tt.env)
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.Tracing())
		})
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	logger := slog.New(tracing.NewHandler(slog.NewJSONHandler(&buf, nil))).With(slog.String("component", "test"))
	traceID, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	spanID, _ := trace.SpanIDFromHex("0102030405060708")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))

	t.Run("InASpan", func(t *testing.T) {
		buf.Reset()
		logger.InfoContext(ctx, "hello")
		var line map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
		require.Equal(t, "0102030405060708090a0b0c0d0e0f10", line["trace_id"])
		require.Equal(t, "0102030405060708", line["span_id"])
		require.Equal(t, "test", line["component"])
	})
	t.Run("NoSpan", func(t *testing.T) {
		buf.Reset()
		logger.InfoContext(context.Background(), "hello")
		var line map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
		require.NotContains(t, line, "trace_id")
		require.NotContains(t, line, "span_id")
	})
}
