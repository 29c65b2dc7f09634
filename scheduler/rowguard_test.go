package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/noop"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Whatever one scheduled_jobs row holds, the others go on being scheduled:
// the tests below name the cases that stopped every replica once, and
// FuzzScheduleRows drives generated rows through the same code.

// everySecond inserts a good row that fires every second, each tick a run
// (overlap allowed: these tests work no run).
func (b *bundle) everySecond(t *testing.T) int64 {
	t.Helper()
	return b.insertSchedule(t, map[string]any{"name": "heartbeat", "job_class": "noop", "cron_expression": "* * * * * *",
		"overlap_policy": "allow"})
}

// runsOf counts the River jobs of a schedule.
func (b *bundle) runsOf(t *testing.T, id int64) int {
	t.Helper()
	return len(scheduledFor(t, b.pool, id))
}

// scheduleState is what admins see of a row.
type scheduleState struct {
	NextRunAt              *time.Time
	ScheduleError, Message *string
	NeedsPlan              bool
}

func (b *bundle) state(t *testing.T, id int64) scheduleState {
	t.Helper()
	var s scheduleState
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT CASE WHEN isfinite(next_run_at) THEN next_run_at END,
		schedule_error, last_run_message, needs_plan FROM scheduled_jobs WHERE id = $1`, id).
		Scan(&s.NextRunAt, &s.ScheduleError, &s.Message, &s.NeedsPlan))
	return s
}

// TestACronThatNeverFiresIsExplained: February 30 used to be planned at
// 0001-01-01, and the next cycle panicked in every replica (index out of
// range in dueTicks), again at each restart.
func TestACronThatNeverFiresIsExplained(t *testing.T) {
	t.Parallel()

	tests := []struct{ cron, want string }{
		{"0 0 30 2 *", "never fires: February has no day 30"},
		{"0 0 31 4 *", "never fires: April has no day 31"},
		{"0 0 0 31 2 *", "never fires: February has no day 31"},
	}
	for _, tt := range tests {
		t.Run(tt.cron, func(t *testing.T) {
			t.Parallel()

			b := setup(t, setupOpts{})
			good := b.everySecond(t)
			bad := b.insertSchedule(t, map[string]any{"name": "typo", "job_class": "noop", "cron_expression": tt.cron})
			for range 3 {
				b.tick(t)
				b.clock.Set(b.clock.Now().Add(time.Second))
			}
			st := b.state(t, bad)
			require.Nil(t, st.NextRunAt, "no next_run_at")
			require.NotNil(t, st.ScheduleError)
			require.Contains(t, *st.ScheduleError, tt.want)
			require.Equal(t, st.ScheduleError, st.Message, "in last_run_message too")
			require.Equal(t, 2, b.runsOf(t, good), "the good row fired at +1 s and +2 s")
		})
	}
}

// TestResumingARowThatNeverFiresExplainsIt: a paused row is not checked;
// resuming it is an edit like any other.
func TestResumingARowThatNeverFiresExplainsIt(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	good := b.everySecond(t)
	bad := b.insertSchedule(t, map[string]any{"name": "typo", "job_class": "noop", "cron_expression": "0 0 30 2 *", "is_active": false})
	b.tick(t)
	require.Nil(t, b.state(t, bad).ScheduleError, "paused: nothing to say yet")
	_, err := b.pool.Exec(context.Background(), "UPDATE scheduled_jobs SET is_active = true WHERE id = $1", bad)
	require.NoError(t, err)
	b.clock.Set(b.clock.Now().Add(time.Second))
	b.tick(t)
	st := b.state(t, bad)
	require.Nil(t, st.NextRunAt)
	require.Contains(t, *st.ScheduleError, "February has no day 30")
	require.Equal(t, 1, b.runsOf(t, good))
}

// TestAnyNextRunAtAnAdminWrites: the far past (year 1, 4713 BC,
// -infinity) is due now under the misfire policy; the far future (9999,
// infinity) waits. Written with the insert (honoured by the planner) or
// later by hand (read by the firer).
func TestAnyNextRunAtAnAdminWrites(t *testing.T) {
	t.Parallel()

	tests := []struct {
		value    string
		misfire  string
		wantRuns int
	}{
		{"0001-01-01 00:00:00", "run_once", 1},
		{"4713-01-01 00:00:00 BC", "run_once", 1},
		{"-infinity", "run_once", 1},
		{"-infinity", "run_all", scheduler.DefaultRunAllCap}, // the latest RunAllCap real ticks
		{"0001-01-01 00:00:00", "skip", 1},                   // the latest real tick is within grace
		{"9999-12-31 23:59:59", "run_once", 0},
		{"infinity", "run_once", 0},
	}
	for _, tt := range tests {
		for _, when := range []string{"insert", "update"} {
			t.Run(tt.value+"_"+tt.misfire+"_"+when, func(t *testing.T) {
				t.Parallel()

				b := setup(t, setupOpts{})
				good := b.everySecond(t)
				id := b.insertSchedule(t, map[string]any{"name": "edited", "job_class": "noop", "cron_expression": "*/10 * * * * *",
					"misfire_policy": tt.misfire, "overlap_policy": "allow"})
				ctx := context.Background()
				if when == "insert" {
					_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET next_run_at = $2::text::timestamp, needs_plan = true WHERE id = $1", id, tt.value)
					require.NoError(t, err)
				} else {
					b.tick(t) // planned at 12:00:10
					_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET next_run_at = $2::text::timestamp WHERE id = $1", id, tt.value)
					require.NoError(t, err)
				}
				b.clock.Set(b.clock.Now().Add(time.Second))
				res := b.tick(t)
				b.clock.Set(b.clock.Now().Add(time.Second))
				b.tick(t)

				st := b.state(t, id)
				require.Nil(t, st.ScheduleError)
				require.Positive(t, b.runsOf(t, good), "the good row keeps firing")
				if tt.wantRuns == 0 {
					require.Zero(t, b.runsOf(t, id), "the far future waits")
					require.False(t, res.NextDue.IsZero(), "the good row is still due")
					return
				}
				runs := scheduledFor(t, b.pool, id)
				require.Len(t, runs, tt.wantRuns, "the far past is due now, under the misfire policy")
				require.Equal(t, time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), runs[len(runs)-1], "up to the latest real tick")
				require.NotNil(t, st.NextRunAt)
				require.Equal(t, time.Date(2026, 6, 1, 12, 0, 10, 0, time.UTC), st.NextRunAt.UTC(), "then on schedule again")
			})
		}
	}
}

// panicky is a job class whose parameter check panics on {"panic": true}
// while armed: a bug in a class that a row's content reaches.
type panicky struct {
	armed *atomic.Bool
}

func (panicky) Name() string { return "test_panicky" }
func (c panicky) ValidateParameters(p json.RawMessage) error {
	if c.armed.Load() && strings.Contains(string(p), `"panic"`) {
		var m map[string]int
		_ = m["x"]
		var s []int
		_ = s[len(p)] // index out of range, as dueTicks did
	}
	return nil
}
func (panicky) AddWorker(w *river.Workers) error {
	river.AddWorkerArgs(w, testArgs{kind: "test_panicky"}, river.WorkFunc(func(context.Context, *river.Job[testArgs]) error { return nil }))
	return nil
}

// recordHandler keeps the log records.
type recordHandler struct {
	records chan slog.Record
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.records <- r
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// errorsFor lists the ERROR records logged about scheduled job id.
func errorsFor(records chan slog.Record, id int64) []string {
	var out []string
	for {
		select {
		case r := <-records:
			if r.Level < slog.LevelError {
				continue
			}
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "scheduled_job_id" && a.Value.Int64() == id {
					out = append(out, r.Message)
				}
				return true
			})
		default:
			return out
		}
	}
}

// TestAPanicOnOneRowSetsItAside: a panic while planning or firing one row
// (here a class's parameter check) is recovered; the row is set aside with
// the reason where admins look and logged once at ERROR with its id; the
// other rows of its batch and of later cycles go on.
func TestAPanicOnOneRowSetsItAside(t *testing.T) {
	t.Parallel()

	for _, step := range []string{"plan", "enqueue"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()

			b := setup(t, setupOpts{})
			armed := &atomic.Bool{}
			registry, err := workers.NewRegistry(panicky{armed: armed}, noop.New())
			require.NoError(t, err)
			records := make(chan slog.Record, 1000)
			client := schedtest.NewClient(t, b.pool, registry, scheduler.RecorderConfig{}) // inserts the panicky class's runs
			sched := scheduler.New(b.pool, client, registry, slog.New(recordHandler{records}), scheduler.Config{Now: b.clock.Now})
			tick := func() {
				_, err := sched.Tick(context.Background())
				require.NoError(t, err)
				b.clock.Set(b.clock.Now().Add(time.Second))
			}

			var good []int64
			for range 3 {
				good = append(good, b.everySecond(t))
			}
			bad := b.insertSchedule(t, map[string]any{"name": "buggy", "job_class": "test_panicky", "cron_expression": "* * * * * *",
				"parameters": `{"panic": true}`})
			if step == "plan" {
				armed.Store(true)
			}
			tick()
			armed.Store(true)
			for range 3 {
				tick()
			}

			st := b.state(t, bad)
			require.NotNil(t, st.ScheduleError)
			require.Contains(t, *st.ScheduleError, "internal error while trying to "+step+" this row")
			require.Contains(t, *st.ScheduleError, "index out of range")
			require.Equal(t, st.ScheduleError, st.Message, "where admins look")
			require.Len(t, errorsFor(records, bad), 1, "logged once at ERROR, with the row's id")
			for _, id := range good {
				require.Equal(t, 3, b.runsOf(t, id), "schedule %d went on", id)
			}

			// The bug fixed (here: disarmed), the row is tried again after
			// its time aside, fires, and its reason is cleared; a row that
			// still panics is not logged again.
			b.clock.Set(b.clock.Now().Add(11 * time.Minute))
			tick()
			require.Empty(t, errorsFor(records, bad), "the same reason is not logged twice")
			armed.Store(false)
			b.clock.Set(b.clock.Now().Add(11 * time.Minute))
			tick()
			tick()
			st = b.state(t, bad)
			require.Nil(t, st.ScheduleError)
			require.NotNil(t, st.NextRunAt)
			require.Positive(t, b.runsOf(t, bad), "it fires again")
		})
	}
}

// TestAPanickingCycleIsLoggedAndTheLoopGoesOn: a panic outside any row's
// batch (here the clock) costs one cycle, not the daemon.
func TestAPanickingCycleIsLoggedAndTheLoopGoesOn(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	good := b.everySecond(t)
	var panics atomic.Int32
	panics.Store(1)
	records := make(chan slog.Record, 1000)
	sched := scheduler.New(b.pool, b.river, b.registry, slog.New(recordHandler{records}), scheduler.Config{
		PollInterval: 50 * time.Millisecond,
		Now: func() time.Time {
			if panics.Add(-1) == 0 {
				panic("clock broke")
			}
			return time.Now()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, sched.Start(ctx))
	defer func() {
		cancel()
		sched.Stop()
	}()
	eventually(t, func() bool { return b.runsOf(t, good) >= 2 }, "the loop goes on after a panicking cycle")
	var logged bool
	for len(records) > 0 {
		r := <-records
		logged = logged || (r.Level == slog.LevelError && r.Message == "scheduling cycle failed")
	}
	require.True(t, logged, "the panic is logged at ERROR")
}

// TestNextRunAtClearedByHandIsPlannedAgain: an active row whose next_run_at
// an admin sets to NULL used to wait forever, silently.
func TestNextRunAtClearedByHandIsPlannedAgain(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	id := b.insertSchedule(t, map[string]any{"name": "cleared", "job_class": "noop", "cron_expression": "*/10 * * * * *"})
	b.tick(t)
	_, err := b.pool.Exec(context.Background(), "UPDATE scheduled_jobs SET next_run_at = NULL WHERE id = $1", id)
	require.NoError(t, err)
	b.clock.Set(b.clock.Now().Add(time.Second))
	b.tick(t)
	st := b.state(t, id)
	require.Nil(t, st.ScheduleError)
	require.NotNil(t, st.NextRunAt, "planned again")
	require.Equal(t, time.Date(2026, 6, 1, 12, 0, 10, 0, time.UTC), st.NextRunAt.UTC())
}

// TestUpdatedAtInTheWebAppsClock: an edit of a schedule by hand stamps
// updated_at in the zone the daemons record (ATIS_DB_TIMEZONE), whatever
// the editing session's zone, and keeps a value the statement sets (the
// trigger overwrote it with now() in the session's zone).
func TestUpdatedAtInTheWebAppsClock(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	ctx := context.Background()
	id := b.insertSchedule(t, map[string]any{"name": "edited", "job_class": "noop", "cron_expression": "0 3 * * *"})
	_, err := b.pool.Exec(ctx, `INSERT INTO scheduler_settings (key, value) VALUES ('db_timezone', 'Asia/Baku')`)
	require.NoError(t, err)

	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET TimeZone = 'America/New_York'") // an admin's psql elsewhere
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "UPDATE scheduled_jobs SET cron_expression = '0 4 * * *' WHERE id = $1", id)
	require.NoError(t, err)
	var skew float64
	require.NoError(t, conn.QueryRow(ctx, `SELECT abs(extract(epoch FROM updated_at - (now() AT TIME ZONE 'Asia/Baku')))
		FROM scheduled_jobs WHERE id = $1`, id).Scan(&skew))
	require.Less(t, skew, 60.0, "updated_at is Baku's wall clock")

	_, err = conn.Exec(ctx, "UPDATE scheduled_jobs SET cron_expression = '0 5 * * *', updated_at = '2026-01-02 03:04:05' WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, "2026-01-02 03:04:05", scalar[string](t, b.pool, "SELECT updated_at::text FROM scheduled_jobs WHERE id = $1", id),
		"an explicit value is kept")
	_, err = conn.Exec(ctx, "RESET TimeZone")
	require.NoError(t, err)
}

// TestNoScheduleIsRefusedInWords: a row with neither cron_expression nor
// interval_minutes is refused saying what to set (the seed's CHECK quoted
// the whole row).
func TestNoScheduleIsRefusedInWords(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	_, err := b.pool.Exec(context.Background(), `INSERT INTO scheduled_jobs (name, job_class) VALUES ('typo', 'noop')`)
	require.ErrorContains(t, err, "scheduled_jobs: set cron_expression (such as '0 3 * * *') or interval_minutes")
	require.NotContains(t, err.Error(), "Failing row")
	id := b.insertSchedule(t, map[string]any{"name": "ok", "job_class": "noop", "interval_minutes": 5})
	_, err = b.pool.Exec(context.Background(), `UPDATE scheduled_jobs SET interval_minutes = NULL WHERE id = $1`, id)
	require.ErrorContains(t, err, "set cron_expression")
}

// TestFailedAttemptsAreLogged: each failed attempt is logged once, at WARN
// while it is retried and at ERROR when the run is over, naming the
// schedule, the run and the attempt (a failure was only River's INFO line).
func TestFailedAttemptsAreLogged(t *testing.T) {
	t.Parallel()

	records := make(chan slog.Record, 100)
	b, _ := bufferedBundleLogging(t, scheduler.RecorderConfig{}, slog.New(recordHandler{records}))
	b.startRiver(t)
	id := b.insertSchedule(t, map[string]any{"name": "always-fails", "job_class": "test_fail", "interval_minutes": 60,
		"max_attempts": 2, "retry_delay_minutes": 0})
	b.tick(t)
	eventually(t, func() bool {
		return scalar[int](t, b.pool, "SELECT count(*) FROM job_logs WHERE scheduled_job_id = $1 AND status = 'failed'", id) == 2
	}, "both attempts failed")
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case r := <-records:
			if r.Level < slog.LevelWarn {
				continue
			}
			attrs := map[string]string{}
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
			require.Equal(t, "always-fails", attrs["schedule"])
			require.NotEmpty(t, attrs["run_id"])
			got = append(got, fmt.Sprintf("%s %s attempt %s: %s", r.Level, r.Message, attrs["attempt"], attrs["error"]))
		case <-deadline:
			t.Fatalf("logged: %v", got)
		}
	}
	require.Equal(t, []string{"WARN run attempt failed; it is retried attempt 1: boom on attempt 1", "ERROR run failed attempt 2: boom on attempt 2"}, got)
}
