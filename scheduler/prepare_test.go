package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// insertDueAt inserts n noop rows named prefix-1…n, due at due (an explicit
// next_run_at; their cron fires once a year), with overlap policy overlap.
func insertDueAt(t *testing.T, b *bundle, prefix string, n int, due time.Time, overlap string) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `INSERT INTO scheduled_jobs (name, job_class, cron_expression, next_run_at, overlap_policy)
		SELECT $1 || '-' || g, 'noop', '0 0 1 1 *', $3, $4 FROM generate_series(1, $2) g`, prefix, n, due, overlap)
	require.NoError(t, err)
}

// runsFor counts the River jobs of rows named prefix-… due at due.
func runsFor(t *testing.T, b *bundle, prefix string, due time.Time) int {
	t.Helper()
	return scalar[int](t, b.pool, `SELECT count(*) FROM river_job j JOIN scheduled_jobs s ON s.id = (j.args->>'scheduled_job_id')::bigint
		WHERE s.name LIKE $1 || '-%' AND (j.args->>'scheduled_for')::timestamptz = $2`, prefix, due)
}

// liveScheduler is a scheduler on the wall clock whose poll is too slow to
// matter: notifications and due times drive it.
func liveScheduler(t *testing.T, cfg scheduler.Config) *bundle {
	t.Helper()
	cfg.Now, cfg.PollInterval = time.Now, 30*time.Second
	return setup(t, setupOpts{cfg: cfg})
}

// TestPreparedRunsCommitAtTheirInstant: runs due within PrepareAhead are
// written ahead and committed at their instant: none is visible before it,
// all are soon after it, and an admin's edit made meanwhile waits for the
// instant and applies after the fire (the row was locked: the fire and the
// edit are in that order, never interleaved).
func TestPreparedRunsCommitAtTheirInstant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := liveScheduler(t, scheduler.Config{})
	require.NoError(t, b.sched.Start(ctx))
	t.Cleanup(b.sched.Stop)
	time.Sleep(200 * time.Millisecond) // the listener subscribes

	due := time.Now().Add(1500 * time.Millisecond).UTC().Truncate(time.Millisecond)
	insertDueAt(t, b, "prep", 200, due, "skip")

	// Until the instant, nothing is visible.
	for time.Until(due) > 300*time.Millisecond {
		require.Zero(t, runsFor(t, b, "prep", due), "a run visible %s before its instant", time.Until(due))
		time.Sleep(20 * time.Millisecond)
	}
	// An edit now waits for the instant: the row is held for its fire.
	editStart := time.Now()
	_, err := b.pool.Exec(ctx, `UPDATE scheduled_jobs SET cron_expression = '0 0 2 1 *' WHERE name = 'prep-1'`)
	require.NoError(t, err)
	editDone := time.Now()
	t.Logf("edit made %s before the instant returned %s after it", due.Sub(editStart), editDone.Sub(due))
	require.False(t, editDone.Before(due), "the edit returned before the instant: the row was not prepared")

	require.Equal(t, 200, runsFor(t, b, "prep", due), "all the runs are visible once the instant has passed and the edit returned")
	// The edit came after the fire: prep-1 ran at due, then was planned on
	// its new cron; the others are planned on their yearly one.
	eventually(t, func() bool {
		return scalar[int](t, b.pool, `SELECT count(*) FROM scheduled_jobs WHERE name LIKE 'prep-%' AND last_due_at = $1
			AND next_run_at = CASE name WHEN 'prep-1' THEN $2::timestamp ELSE $3::timestamp END`,
			due, time.Date(due.Year()+1, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(due.Year()+1, 1, 1, 0, 0, 0, 0, time.UTC)) == 200
	}, "every row advanced past its fire, prep-1 on its new cron")
	require.Equal(t, 200, scalar[int](t, b.pool, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE s.name LIKE 'prep-%' AND (l.payload->>'scheduled_for')::timestamptz = $1`, due), "one queued job_logs row per run")
}

// TestARowWithARunInFlightIsNotPrepared: the overlap policy of a row whose
// run is unfinished when the instant is near is decided at the instant, as
// the run is then: a run that ends in between does not cost the next tick.
// A row with overlap_policy 'allow' is not prepared either: the Recorder
// and the Reconciler write the row of a run in flight, and must not wait
// for an instant.
func TestARowWithARunInFlightIsNotPrepared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := liveScheduler(t, scheduler.Config{})
	due := time.Now().Add(2500 * time.Millisecond).UTC().Truncate(time.Millisecond)
	insertDueAt(t, b, "busy", 1, due, "skip")
	insertDueAt(t, b, "free", 1, due, "allow")
	// Each has a run in flight, as the Recorder writes it.
	_, err := b.pool.Exec(ctx, `UPDATE scheduled_jobs SET is_running = true WHERE name IN ('busy-1', 'free-1');
		INSERT INTO job_logs (job_id, river_job_id, job_class, status, scheduled_job_id, start_time)
		SELECT '900' || id, 900 + id, 'noop', 'processing', id, now() FROM scheduled_jobs WHERE name IN ('busy-1', 'free-1')`)
	require.NoError(t, err)
	require.NoError(t, b.sched.Start(ctx))
	t.Cleanup(b.sched.Stop)

	// Within PrepareAhead of the instant, the runs end, as the Recorder
	// records them: neither row's bookkeeping is held up (neither was
	// prepared).
	time.Sleep(time.Until(due.Add(-800 * time.Millisecond)))
	endStart := time.Now()
	_, err = b.pool.Exec(ctx, `UPDATE job_logs SET status = 'completed', end_time = now() WHERE job_id LIKE '900%';
		UPDATE scheduled_jobs SET is_running = false WHERE name IN ('busy-1', 'free-1')`)
	require.NoError(t, err)
	require.True(t, time.Now().Before(due), "an in-flight row was held (prepared): its bookkeeping waited %s", time.Since(endStart))

	eventually(t, func() bool { return runsFor(t, b, "busy", due) == 1 && runsFor(t, b, "free", due) == 1 },
		"both ticks ran: busy-1's run had ended by its instant")
	require.Zero(t, scalar[int](t, b.pool, `SELECT coalesce(sum(skipped_count), 0) FROM scheduled_jobs WHERE name IN ('busy-1', 'free-1')`))
}

// TestAStopWhilePreparedLeavesTheRowsDue: a daemon stopped (or killed)
// between preparing and committing leaves nothing: no run, the rows still
// due at their instant and not locked; another scheduler then fires each
// once.
func TestAStopWhilePreparedLeavesTheRowsDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var prepared atomic.Int32
	b := liveScheduler(t, scheduler.WithFault(scheduler.Config{}, func(step string) error {
		if step == "prepared" {
			prepared.Add(1)
		}
		return nil
	}))
	due := time.Now().Add(1800 * time.Millisecond).UTC().Truncate(time.Millisecond)
	insertDueAt(t, b, "stop", 100, due, "skip")
	require.NoError(t, b.sched.Start(ctx))
	eventually(t, func() bool { return prepared.Load() > 0 }, "the runs were prepared")
	require.True(t, time.Now().Before(due), "prepared before the instant")
	b.sched.Stop()

	require.Zero(t, runsFor(t, b, "stop", due), "nothing committed")
	require.Equal(t, 100, scalar[int](t, b.pool, `SELECT count(*) FROM scheduled_jobs WHERE name LIKE 'stop-%' AND next_run_at = $1`, due))
	lockCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := b.pool.Exec(lockCtx, `SELECT id FROM scheduled_jobs WHERE name LIKE 'stop-%' FOR UPDATE NOWAIT`)
	require.NoError(t, err, "the rows are not held")

	again := setupOn(t, b.url, b.pool, setupOpts{cfg: scheduler.Config{Now: time.Now, PollInterval: 30 * time.Second}})
	require.NoError(t, again.sched.Start(ctx))
	t.Cleanup(again.sched.Stop)
	eventually(t, func() bool { return runsFor(t, b, "stop", due) == 100 }, "the other scheduler fires them")
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 100, runsFor(t, b, "stop", due), "once each")
}

// TestReplicasPrepareTheSameInstantOnce: two schedulers on one database
// prepare the same instant; the rows are shared between them by their
// locks, each row's tick runs once, none is missed.
func TestReplicasPrepareTheSameInstantOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := ownedDatabase(t)
	pool := dbtest.Pool(t, url)
	cfg := scheduler.Config{Now: time.Now, PollInterval: 30 * time.Second, BatchSize: 100}
	one := setupOn(t, url, pool, setupOpts{cfg: cfg})
	two := setupOn(t, url, pool, setupOpts{cfg: cfg})
	due := time.Now().Add(1800 * time.Millisecond).UTC().Truncate(time.Millisecond)
	insertDueAt(t, one, "rep", 2000, due, "skip")
	require.NoError(t, one.sched.Start(ctx))
	t.Cleanup(one.sched.Stop)
	require.NoError(t, two.sched.Start(ctx))
	t.Cleanup(two.sched.Stop)

	eventually(t, func() bool { return runsFor(t, one, "rep", due) >= 2000 }, "every tick ran")
	time.Sleep(500 * time.Millisecond)
	require.Zero(t, scalar[int](t, pool, `SELECT count(*) FROM (SELECT args->>'scheduled_job_id' FROM river_job
		GROUP BY 1 HAVING count(*) <> 1) x`), "a row ran twice")
	require.Equal(t, 2000, runsFor(t, one, "rep", due))
	t.Logf("runs enqueued by each scheduler: %d and %d", one.sched.Stats().Enqueued, two.sched.Stats().Enqueued)
	require.Equal(t, int64(2000), one.sched.Stats().Enqueued+two.sched.Stats().Enqueued)
}

// TestDueRowsHeldElsewhereAreNotSpunOn: rows that are due but held by
// another transaction (a replica's batch, an admin's open session) are
// looked at again every 100 ms or so, not in a tight loop.
func TestDueRowsHeldElsewhereAreNotSpunOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := liveScheduler(t, scheduler.Config{PrepareAhead: -1}) // the row would be held by the scheduler itself
	due := time.Now().Add(time.Second).UTC()
	insertDueAt(t, b, "held", 1, due, "skip")
	require.NoError(t, b.sched.Start(ctx))
	t.Cleanup(b.sched.Stop)
	eventually(t, func() bool {
		return scalar[bool](t, b.pool, `SELECT NOT needs_plan FROM scheduled_jobs WHERE name = 'held-1'`)
	}, "planned")
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `SELECT id FROM scheduled_jobs WHERE name = 'held-1' FOR UPDATE`)
	require.NoError(t, err)
	require.True(t, time.Now().Before(due), "held before its instant")
	time.Sleep(time.Until(due.Add(300 * time.Millisecond)))
	before := b.sched.Stats().Cycles
	time.Sleep(time.Second)
	cycles := b.sched.Stats().Cycles - before
	t.Logf("%d cycles in a second while the due row was held", cycles)
	require.LessOrEqual(t, cycles, int64(20), "the loop spins on a row it cannot claim")

	require.NoError(t, tx.Rollback(ctx))
	eventually(t, func() bool {
		return scalar[int](t, b.pool, `SELECT count(*) FROM job_logs l JOIN scheduled_jobs s ON s.id = l.scheduled_job_id WHERE s.name = 'held-1'`) == 1
	}, "the row fires once it is released")
}
