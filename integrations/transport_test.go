package integrations_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
)

// TestRateLimitWaitIsNotPartOfTheRequest: with a turn every 1.5 s and 1 s
// per request, every request after the first waits longer than its own
// timeout, a retry included, and the sync still succeeds.
func TestRateLimitWaitIsNotPartOfTheRequest(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 50)
	a.fault = func(w http.ResponseWriter, _ *http.Request, n int) bool {
		if n == 2 {
			w.WriteHeader(http.StatusInternalServerError) // page 2 is retried, on a turn of its own
			return true
		}
		return false
	}
	cfg := conf(a, "/page", map[string]any{"type": "page", "page_size": 30})
	cfg["timeout_seconds"] = 1
	id := b.integration(t, cfg, map[string]any{"api_rate_limit": 40})

	res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Pages)
	require.Equal(t, 50, res.Created)
	require.Equal(t, int64(1), res.Retries)
	times := a.requestTimes()
	require.Len(t, times, 3)
	for i := 1; i < len(times); i++ {
		require.GreaterOrEqual(t, times[i].Sub(times[i-1]), 1400*time.Millisecond, "request %d came too soon", i+1)
	}
	require.Equal(t, "completed", b.lastLog(t, id).Status)
}

// TestRateLimitWaitPastTheRunDeadline: a turn that would come after the
// run's deadline fails the sync at once, saying why, without retries.
func TestRateLimitWaitPastTheRunDeadline(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 50)
	id := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": 30}), map[string]any{"api_rate_limit": 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	began := time.Now()
	_, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id}, nil)
	const want = "waiting for the rate limit (api_rate_limit=1/min) would pass the run's deadline"
	require.ErrorContains(t, err, "page 2: "+a.URL+"/page?page=[redacted]&per_page=[redacted]: "+want)
	require.Less(t, time.Since(began), 10*time.Second, "failed at once, not at the deadline")
	require.Len(t, a.requestTimes(), 1, "page 2 was never asked for")
	log := b.lastLog(t, id)
	require.Equal(t, "failed", log.Status)
	require.Contains(t, *log.Error, want)
}

// TestRequestTimeoutCoversTheBody: the per-request timeout, now applied by
// the engine's transport, still covers reading the body.
func TestRequestTimeoutCoversTheBody(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 0)
	a.fault = func(w http.ResponseWriter, r *http.Request, _ int) bool {
		_, _ = w.Write([]byte(`{"data": [`))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return true
	}
	id := b.integration(t, map[string]any{"base_url": a.URL + "/none", "records_path": "data", "id_field": "id",
		"timeout_seconds": 1, "max_retries": 0}, nil)
	began := time.Now()
	_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
	require.ErrorContains(t, err, "page 1: "+a.URL+"/none: reading the body: no answer within 1s")
	require.Less(t, time.Since(began), 4*time.Second)
}
