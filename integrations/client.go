package integrations

import (
	"context"
	"net/http"
)

// HTTPClient returns a client for requests to integration integrationID
// outside a sync (deliveries): like FetchRequest.Client, it waits for the
// integration's api_rate_limit (perMinute; 0 means none) — one bucket per
// integration in this process, shared with its syncs — and gives each
// request the timeout of WithRequestTimeout.
func (e *Engine) HTTPClient(integrationID int64, perMinute int) *http.Client {
	return &http.Client{Transport: newTransport(e.limiters.get(integrationID, perMinute))}
}

// WaitTurn waits until integration integrationID may make one more request
// under its api_rate_limit (perMinute; 0 means none), for protocols other
// than HTTP (SMTP). It returns a *RateLimitWaitError when the turn would
// come after ctx's deadline.
func (e *Engine) WaitTurn(ctx context.Context, integrationID int64, perMinute int) error {
	return waitTurn(ctx, e.limiters.get(integrationID, perMinute))
}
