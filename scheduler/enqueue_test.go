package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

func TestTick(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("PlansThenEnqueuesADueRowOnce", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "five", "job_class": "noop", "cron_expression": "*/5 * * * *"})
		res := b.tick(t)
		require.Equal(t, 1, res.Planned)
		require.Equal(t, 0, res.Enqueued)
		next := scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id)
		require.Equal(t, time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC), next)
		require.Equal(t, next, res.NextDue)

		b.clock.Set(next)
		res = b.tick(t)
		require.Equal(t, 1, res.Enqueued)
		require.Equal(t, []time.Time{next}, scheduledFor(t, b.pool, id))
		var status, payload string
		var attempt int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT status, attempt, payload::text FROM job_logs
			WHERE scheduled_job_id = $1`, id).Scan(&status, &attempt, &payload))
		require.Equal(t, "queued", status)
		require.Equal(t, 1, attempt)
		require.Contains(t, payload, `"scheduled_for": "2026-06-01T12:05:00Z"`)
		require.True(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, time.Date(2026, 6, 1, 12, 10, 0, 0, time.UTC),
			scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))

		require.Equal(t, 0, b.tick(t).Enqueued, "a second cycle at the same time enqueues nothing")
	})

	t.Run("IntervalFirstRunWhenSeenThenFromDueTime", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "iv", "job_class": "noop", "interval_minutes": 7, "overlap_policy": "allow"})
		require.Equal(t, 1, b.tick(t).Enqueued, "first run as soon as the row is seen")
		// A late cycle does not drift the schedule: next = due + 7 minutes.
		b.clock.Set(time.Date(2026, 6, 1, 12, 7, 40, 0, time.UTC))
		b.tick(t)
		require.Equal(t, []time.Time{
			time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 12, 7, 0, 0, time.UTC),
		}, scheduledFor(t, b.pool, id))
		require.Equal(t, time.Date(2026, 6, 1, 12, 14, 0, 0, time.UTC),
			scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))
	})

	t.Run("CronWinsOverInterval", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "both", "job_class": "noop", "cron_expression": "0 13 * * *", "interval_minutes": 1})
		b.tick(t)
		require.Equal(t, time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC),
			scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))
	})

	t.Run("TimezoneOfTheRow", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "baku", "job_class": "noop", "cron_expression": "0 9 * * *", "timezone": "Asia/Baku"})
		b.tick(t)
		require.Equal(t, time.Date(2026, 6, 2, 5, 0, 0, 0, time.UTC), // 09:00 +04
			scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))
	})

	t.Run("ExplicitNextRunAtIsHonoured", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		at := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
		id := b.insertSchedule(t, map[string]any{"name": "x", "job_class": "noop", "cron_expression": "0 0 * * *", "next_run_at": at})
		b.tick(t)
		require.Equal(t, at, scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))
	})

	t.Run("EditReplansPauseClearsDeleteIsFine", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "e", "job_class": "noop", "cron_expression": "0 0 * * *"})
		b.tick(t)
		_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET cron_expression = '30 12 * * *' WHERE id = $1", id)
		require.NoError(t, err)
		require.Nil(t, scalar[*time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id),
			"the trigger clears a stale next_run_at at once")
		b.tick(t)
		require.Equal(t, time.Date(2026, 6, 1, 12, 30, 0, 0, time.UTC),
			scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))

		_, err = b.pool.Exec(ctx, "UPDATE scheduled_jobs SET is_active = false WHERE id = $1", id)
		require.NoError(t, err)
		b.tick(t)
		require.Nil(t, scalar[*time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))
		b.clock.Set(time.Date(2026, 6, 1, 12, 31, 0, 0, time.UTC))
		require.Equal(t, 0, b.tick(t).Enqueued, "a paused row does not run")

		_, err = b.pool.Exec(ctx, "UPDATE scheduled_jobs SET is_active = true WHERE id = $1", id)
		require.NoError(t, err)
		b.tick(t)
		require.Equal(t, time.Date(2026, 6, 2, 12, 30, 0, 0, time.UTC),
			scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id),
			"resumed: the next tick from now, no catch-up of paused time")

		_, err = b.pool.Exec(ctx, "DELETE FROM scheduled_jobs WHERE id = $1", id)
		require.NoError(t, err)
		b.tick(t)
	})

	t.Run("AliasClassRunsAsItsClass", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "laravel", "job_class": `App\Jobs\Noop`, "interval_minutes": 5})
		require.Equal(t, 1, b.tick(t).Enqueued)
		require.Equal(t, "noop", scalar[string](t, b.pool, "SELECT kind FROM river_job"))
		require.Equal(t, `App\Jobs\Noop`, scalar[string](t, b.pool, "SELECT job_class FROM job_logs WHERE scheduled_job_id = $1", id))
	})
}

// TestExactlyOnceAcrossReplicas runs three schedulers, each with its own
// connection pool as separate processes would have, on one database through
// many ticks, all cycling at the same moments, and checks that every
// (schedule, fire time) was enqueued exactly once.
func TestExactlyOnceAcrossReplicas(t *testing.T) {
	t.Parallel()

	const (
		replicas  = 3
		schedules = 25
		steps     = 30
	)
	url := ownedDatabase(t)
	var bs []*bundle
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := newClock(start)
	for range replicas {
		bs = append(bs, setupOn(t, url, dbtest.Pool(t, url), setupOpts{cfg: scheduler.Config{Now: clk.Now, BatchSize: 7}}))
	}
	ids := make([]int64, schedules)
	for i := range ids {
		ids[i] = bs[0].insertSchedule(t, map[string]any{"name": fmt.Sprint("s", i), "job_class": "noop",
			"cron_expression": "* * * * *", "overlap_policy": "allow"})
	}
	ctx := context.Background()
	for step := range steps {
		clk.Set(start.Add(time.Duration(step) * time.Minute))
		var wg sync.WaitGroup
		errs := make(chan error, replicas)
		for _, b := range bs {
			wg.Go(func() {
				for { // cycle until this replica sees nothing more to do now
					res, err := b.sched.Tick(ctx)
					if err != nil {
						errs <- err
						return
					}
					if !res.More {
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	for _, id := range ids {
		var want []time.Time
		for step := 1; step < steps; step++ { // the first cycle plans; ticks from 12:01
			want = append(want, start.Add(time.Duration(step)*time.Minute))
		}
		require.Equal(t, want, scheduledFor(t, bs[0].pool, id), "schedule %d", id)
	}
	require.Equal(t, schedules*(steps-1), scalar[int](t, bs[0].pool, "SELECT count(*) FROM job_logs"))
	require.Zero(t, scalar[int](t, bs[0].pool, `SELECT count(*) FROM (SELECT river_job_id FROM job_logs
		GROUP BY river_job_id HAVING count(*) > 1) d`), "one attempt-1 row per run")
}

func TestFailureBetweenStepsLeavesNoHalfState(t *testing.T) {
	t.Parallel()

	for _, step := range []string{"claimed", "validated", "river_inserted", "job_log_inserted", "row_updated", "before_commit"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()

			var failing sync.Map
			b := setup(t, setupOpts{cfg: scheduler.WithFault(scheduler.Config{}, func(s string) error {
				if _, ok := failing.Load(s); ok {
					return errors.New("injected failure at " + s)
				}
				return nil
			})})
			id := b.insertSchedule(t, map[string]any{"name": "f", "job_class": "noop", "cron_expression": "*/5 * * * *"})
			b.tick(t) // plan
			due := time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC)
			b.clock.Set(due)
			failing.Store(step, true)
			_, err := b.sched.Tick(context.Background())
			if step == "claimed" || step == "before_commit" {
				require.ErrorContains(t, err, "injected failure at "+step)
			}

			require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM river_job"), "no River job")
			require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM job_logs"), "no job_logs row")
			require.Equal(t, due, scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id), "next_run_at unchanged")
			require.False(t, scalar[bool](t, b.pool, "SELECT is_running FROM scheduled_jobs WHERE id = $1", id))

			failing.Delete(step)
			b.clock.Set(due.Add(time.Minute)) // past the row's back-off
			require.Equal(t, 1, b.tick(t).Enqueued, "the run is not lost")
			require.Equal(t, []time.Time{due}, scheduledFor(t, b.pool, id))
			require.Equal(t, 1, scalar[int](t, b.pool, "SELECT count(*) FROM job_logs"))
		})
	}
}

// TestFailingRowDoesNotStopOthers: a row whose enqueue fails every time
// (here the job_logs insert of its run, refused by someone else's trigger)
// fails its batch; the batch's rows are then enqueued one by one, and only
// that row is put aside.
func TestFailingRowDoesNotStopOthers(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	var ids []int64
	for _, name := range []string{"a", "bad", "c", "d"} {
		ids = append(ids, b.insertSchedule(t, map[string]any{"name": name, "job_class": "noop", "interval_minutes": 1}))
	}
	_, err := b.pool.Exec(context.Background(), fmt.Sprintf(`
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.scheduled_job_id = %d THEN RAISE EXCEPTION 'refused by the web app'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON job_logs FOR EACH ROW EXECUTE FUNCTION refuse();`, ids[1]))
	require.NoError(t, err)
	res := b.tick(t)
	require.Equal(t, 3, res.Enqueued)
	for i, id := range ids {
		want := 1
		if i == 1 {
			want = 0
		}
		require.Len(t, scheduledFor(t, b.pool, id), want, "schedule %d", id)
	}
	require.Equal(t, int64(1), b.sched.Stats().Failed)
	require.Equal(t, 3, scalar[int](t, b.pool, "SELECT count(*) FROM job_logs"))
}

// TestTransientBatchFailureLosesNothing: a batch that fails once (a
// deadlock, a dropped statement) is enqueued row by row in the same cycle:
// every row once, none twice.
func TestTransientBatchFailureLosesNothing(t *testing.T) {
	t.Parallel()

	var calls sync.Map
	b := setup(t, setupOpts{cfg: scheduler.WithFault(scheduler.Config{}, func(step string) error {
		if _, seen := calls.LoadOrStore(step, true); !seen && step == "river_inserted" {
			return errors.New("injected") // the batch's insert fails, once
		}
		return nil
	})})
	var ids []int64
	for range 5 {
		ids = append(ids, b.insertSchedule(t, map[string]any{"name": "t", "job_class": "noop", "interval_minutes": 1}))
	}
	res := b.tick(t)
	require.Equal(t, 5, res.Enqueued)
	for _, id := range ids {
		require.Len(t, scheduledFor(t, b.pool, id), 1)
	}
	require.Zero(t, b.sched.Stats().Failed)
	require.Equal(t, 5, scalar[int](t, b.pool, "SELECT count(*) FROM job_logs"))
}

func TestMisfirePolicies(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	missedFrom := now.Add(-55 * time.Minute) // ticks every 10 minutes: 11:05 … 11:55
	tests := []struct {
		policy      string
		wantRuns    []time.Time
		wantSkipped int
	}{
		{"run_once", []time.Time{now.Add(-5 * time.Minute)}, 0},
		{"skip", nil, 6},
		{"run_all", []time.Time{
			now.Add(-55 * time.Minute), now.Add(-45 * time.Minute), now.Add(-35 * time.Minute),
			now.Add(-25 * time.Minute), now.Add(-15 * time.Minute), now.Add(-5 * time.Minute),
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()

			b := setup(t, setupOpts{})
			id := b.insertSchedule(t, map[string]any{"name": tt.policy, "job_class": "noop", "interval_minutes": 10,
				"misfire_policy": tt.policy, "overlap_policy": "allow", "next_run_at": missedFrom})
			b.tick(t) // plan keeps the explicit next_run_at, then fires
			require.Equal(t, tt.wantRuns, nilIfEmpty(scheduledFor(t, b.pool, id)))
			require.Equal(t, now.Add(5*time.Minute), scalar[time.Time](t, b.pool, "SELECT next_run_at FROM scheduled_jobs WHERE id = $1", id))
			require.Equal(t, tt.wantSkipped, scalar[int](t, b.pool, "SELECT skipped_count FROM scheduled_jobs WHERE id = $1", id))
		})
	}

	t.Run("SkipStillRunsAnOnTimeTick", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "s", "job_class": "noop", "interval_minutes": 10,
			"misfire_policy": "skip", "next_run_at": now.Add(-20 * time.Second)})
		b.tick(t)
		require.Len(t, scheduledFor(t, b.pool, id), 1)
	})

	t.Run("RunAllIsCapped", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		id := b.insertSchedule(t, map[string]any{"name": "cap", "job_class": "noop", "interval_minutes": 1,
			"misfire_policy": "run_all", "overlap_policy": "allow", "next_run_at": now.Add(-500 * time.Minute)})
		b.tick(t)
		runs := scheduledFor(t, b.pool, id)
		require.Len(t, runs, scheduler.DefaultRunAllCap)
		require.Equal(t, now, runs[len(runs)-1], "the latest ticks are kept")
		require.Equal(t, 501-scheduler.DefaultRunAllCap, scalar[int](t, b.pool, "SELECT skipped_count FROM scheduled_jobs WHERE id = $1", id))
	})
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestOverlapPolicies(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	tests := []struct {
		policy string
		// enqueued after the first tick (one run already unfinished and
		// running), then after the second.
		want []int
	}{
		{"skip", []int{1, 1}},
		{"allow", []int{2, 3}},
		{"queue_one", []int{2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()

			b := setup(t, setupOpts{})
			id := b.insertSchedule(t, map[string]any{"name": tt.policy, "job_class": "noop", "cron_expression": "* * * * *",
				"overlap_policy": tt.policy})
			b.tick(t)
			b.clock.Set(time.Date(2026, 6, 1, 12, 1, 0, 0, time.UTC))
			require.Equal(t, 1, b.tick(t).Enqueued)
			// The first run is being worked (and stays unfinished), as the
			// Recorder marks it.
			_, err := b.pool.Exec(ctx, "UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()")
			require.NoError(t, err)
			_, err = b.pool.Exec(ctx, "UPDATE job_logs SET status = 'processing', start_time = now()")
			require.NoError(t, err)

			for i, want := range tt.want {
				b.clock.Set(time.Date(2026, 6, 1, 12, 2+i, 0, 0, time.UTC))
				b.tick(t)
				require.Len(t, scheduledFor(t, b.pool, id), want, "after tick %d", i+2)
			}
			wantSkipped := 3 - tt.want[len(tt.want)-1]
			require.Equal(t, wantSkipped, scalar[int](t, b.pool, "SELECT skipped_count FROM scheduled_jobs WHERE id = $1", id))
			require.Equal(t, tt.want[len(tt.want)-1], scalar[int](t, b.pool, "SELECT count(*) FROM job_logs"),
				"skipped ticks write no job_logs rows")
			if wantSkipped > 0 {
				require.NotNil(t, scalar[*time.Time](t, b.pool, "SELECT last_skipped_at FROM scheduled_jobs WHERE id = $1", id))
			}
		})
	}
}

func TestBadRowsAreExplainedWhileOthersRun(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	good := b.insertSchedule(t, map[string]any{"name": "good", "job_class": "noop", "interval_minutes": 5})
	bad := map[string]int64{
		`not scheduled: cron expression "0 25 * * *": end of range (25) above maximum (23): 25`: b.insertSchedule(t,
			map[string]any{"name": "cron", "job_class": "noop", "cron_expression": "0 25 * * *"}),
		// PostgreSQL accepts POSIX zones such as UTC+3; Go's zone database does not.
		`not scheduled: unknown time zone "UTC+3" (use an IANA name such as Asia/Baku or UTC)`: b.insertSchedule(t,
			map[string]any{"name": "tz", "job_class": "noop", "interval_minutes": 5, "timezone": "UTC+3"}),
		`not scheduled: unknown job class "App\\Jobs\\Missing" (known: http_request, noop, sql, test_block, test_fail, test_flaky, test_panic)`: b.insertSchedule(t,
			map[string]any{"name": "class", "job_class": `App\Jobs\Missing`, "interval_minutes": 5}),
		`not scheduled: http_request parameters: "url" is required`: b.insertSchedule(t,
			map[string]any{"name": "params", "job_class": "http_request", "interval_minutes": 5, "parameters": `{"method": "POST"}`}),
		`not scheduled: http_request parameters: "timeout_seconds" must be a whole number, got string`: b.insertSchedule(t,
			map[string]any{"name": "ptype", "job_class": "http_request", "interval_minutes": 5, "parameters": `{"url": "http://x", "timeout_seconds": "soon"}`}),
		`not scheduled: noop takes no parameters, got 1`: b.insertSchedule(t,
			map[string]any{"name": "extra", "job_class": "noop", "interval_minutes": 5, "parameters": `{"x": 1}`}),
	}
	b.tick(t)
	require.Len(t, scheduledFor(t, b.pool, good), 1, "the good row runs")
	for want, id := range bad {
		var msg, schedErr string
		var next *time.Time
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT last_run_message, schedule_error, next_run_at FROM scheduled_jobs WHERE id = $1", id).
			Scan(&msg, &schedErr, &next))
		require.Equal(t, want, msg)
		require.Equal(t, want, schedErr)
		require.Nil(t, next)
		require.Empty(t, scheduledFor(t, b.pool, id))
	}

	// Fixing a row re-checks it: it is scheduled and the message goes.
	id := bad[`not scheduled: cron expression "0 25 * * *": end of range (25) above maximum (23): 25`]
	_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET cron_expression = '0 23 * * *' WHERE id = $1", id)
	require.NoError(t, err)
	b.tick(t)
	var msg, schedErr *string
	var next *time.Time
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT last_run_message, schedule_error, next_run_at FROM scheduled_jobs WHERE id = $1", id).
		Scan(&msg, &schedErr, &next))
	require.Nil(t, msg)
	require.Nil(t, schedErr)
	require.Equal(t, time.Date(2026, 6, 1, 23, 0, 0, 0, time.UTC), *next)
}

func TestWriteTimeChecks(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	tests := []struct {
		cols    map[string]any
		wantErr string
	}{
		{map[string]any{"timezone": "Mars/Olympus"}, `unknown time zone "Mars/Olympus"`},
		{map[string]any{"max_attempts": 0}, "scheduled_jobs.max_attempts: 0 must be at least 1"},
		{map[string]any{"retry_delay_minutes": -1}, "scheduled_jobs.retry_delay_minutes: -1 must not be negative"},
		{map[string]any{"interval_minutes": 0}, "scheduled_jobs.interval_minutes: 0 must be greater than 0"},
		{map[string]any{"misfire_policy": "sometimes"}, `scheduled_jobs.misfire_policy: "sometimes" is not one of`},
		{map[string]any{"overlap_policy": "maybe"}, `scheduled_jobs.overlap_policy: "maybe" is not one of`},
	}
	ctx := context.Background()
	good := b.insertSchedule(t, map[string]any{"name": "good", "job_class": "noop", "cron_expression": "* * * * *"})
	for _, tt := range tests {
		cols := map[string]any{"name": "w", "job_class": "noop", "cron_expression": "* * * * *"}
		for k, v := range tt.cols {
			cols[k] = v
		}
		names, vals, places := "", []any{}, ""
		for k, v := range cols {
			if names != "" {
				names, places = names+",", places+","
			}
			vals = append(vals, v)
			names, places = names+k, places+fmt.Sprintf("$%d", len(vals))
		}
		_, err := b.pool.Exec(ctx, "INSERT INTO scheduled_jobs ("+names+") VALUES ("+places+")", vals...)
		require.ErrorContains(t, err, tt.wantErr)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "23514", pgErr.Code, "check_violation")

		// An update that writes the bad value is refused the same way.
		for k, v := range tt.cols {
			_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET "+k+" = $2 WHERE id = $1", good, v)
			require.ErrorContains(t, err, tt.wantErr)
		}
	}
}

func TestPauseSwitches(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	noop := b.insertSchedule(t, map[string]any{"name": "n", "job_class": `App\Jobs\Noop`, "cron_expression": "* * * * *", "overlap_policy": "allow"})
	flaky := b.insertSchedule(t, map[string]any{"name": "f", "job_class": "test_flaky", "cron_expression": "* * * * *", "overlap_policy": "allow"})
	b.tick(t)

	setFlag := func(key string, on bool) {
		_, err := b.pool.Exec(ctx, `INSERT INTO platform.feature_flags (key, is_enabled) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET is_enabled = $2`, key, on)
		require.NoError(t, err)
	}
	at := func(m int) { b.clock.Set(time.Date(2026, 6, 1, 12, m, 0, 0, time.UTC)) }

	setFlag("scheduler.paused", true)
	at(1)
	b.tick(t)
	at(2)
	b.tick(t)
	require.Empty(t, scheduledFor(t, b.pool, noop))
	require.Empty(t, scheduledFor(t, b.pool, flaky))

	// One class paused (by its canonical name; the row uses an alias).
	setFlag("scheduler.paused", false)
	setFlag("scheduler.paused.noop", true)
	at(3)
	b.tick(t)
	require.Empty(t, scheduledFor(t, b.pool, noop))
	require.Len(t, scheduledFor(t, b.pool, flaky), 1, "missed ticks of 12:01-12:03 run once (run_once)")

	setFlag("scheduler.paused.noop", false)
	at(4)
	b.tick(t)
	require.Equal(t, []time.Time{time.Date(2026, 6, 1, 12, 4, 0, 0, time.UTC)}, scheduledFor(t, b.pool, noop))
}

func TestRunNow(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	id := b.insertSchedule(t, map[string]any{"name": "manual", "job_class": "noop", "cron_expression": "0 0 1 1 *"})
	var user int64
	require.NoError(t, b.pool.QueryRow(ctx, "INSERT INTO users DEFAULT VALUES RETURNING id").Scan(&user))

	jobID, err := b.sched.RunNow(ctx, id, &user)
	require.NoError(t, err)
	require.Equal(t, user, scalar[int64](t, b.pool, "SELECT executed_by FROM job_logs WHERE river_job_id = $1", jobID))
	require.Equal(t, id, scalar[int64](t, b.pool, "SELECT scheduled_job_id FROM job_logs WHERE river_job_id = $1", jobID))

	_, err = b.sched.RunNow(ctx, 9999, nil)
	require.ErrorIs(t, err, scheduler.ErrNotFound)

	bad := b.insertSchedule(t, map[string]any{"name": "bad", "job_class": "nope", "interval_minutes": 1})
	_, err = b.sched.RunNow(ctx, bad, nil)
	require.ErrorContains(t, err, `unknown job class "nope"`)
}

// TestPayloadHidesSecrets: header values and URL credentials of an
// http_request never reach job_logs.
func TestPayloadHidesSecrets(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	params, _ := json.Marshal(map[string]any{
		"url":     "https://user:hunter2@example.test/hook?token=s3cr3t-token",
		"headers": map[string]string{"Authorization": "Bearer s3cr3t-bearer"},
	})
	b.insertSchedule(t, map[string]any{"name": "h", "job_class": "http_request", "interval_minutes": 5, "parameters": string(params)})
	b.tick(t)
	payload := scalar[string](t, b.pool, "SELECT payload::text FROM job_logs")
	for _, secret := range []string{"hunter2", "s3cr3t-token", "s3cr3t-bearer"} {
		require.NotContains(t, payload, secret)
	}
	require.Contains(t, payload, "example.test/hook")
}
