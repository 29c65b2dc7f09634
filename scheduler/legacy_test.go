package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// legacyRows are scheduled_jobs rows an ATİS web app wrote before the
// daemon was installed: the seed schema accepts every one of them, and our
// write-time checks would refuse most.
const legacyRows = `
INSERT INTO scheduled_jobs (name, job_class, interval_minutes, cron_expression, timezone, max_attempts, retry_delay_minutes, is_running) VALUES
	('good', 'noop', 5, NULL, 'UTC', 1, 5, false),
	('zero-interval', 'noop', 0, NULL, 'UTC', 1, 5, false),
	('martian', 'noop', NULL, '* * * * *', 'Mars/Olympus', 1, 5, false),
	('no-attempts', 'noop', 5, NULL, 'UTC', 0, -1, false),
	('bad-cron', 'noop', NULL, 'every day', 'UTC', 1, 5, false),
	('unknown-class', 'App\Jobs\Nope', 5, NULL, 'UTC', 1, 5, false),
	('stale-running', 'noop', 0, NULL, 'UTC', 1, 5, true);
`

// TestLegacyRowsDoNotStopScheduling: on a database made by the seed
// documents' own SQL, rows that predate our checks are explained where
// admins look and set aside, and the good row runs, cycle after cycle.
func TestLegacyRowsDoNotStopScheduling(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := dbtest.NewExistingURL(t, legacyRows)
	pool := dbtest.Pool(t, url)
	// The migrations' own default schedules are not what this test is about.
	_, err := pool.Exec(ctx, "DELETE FROM scheduled_jobs WHERE name NOT IN ('good', 'zero-interval', 'martian', 'no-attempts', 'bad-cron', 'unknown-class', 'stale-running')")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE scheduled_jobs SET overlap_policy = 'allow' WHERE name = 'good'") // no worker runs here
	require.NoError(t, err)
	b := setupOn(t, url, pool, setupOpts{})

	for range 3 {
		res, err := b.sched.Tick(ctx)
		require.NoError(t, err, "one old row must not fail the cycle")
		require.False(t, res.More)
		b.clock.Set(b.clock.Now().Add(5 * time.Minute))
	}
	require.Equal(t, int64(0), b.sched.Stats().Failed)

	good := scalar[int64](t, pool, "SELECT id FROM scheduled_jobs WHERE name = 'good'")
	require.Len(t, scheduledFor(t, pool, good), 3, "the good row ran on every cycle")

	want := map[string]string{
		"zero-interval": "not scheduled: interval_minutes 0 must be greater than 0",
		"martian":       `not scheduled: unknown time zone "Mars/Olympus"`,
		"no-attempts":   "not scheduled: max_attempts 0 must be at least 1",
		"bad-cron":      `not scheduled: cron expression "every day"`,
		"unknown-class": `not scheduled: unknown job class "App\\Jobs\\Nope"`,
		"stale-running": "not scheduled: interval_minutes 0 must be greater than 0",
	}
	for name, msg := range want {
		var schedErr, lastMsg *string
		var next *time.Time
		require.NoError(t, pool.QueryRow(ctx, `SELECT schedule_error, last_run_message, next_run_at FROM scheduled_jobs WHERE name = $1`, name).
			Scan(&schedErr, &lastMsg, &next))
		require.NotNil(t, schedErr, name)
		require.Contains(t, *schedErr, msg, name)
		require.NotNil(t, lastMsg, name)
		require.Equal(t, *schedErr, *lastMsg, name)
		require.Nil(t, next, name)
	}

	// The reconciler's set-based bookkeeping touches the old rows too.
	rec := scheduler.NewReconciler(pool, dbtest.Logger(), scheduler.ReconcilerConfig{InstanceID: "legacy"})
	rep, err := rec.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Flags, "stale-running's is_running is corrected")

	// The row keeps its bad value until an admin edits it; fixing it
	// schedules it.
	_, err = pool.Exec(ctx, "UPDATE scheduled_jobs SET interval_minutes = 10 WHERE name = 'zero-interval'")
	require.NoError(t, err)
	b.tick(t)
	require.Nil(t, scalar[*string](t, pool, "SELECT schedule_error FROM scheduled_jobs WHERE name = 'zero-interval'"))
	require.NotNil(t, scalar[*time.Time](t, pool, "SELECT next_run_at FROM scheduled_jobs WHERE name = 'zero-interval'"))
}

// TestOneFailingRowDoesNotHoldUpTheOthers: a row whose write fails for a
// reason the daemon cannot know (here someone else's trigger) is put aside;
// every other row is planned and enqueued in the same cycle.
func TestOneFailingRowDoesNotHoldUpTheOthers(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION cursed() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.name = 'cursed' AND TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'the web app refuses this write'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER cursed BEFORE UPDATE ON scheduled_jobs FOR EACH ROW EXECUTE FUNCTION cursed();`)
	require.NoError(t, err)
	var ids []int64
	for _, name := range []string{"a", "cursed", "b"} {
		ids = append(ids, b.insertSchedule(t, map[string]any{"name": name, "job_class": "noop", "interval_minutes": 1}))
	}
	for range 2 {
		_, err := b.sched.Tick(ctx)
		require.NoError(t, err)
	}
	require.Len(t, scheduledFor(t, b.pool, ids[0]), 1)
	require.Empty(t, scheduledFor(t, b.pool, ids[1]))
	require.Len(t, scheduledFor(t, b.pool, ids[2]), 1)
	require.Equal(t, int64(1), b.sched.Stats().Failed, "the cursed row is tried once, then waits out its backoff")
}
