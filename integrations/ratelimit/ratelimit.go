// Package ratelimit paces the requests made to one integration's provider
// under its api_rate_limit (one token bucket per integration in this
// process, shared by its syncs and deliveries), and gives each request its
// own timeout, counted from when it gets its turn.
package ratelimit

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

// DefaultRequestTimeout is how long a request made through a Transport
// may take, body included, unless the caller says otherwise with
// WithRequestTimeout.
const DefaultRequestTimeout = 30 * time.Second

type requestTimeoutKey struct{}

// WithRequestTimeout returns a context under which each request made with
// it through a Transport (each retry and redirect too) has d to
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

// WaitError is a request's error when its turn under api_rate_limit would
// come after the run's deadline. It is not worth retrying within the run.
type WaitError struct {
	PerMinute int
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waiting for the rate limit (api_rate_limit=%d/min) would pass the run's deadline", e.PerMinute)
}

// Limiters holds one token bucket per integration for this process, so that
// api_rate_limit (requests per minute) bounds every request made to that
// provider, retries and concurrent syncs included. The zero value is ready;
// share one among everything that talks to providers.
type Limiters struct {
	mu sync.Mutex
	m  map[int64]*rate.Limiter
}

func (l *Limiters) get(integrationID int64, perMinute int) *rate.Limiter {
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

// Transport waits for the integration's rate limit before each request,
// then gives the request its timeout, and counts requests.
type Transport struct {
	base     http.RoundTripper
	limiter  *rate.Limiter
	requests atomic.Int64
}

// Transport returns a transport for requests to integration integrationID
// under its api_rate_limit (perMinute; 0 means none).
func (l *Limiters) Transport(integrationID int64, perMinute int) *Transport {
	return &Transport{base: cleanhttp.DefaultPooledTransport(), limiter: l.get(integrationID, perMinute)}
}

// Client returns a client whose requests go through Transport.
func (l *Limiters) Client(integrationID int64, perMinute int) *http.Client {
	return &http.Client{Transport: l.Transport(integrationID, perMinute)}
}

// WaitTurn waits until integration integrationID may make one more request
// under its api_rate_limit (perMinute; 0 means none), for protocols other
// than HTTP (SMTP). It returns a *WaitError when the turn would come after
// ctx's deadline.
func (l *Limiters) WaitTurn(ctx context.Context, integrationID int64, perMinute int) error {
	return waitTurn(ctx, l.get(integrationID, perMinute))
}

// Requests counts the requests t has sent.
func (t *Transport) Requests() int64 { return t.requests.Load() }

// RoundTrip implements http.RoundTripper. The request's timeout starts once
// it has its turn and covers the body until it is closed.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
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
	return &WaitError{PerMinute: int(math.Round(float64(limiter.Limit()) * 60))}
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
