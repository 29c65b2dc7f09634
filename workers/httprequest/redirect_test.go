package httprequest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/workers/httprequest"
)

// TestHTTPRequestRedirect: an http_request run follows a redirect to another
// origin (here another port of the same host, where Go keeps even
// Authorization) without its configured headers or a Referer carrying the
// URL's query; on its own origin they follow.
func TestHTTPRequestRedirect(t *testing.T) {
	t.Parallel()

	const token, key, query = "tok-SECRET-redirect", "key-SECRET-redirect", "qry-SECRET-redirect"
	type testBundle struct {
		harness *schedtest.Harness
		base    *httptest.Server
		mu      sync.Mutex
		landed  http.Header // the headers of the request after the redirect
	}
	setup := func(t *testing.T, sameOrigin bool) *testBundle {
		t.Helper()
		pool := dbtest.NewPool(t)
		b := &testBundle{harness: schedtest.Start(t, pool, httprequest.New(httprequest.Config{Pool: pool}))}
		land := func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.landed = r.Header.Clone()
			b.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}
		other := httptest.NewServer(http.HandlerFunc(land))
		t.Cleanup(other.Close)
		b.base = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/landed":
				land(w, r)
			case sameOrigin:
				http.Redirect(w, r, "/landed", http.StatusFound)
			default:
				http.Redirect(w, r, other.URL+"/landed", http.StatusFound)
			}
		}))
		t.Cleanup(b.base.Close)
		return b
	}
	run := func(t *testing.T, b *testBundle) http.Header {
		t.Helper()
		out := b.harness.Run(t, "http_request", map[string]any{"url": b.base.URL + "/start?token=" + query,
			"headers": map[string]string{"Authorization": "Bearer " + token, "X-Api-Key": key, "X-Tenant": "configured"}})
		require.Equal(t, "completed", out.Status, out.Error)
		b.mu.Lock()
		defer b.mu.Unlock()
		require.NotNil(t, b.landed, "the redirect was followed")
		return b.landed
	}

	t.Run("AnotherOrigin", func(t *testing.T) {
		t.Parallel()

		landed := run(t, setup(t, false))
		for _, name := range []string{"Authorization", "X-Api-Key", "X-Tenant", "Referer"} {
			require.Empty(t, landed.Values(name), name)
		}
		require.Equal(t, "atis-scheduler", landed.Get("User-Agent"))
	})

	t.Run("SameOrigin", func(t *testing.T) {
		t.Parallel()

		landed := run(t, setup(t, true))
		require.Equal(t, "Bearer "+token, landed.Get("Authorization"))
		require.Equal(t, key, landed.Get("X-Api-Key"))
		require.Equal(t, "configured", landed.Get("X-Tenant"))
	})
}

// TestHTTPRequestRedirectWithABody: an http_request with a body follows
// only 307/308 to the same origin (method and body kept); a 301 that would
// have become a GET without the body fails the run saying where it pointed.
// Without a body, a 301 is followed as before.
func TestHTTPRequestRedirectWithABody(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	h := schedtest.Start(t, pool, httprequest.New(httprequest.Config{Pool: pool}))
	var mu sync.Mutex
	var landed []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/landed":
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			landed = append(landed, r.Method+" "+string(body))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/landed", http.StatusMovedPermanently)
		case "/temporary":
			http.Redirect(w, r, "/landed", http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(srv.Close)
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(landed) == 0 {
			return ""
		}
		return landed[len(landed)-1]
	}

	out := h.Run(t, "http_request", map[string]any{"url": srv.URL + "/moved", "method": "POST", "body": map[string]int{"n": 1}})
	require.Equal(t, "failed", out.Status)
	require.Contains(t, out.Error, "answered 301 Moved Permanently pointing to "+srv.URL+"/landed")
	require.Empty(t, last(), "no GET without the body")

	out = h.Run(t, "http_request", map[string]any{"url": srv.URL + "/temporary", "method": "POST", "body": map[string]int{"n": 2}})
	require.Equal(t, "completed", out.Status, out.Error)
	require.Equal(t, `POST {"n": 2}`, last(), "the body as the schedule's jsonb holds it")

	out = h.Run(t, "http_request", map[string]any{"url": srv.URL + "/moved"})
	require.Equal(t, "completed", out.Status, out.Error)
	require.Equal(t, "GET ", last())
}
