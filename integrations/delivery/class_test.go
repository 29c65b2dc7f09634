package delivery_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/notificationdispatch"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
)

// TestClassThroughRiver runs notification_dispatch as the daemon does and
// finds its summary in job_logs.result.
func TestClassThroughRiver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, "")
	id := b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	b.notify(t, "alert", "warning", "via river")
	h := schedtest.Start(t, b.pool, notificationdispatch.New(b.dispatcher()))
	out := h.Run(t, "notification_dispatch", map[string]any{})
	require.Equal(t, "completed", out.Status)
	var res delivery.Result
	require.NoError(t, json.Unmarshal(out.Result, &res))
	require.Equal(t, 1, res.Integrations[id].Delivered)
	require.Len(t, hook.received(), 1)
	require.Error(t, notificationdispatch.New(nil).ValidateParameters(json.RawMessage(`{"x": 1}`)))
}

// TestStartAtToCome: a notification announced ahead goes when its start_at
// comes, not before.
func TestStartAtToCome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	hook := newReceiver(t, "")
	b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	n := b.notify(t, "maintenance", "info", "maintenance tonight")
	_, err := b.pool.Exec(ctx, "UPDATE system_notifications SET start_at = localtimestamp + interval '1 hour' WHERE id = $1", n)
	require.NoError(t, err)
	b.run(t, b.dispatcher())
	require.Empty(t, hook.received())
	_, err = b.pool.Exec(ctx, "UPDATE system_notifications SET start_at = localtimestamp - interval '1 second' WHERE id = $1", n)
	require.NoError(t, err)
	b.run(t, b.dispatcher())
	require.Len(t, hook.received(), 1)
}

// TestRateLimitHonoured: with api_rate_limit 1 a minute, one message goes
// and the next waits for a later run instead of going at once.
func TestRateLimitHonoured(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	hook := newReceiver(t, "")
	id := b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	_, err := b.pool.Exec(ctx, "UPDATE integrations SET api_rate_limit = 1 WHERE id = $1", id)
	require.NoError(t, err)
	for _, title := range []string{"one", "two", "three"} {
		b.notify(t, "alert", "warning", title)
	}
	d := b.dispatcher()
	d.IntegrationTimeout = time.Second
	res := b.run(t, d)
	require.Len(t, hook.received(), 1)
	r := res.Integrations[id]
	require.Equal(t, 1, r.Delivered)
	require.Equal(t, 1, r.Failed)
	require.Equal(t, 1, r.Released)
	require.Contains(t, r.Error, "api_rate_limit=1/min")
}
