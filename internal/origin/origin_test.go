package origin_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/internal/origin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOf(t *testing.T) {
	t.Parallel()

	for raw, want := range map[string]string{
		"https://Example.ORG/a/b?key=secret#x": "https://example.org",
		"https://user:pw@example.org:443/":     "https://example.org",
		"http://example.org:80":                "http://example.org",
		"http://example.org:443":               "http://example.org:443",
		"HTTPS://api.example.org:8443/v1":      "https://api.example.org:8443",
		"http://127.0.0.1:1234/x":              "http://127.0.0.1:1234",
		"http://[::1]:8080/x":                  "http://[::1]:8080",
		"https://[::1]/x":                      "https://[::1]",
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, want, origin.Of(u), raw)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in, want, wantErr string
	}{
		{in: "https://cdn.example.org", want: "https://cdn.example.org"},
		{in: "https://CDN.example.org/", want: "https://cdn.example.org"},
		{in: "http://127.0.0.2:4567", want: "http://127.0.0.2:4567"},
		{in: "cdn.example.org", wantErr: "origin: the scheme must be http or https"},
		{in: "ftp://cdn.example.org", wantErr: "origin: the scheme must be http or https"},
		{in: "https://", wantErr: "origin: no host"},
		{in: "https://u:secret@cdn.example.org", wantErr: "origin: has a user or password"},
		{in: "https://cdn.example.org/files", wantErr: "origin: has a path, query or fragment"},
		{in: "https://cdn.example.org?x=1", wantErr: "origin: has a path, query or fragment"},
		{in: "https://cdn.example.org/#x", wantErr: "origin: has a path, query or fragment"},
		{in: "https://cdn.example.org:https/", wantErr: "origin: not a URL"},
	}
	for _, tt := range tests {
		got, err := origin.Parse(tt.in)
		if tt.wantErr != "" {
			require.EqualError(t, err, tt.wantErr, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
	}
}

// TestCheckRedirect follows real redirects between two servers on the same
// host (Go keeps Authorization there: it ignores ports) and one a
// subdomain would be treated alike.
func TestCheckRedirect(t *testing.T) {
	t.Parallel()

	type bundle struct {
		mu      sync.Mutex
		seen    map[string]http.Header // path -> headers, at the other origin
		base    *httptest.Server
		other   *httptest.Server
		request func(t *testing.T, path string, client *http.Client)
	}
	setup := func(t *testing.T) *bundle {
		b := &bundle{seen: map[string]http.Header{}}
		b.other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.seen[r.URL.Path] = r.Header.Clone()
			b.mu.Unlock()
			if r.URL.Path == "/back" {
				http.Redirect(w, r, b.base.URL+"/landed", http.StatusFound)
			}
		}))
		t.Cleanup(b.other.Close)
		b.base = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/landed", "/same":
				b.mu.Lock()
				b.seen["base"+r.URL.Path] = r.Header.Clone()
				b.mu.Unlock()
			case "/local":
				http.Redirect(w, r, "/same", http.StatusFound)
			case "/loop":
				http.Redirect(w, r, "/loop", http.StatusFound)
			default:
				http.Redirect(w, r, b.other.URL+r.URL.Path, http.StatusFound)
			}
		}))
		t.Cleanup(b.base.Close)
		b.request = func(t *testing.T, path string, client *http.Client) {
			t.Helper()
			req, err := http.NewRequest(http.MethodGet, b.base.URL+path+"?api_key=query-secret", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer tok-secret")
			req.Header.Set("X-Api-Key", "key-secret")
			req.Header.Set("X-Tenant", "configured")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "atis-scheduler")
			req.Header["x-lower"] = []string{"not canonical"}
			resp, err := client.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
		}
		return b
	}
	// client has a transport of its own, closed with the test (goleak).
	client := func(t *testing.T, trusted []string, strip ...string) *http.Client {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, CheckRedirect: origin.CheckRedirect(trusted, strip...)}
	}
	secrets := []string{"Authorization", "X-Api-Key", "X-Tenant", "X-Lower", "Referer"}

	t.Run("StripsOnAnotherOrigin", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		b.request(t, "/away", client(t, nil))
		got := b.seen["/away"]
		for _, name := range secrets {
			require.Empty(t, got.Values(name), name)
		}
		require.Equal(t, "application/json", got.Get("Accept"), "portable headers follow")
		require.Equal(t, "atis-scheduler", got.Get("User-Agent"))
	})

	t.Run("StripsNamedPortableHeaders", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		b.request(t, "/away", client(t, nil, "accept"))
		require.Empty(t, b.seen["/away"].Get("Accept"))
	})

	t.Run("StaysStrippedBackOnTheFirstOrigin", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		b.request(t, "/back", client(t, nil))
		for _, name := range secrets[:4] {
			require.Empty(t, b.seen["base/landed"].Values(name), name)
		}
	})

	t.Run("KeepsOnTheSameOrigin", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		b.request(t, "/local", client(t, nil))
		require.Equal(t, "key-secret", b.seen["base/same"].Get("X-Api-Key"))
		require.Equal(t, "Bearer tok-secret", b.seen["base/same"].Get("Authorization"))
	})

	t.Run("KeepsOnATrustedOrigin", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		u, _ := url.Parse(b.other.URL)
		b.request(t, "/away", client(t, []string{origin.Of(u)}))
		require.Equal(t, "key-secret", b.seen["/away"].Get("X-Api-Key"))
		require.Equal(t, "configured", b.seen["/away"].Get("X-Tenant"))
	})

	t.Run("StopsAfterTenRedirects", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		req, err := http.NewRequest(http.MethodGet, b.base.URL+"/loop", nil)
		require.NoError(t, err)
		resp, err := client(t, nil).Do(req)
		if resp != nil {
			_ = resp.Body.Close()
		}
		require.ErrorContains(t, err, "stopped after 10 redirects")
	})
}
