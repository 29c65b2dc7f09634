package integrations

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-cleanhttp"
	"golang.org/x/time/rate"
)

// limiters holds one token bucket per integration for this process, so that
// api_rate_limit (requests per minute) bounds every request made to that
// provider, retries and concurrent syncs included.
type limiters struct {
	mu sync.Mutex
	m  map[int64]*rate.Limiter
}

func (l *limiters) get(integrationID int64, perMinute int) *rate.Limiter {
	if perMinute <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[int64]*rate.Limiter{}
	}
	limit := rate.Limit(float64(perMinute) / 60)
	lim, ok := l.m[integrationID]
	if !ok {
		lim = rate.NewLimiter(limit, 1)
		l.m[integrationID] = lim
	} else if lim.Limit() != limit {
		lim.SetLimit(limit) // the admin changed api_rate_limit
	}
	return lim
}

// transport waits for the integration's rate limit before each request and
// counts requests.
type transport struct {
	base     http.RoundTripper
	limiter  *rate.Limiter
	requests atomic.Int64
}

func newTransport(limiter *rate.Limiter) *transport {
	return &transport{base: cleanhttp.DefaultPooledTransport(), limiter: limiter}
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.limiter != nil {
		if err := t.limiter.Wait(r.Context()); err != nil {
			return nil, err
		}
	}
	t.requests.Add(1)
	return t.base.RoundTrip(r)
}
