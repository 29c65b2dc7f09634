package delivery_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCrashBetweenSendAndMarkResendsAfterTheLease: a run that claimed a
// delivery and died (the row stays 'sending') blocks nobody for longer
// than the lease; the resend carries the same idempotency key.
func TestCrashBetweenSendAndMarkResendsAfterTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	hook := newReceiver(t, "")
	id := b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	n := b.notify(t, "alert", "warning", "crashed")
	// What a run that died after claiming leaves behind.
	_, err := b.pool.Exec(ctx, `INSERT INTO notification_deliveries (notification_id, integration_id, status, attempts, lease_until)
		VALUES ($1, $2, 'sending', 1, localtimestamp + interval '10 minutes')`, n, id)
	require.NoError(t, err)

	b.run(t, b.dispatcher())
	require.Empty(t, hook.received(), "the lease holds")

	_, err = b.pool.Exec(ctx, `UPDATE notification_deliveries SET lease_until = localtimestamp - interval '1 second'`)
	require.NoError(t, err)
	b.run(t, b.dispatcher())
	got := hook.received()
	require.Len(t, got, 1, "resent once the lease ended")
	require.Equal(t, "atis-i"+itoa(id)+"-n"+itoa(n), got[0].Headers.Get("Idempotency-Key"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM notification_deliveries WHERE status = 'delivered' AND attempts = 2"))

	b.run(t, b.dispatcher())
	require.Len(t, hook.received(), 1)
}

// TestDefaultSchedule: the migration schedules the dispatch every minute,
// active.
func TestDefaultSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM scheduled_jobs WHERE job_class = 'notification_dispatch'
		AND cron_expression = '* * * * *' AND coalesce(is_active, true)`))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
