package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestBakuClockedDatabase: the web app writes TIMESTAMP columns in
// Asia/Baku wall time (ATIS_DB_TIMEZONE=Asia/Baku). A next_run_at an admin
// sets to 02:30 fires at 02:30 Baku time (22:30 UTC the day before), and
// what the daemon writes back reads as Baku wall time too.
func TestBakuClockedDatabase(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	baku, err := time.LoadLocation("Asia/Baku")
	require.NoError(t, err)
	url := ownedDatabase(t)
	pool := dbtest.PoolWith(t, url, database.Options{TimeZone: baku})
	b := setupOn(t, url, pool, setupOpts{})
	admin := dbtest.Pool(t, url) // psql's view: wall clocks as written

	id := b.insertSchedule(t, map[string]any{"name": "nightly", "job_class": "noop", "cron_expression": "30 2 * * *",
		"timezone": "Asia/Baku", "next_run_at": "2026-06-02 02:30:00"})
	utc := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return ts
	}
	b.clock.Set(utc("2026-06-01T22:29:59Z"))
	require.Zero(t, b.tick(t).Enqueued, "02:29:59 in Baku: not yet")
	b.clock.Set(utc("2026-06-01T22:30:00Z"))
	require.Equal(t, 1, b.tick(t).Enqueued, "02:30 in Baku")
	require.Equal(t, []time.Time{utc("2026-06-01T22:30:00Z")}, scheduledFor(t, pool, id))

	// The next fire time is written as Baku wall time, as the app reads it.
	require.Equal(t, "2026-06-03 02:30:00", scalar[string](t, admin, "SELECT next_run_at::text FROM scheduled_jobs WHERE id = $1", id))
	require.Equal(t, "2026-06-02 02:30:00", scalar[string](t, admin, "SELECT last_due_at::text FROM scheduled_jobs WHERE id = $1", id))
	// Sessions run in the app's zone: now() and DEFAULT NOW() agree with it.
	require.Equal(t, "Asia/Baku", scalar[string](t, pool, "SHOW TimeZone"))
	_, err = pool.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
}
