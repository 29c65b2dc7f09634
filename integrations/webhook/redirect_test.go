package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations/webhook"
)

// landing records what reached /new after a redirect.
type landing struct {
	mu       sync.Mutex
	requests []string // "METHOD body signature"
}

func (l *landing) handler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.requests = append(l.requests, r.Method+" "+string(body)+" "+r.Header.Get(webhook.SignatureHeader))
	l.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (l *landing) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requests...)
}

// TestRedirects: a delivery never follows a redirect that would change its
// method or drop its body (net/http turns a POST answered 301, 302 or 303
// into a GET without it, and the final 200 used to mark the delivery
// delivered): the attempt fails saying where it pointed. 307 and 308 to
// the same origin are followed with the same method, body and signature;
// to another origin they fail too.
func TestRedirects(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		status    int
		elsewhere bool
		follow    bool
	}{
		{http.StatusMovedPermanently, false, false},
		{http.StatusFound, false, false},
		{http.StatusSeeOther, false, false},
		{http.StatusTemporaryRedirect, false, true},
		{http.StatusPermanentRedirect, false, true},
		{http.StatusTemporaryRedirect, true, false},
		{http.StatusPermanentRedirect, true, false},
	} {
		name := http.StatusText(tt.status)
		if tt.elsewhere {
			name += " elsewhere"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			here, there := &landing{}, &landing{}
			other := httptest.NewServer(http.HandlerFunc(there.handler))
			t.Cleanup(other.Close)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/new":
					here.handler(w, r)
				case tt.elsewhere:
					http.Redirect(w, r, other.URL+"/new", tt.status)
				default:
					http.Redirect(w, r, "/new", tt.status)
				}
			}))
			t.Cleanup(srv.Close)

			req := request(t, map[string]any{"url": srv.URL + "/hook"}, map[string]any{"signing_secret": "s3cret-signing"}, false)
			err := webhook.Provider{}.Deliver(context.Background(), req)
			if tt.follow {
				require.NoError(t, err)
				require.Len(t, here.got(), 1)
				require.Regexp(t, `^POST \{.*"License lms expires in 7 days".*\} t=\d+,v1=[0-9a-f]{64}$`, here.got()[0],
					"the same method, body and signature")
				return
			}
			require.Error(t, err, "not delivered")
			require.ErrorContains(t, err, http.StatusText(tt.status))
			if tt.elsewhere {
				require.ErrorContains(t, err, "pointing to "+other.URL+"/…")
			} else {
				require.ErrorContains(t, err, "pointing to "+srv.URL+"/… (the same origin)")
			}
			require.NotContains(t, err.Error(), "/new", "the path may be the webhook's secret")
			require.Empty(t, here.got(), "nothing was sent after the redirect")
			require.Empty(t, there.got(), "nothing was sent after the redirect")
		})
	}
}
