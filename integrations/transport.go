package integrations

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"golang.org/x/time/rate"
)

// DefaultRequestTimeout is how long a request made through
// FetchRequest.Client may take, body included, unless the provider says
// otherwise with WithRequestTimeout.
const DefaultRequestTimeout = 30 * time.Second

type requestTimeoutKey struct{}

// WithRequestTimeout returns a context under which each request made with
// it through FetchRequest.Client (each retry and redirect too) has d to
// answer and be read, counted from when the request gets its turn under
// api_rate_limit: waiting for a turn is bounded by ctx alone. A provider
// must use this instead of http.Client.Timeout, which would count the wait.
func WithRequestTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, requestTimeoutKey{}, d)
}

func requestTimeout(ctx context.Context) time.Duration {
	d, _ := ctx.Value(requestTimeoutKey{}).(time.Duration)
	return cmp.Or(d, DefaultRequestTimeout)
}

// RateLimitWaitError is a request's error when its turn under api_rate_limit
// would come after the run's deadline. It is not worth retrying within the
// run.
type RateLimitWaitError struct {
	PerMinute int
}

func (e *RateLimitWaitError) Error() string {
	return fmt.Sprintf("waiting for the rate limit (api_rate_limit=%d/min) would pass the run's deadline", e.PerMinute)
}

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

// transport waits for the integration's rate limit before each request,
// then gives the request its timeout, and counts requests.
type transport struct {
	base     http.RoundTripper
	limiter  *rate.Limiter
	requests atomic.Int64
}

func newTransport(limiter *rate.Limiter) *transport {
	return &transport{base: cleanhttp.DefaultPooledTransport(), limiter: limiter}
}

// RoundTrip implements http.RoundTripper. The request's timeout starts once
// it has its turn and covers the body until it is closed.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := waitTurn(r.Context(), t.limiter); err != nil {
		return nil, err
	}
	t.requests.Add(1)
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(r.Context()))
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// waitTurn waits for one request's turn under limiter (nil: no limit).
func waitTurn(ctx context.Context, limiter *rate.Limiter) error {
	if limiter == nil {
		return nil
	}
	err := limiter.Wait(ctx)
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	// The deadline would pass (rate says so before waiting) or has passed.
	return &RateLimitWaitError{PerMinute: int(math.Round(float64(limiter.Limit()) * 60))}
}

// timedBody ends a request's timeout when its body is closed.
type timedBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *timedBody) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}
