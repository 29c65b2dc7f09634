package integrations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
)

// Secrets that must stay with the integration's origin.
const (
	secretToken    = "tok-SECRET-origin"
	secretPassword = "pw-SECRET-origin"
	secretKey      = "key-SECRET-origin"
	secretHeader   = "hdr-SECRET-origin"
	secretQuery    = "qry-SECRET-origin"
)

// headerLog keeps the headers of every request a server received.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) record(_ http.ResponseWriter, r *http.Request, _ int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, r.Header.Clone())
	return false
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen
}

// credentialCases are the credentials of each type, with the headers that
// carry them.
var credentialCases = []struct {
	name        string
	credentials string
	carriers    []string
}{
	{"Bearer", fmt.Sprintf(`{"type": "bearer", "token": %q}`, secretToken), []string{"Authorization"}},
	{"Basic", fmt.Sprintf(`{"type": "basic", "username": "u", "password": %q}`, secretPassword), []string{"Authorization"}},
	{"APIKey", fmt.Sprintf(`{"type": "api_key", "header": "X-Api-Key", "value": %q}`, secretKey), []string{"X-Api-Key"}},
}

// requireNoSecrets fails if any header of any request carries a secret.
func requireNoSecrets(t *testing.T, seen []http.Header) {
	t.Helper()
	for i, h := range seen {
		all := fmt.Sprint(h)
		for _, s := range []string{secretToken, secretKey, secretHeader, secretQuery, "Basic "} {
			require.NotContains(t, all, s, "request %d", i+1)
		}
	}
}

// TestNextPageOnAnotherOrigin: a Link rel=next to another origin fails the
// sync before any request goes there, unless config.allowed_origins lists
// it, in which case the credentials go there too.
func TestNextPageOnAnotherOrigin(t *testing.T) {
	t.Parallel()

	// start answers the first page with a Link to other's /link.
	start := func(other *api) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, _ int) bool {
			w.Header().Set("Link", fmt.Sprintf(`<%s/link?start=0>; rel="next"`, other.URL))
			_, _ = w.Write([]byte(`{"data": [{"id": "b1"}, {"id": "b2"}]}`))
			return true
		}
	}
	for _, cc := range credentialCases {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			base, other, otherLog := newAPI(t, 0), newAPI(t, 150), &headerLog{}
			base.fault, other.fault = start(other), otherLog.record
			cfg := conf(base, "/start", map[string]any{"type": "link"})
			cfg["headers"] = map[string]string{"X-Tenant": secretHeader}
			id := b.integration(t, cfg, map[string]any{"credentials": cc.credentials})

			_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
			want := fmt.Sprintf("page 2: the next page is on %s, not on the integration's origin %s; add it to config.allowed_origins to allow it",
				other.URL, base.URL)
			require.ErrorContains(t, err, want)
			require.ErrorIs(t, err, provider.ErrPermanent, "a configuration matter: no retry")
			require.Empty(t, otherLog.all(), "no request at all went to the other origin")
			log := b.lastLog(t, id)
			require.Equal(t, "failed", log.Status)
			require.Equal(t, want, *log.Error)
			require.Zero(t, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1", id))
		})
	}

	t.Run("AllowedOrigin", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		base, other, otherLog := newAPI(t, 0), newAPI(t, 150), &headerLog{}
		base.fault, other.fault = start(other), otherLog.record
		cfg := conf(base, "/start", map[string]any{"type": "link"})
		cfg["headers"] = map[string]string{"X-Tenant": secretHeader}
		cfg["allowed_origins"] = []string{strings.ToUpper(other.URL) + "/"} // as an admin might write it
		id := b.integration(t, cfg, map[string]any{"credentials": credentialCases[0].credentials})

		res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, 3, res.Pages)
		require.Equal(t, 152, res.Created)
		require.Len(t, otherLog.all(), 2)
		for _, h := range otherLog.all() {
			require.Equal(t, "Bearer "+secretToken, h.Get("Authorization"))
			require.Equal(t, secretHeader, h.Get("X-Tenant"))
		}
	})

	// A cursor is only ever a query parameter of base_url: a cursor that
	// holds another origin's URL is sent to base_url's origin, as a value.
	t.Run("CursorHoldingAURL", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		base, other, otherLog := newAPI(t, 0), newAPI(t, 10), &headerLog{}
		other.fault = otherLog.record
		base.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
			next := any(nil)
			if n == 1 {
				next = other.URL + "/none"
			}
			body, _ := json.Marshal(map[string]any{"data": []any{map[string]any{"id": n}}, "next": next})
			_, _ = w.Write(body)
			return true
		}
		id := b.integration(t, conf(base, "/cursor", map[string]any{"type": "cursor", "cursor_param": "after", "next_cursor_path": "next"}),
			map[string]any{"credentials": credentialCases[0].credentials})
		res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, 2, res.Pages)
		require.Empty(t, otherLog.all())
	})
}

// TestRedirectToAnotherOrigin: a redirect elsewhere is followed without the
// credentials, the configured headers or a Referer carrying base_url's query.
func TestRedirectToAnotherOrigin(t *testing.T) {
	t.Parallel()

	redirect := func(other *api) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, _ int) bool {
			http.Redirect(w, r, other.URL+"/none", http.StatusFound)
			return true
		}
	}
	for _, cc := range credentialCases {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()

			b := setup(t)
			base, other, otherLog := newAPI(t, 0), newAPI(t, 5), &headerLog{}
			base.fault, other.fault = redirect(other), otherLog.record
			cfg := conf(base, "/none?api_key="+secretQuery, map[string]any{"type": "none"})
			cfg["headers"] = map[string]string{"X-Tenant": secretHeader}
			id := b.integration(t, cfg, map[string]any{"credentials": cc.credentials})

			res, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
			require.NoError(t, err)
			require.Equal(t, 5, res.Created)
			seen := otherLog.all()
			require.Len(t, seen, 1, "the redirect was followed")
			for _, name := range append(cc.carriers, "X-Tenant", "Referer") {
				require.Empty(t, seen[0].Values(name), name)
			}
			requireNoSecrets(t, seen)
			require.Equal(t, "application/json", seen[0].Get("Accept"))
		})
	}

	t.Run("AllowedOrigin", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		base, other, otherLog := newAPI(t, 0), newAPI(t, 5), &headerLog{}
		base.fault, other.fault = redirect(other), otherLog.record
		cfg := conf(base, "/none", map[string]any{"type": "none"})
		cfg["headers"] = map[string]string{"X-Tenant": secretHeader}
		cfg["allowed_origins"] = []string{other.URL}
		id := b.integration(t, cfg, map[string]any{"credentials": credentialCases[2].credentials})

		_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.NoError(t, err)
		seen := otherLog.all()
		require.Len(t, seen, 1)
		require.Equal(t, secretKey, seen[0].Get("X-Api-Key"))
		require.Equal(t, secretHeader, seen[0].Get("X-Tenant"))
	})
}

func TestAllowedOriginsAreValidated(t *testing.T) {
	t.Parallel()

	b := setup(t)
	a := newAPI(t, 1)
	for entry, want := range map[string]string{
		"cdn.example.org":                   `"allowed_origins" entry 2 ("cdn.example.org") is not an origin like "https://cdn.example.org": origin: the scheme must be http or https`,
		"https://cdn.example.org/files":     `"allowed_origins" entry 2 ("https://cdn.example.org/files") is not an origin like "https://cdn.example.org": origin: has a path, query or fragment`,
		"https://u:" + secretKey + "@cdn.x": `"allowed_origins" entry 2 ("https://[redacted]@cdn.x") is not an origin like "https://cdn.example.org": origin: has a user or password`,
	} {
		cfg := conf(a, "/none", map[string]any{"type": "none"})
		cfg["allowed_origins"] = []string{"https://ok.example.org", entry}
		id := b.integration(t, cfg, nil)
		_, err := b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
		require.ErrorIs(t, err, provider.ErrPermanent, "a bad config is not retried")
		require.EqualError(t, err, "http_json config: "+want)
		require.Equal(t, "failed", b.lastLog(t, id).Status)
	}
}
