package scheduler_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// FuzzScheduleRows drives generated scheduled_jobs rows through the real
// planner and firer (Tick on a real database), beside a good row that fires
// every second. Whatever the row holds (any cron text, interval, time zone,
// next_run_at from 4713 BC to infinity, parameters of any JSON type,
// policies, retry settings, is_active flipped between cycles), written by an
// admin through the triggers or present from before them:
//   - no panic escapes and no cycle fails;
//   - no row is set aside for an internal error (a recovered panic is a bug
//     the guard hid, and this test is where it must show);
//   - the row ends scheduled at a real time, or explained (schedule_error,
//     also in last_run_message, and no next_run_at), or paused;
//   - the good row fires at every one of the cycles' seconds.
//
// `make test` runs the seeds below; `make fuzz` searches for more.
func FuzzScheduleRows(f *testing.F) {
	url := ownedDatabase(f)
	b := setupOn(f, url, dbtest.Pool(f, url), setupOpts{})
	seeds := []struct {
		cron      string
		interval  int32
		tz, next  string
		params    string
		flags     uint16
		misfire   string
		overlap   string
		attempts  int32
		retryMins int32
	}{
		{"0 0 30 2 *", 0, "UTC", "", `{}`, 0, "run_once", "skip", 1, 5},
		{"0 0 31 4 *", 0, "Asia/Baku", "", `{}`, 0, "run_once", "skip", 1, 5},
		{"0 0 0 31 2 *", 0, "UTC", "", `{}`, 0, "skip", "allow", 1, 5},
		{"*/5 * * * * *", 0, "UTC", "0001-01-01 00:00:00", `{}`, 0, "run_all", "allow", 1, 5},
		{"@hourly", 0, "Europe/Berlin", "-infinity", `{}`, 0, "run_once", "skip", 1, 5},
		{"@daily", 0, "UTC", "infinity", `{}`, 0, "run_once", "skip", 1, 5},
		{"", 15, "UTC", "9999-12-31 23:59:59", `{}`, 0, "run_once", "skip", 1, 5},
		{"", 0, "UTC", "", `{}`, 0, "run_once", "skip", 1, 5},
		{"", -5, "Mars/Olympus", "4713-01-01 00:00:00 BC", `{}`, 0, "never", "sometimes", 0, -1},
		{"* * * * *", 0, "UTC", "", `"a string"`, 0, "run_once", "skip", 1, 5},
		{"* * * * *", 0, "UTC", "", `[1, 2]`, 1 << 8, "run_once", "skip", 40000, 2147483647},
		{"* * * * *", 0, "UTC", "", `null`, 2 << 8, "run_once", "queue_one", 3, 0},
		{"@every 0s", 0, "UTC", "", `{"url": 7}`, 3 << 8, "run_once", "skip", 1, 5},
		{"0 0 30 2 *", 0, "UTC", "", `{}`, 0b0101, "run_once", "skip", 1, 5}, // paused, resumed, paused, resumed
		{"* * * * * *", 0, "UTC", "", `{}`, 0b1010 | 1<<12, "run_all", "allow", 1, 5},
		{"*/2 * * * * *", 0, "UTC", "", `{}`, 1 << 13, "run_once", "skip", 1, 5}, // next_run_at cleared by hand
		{"", 0, "Mars", "", `{}`, 1<<12 | 1<<13, "run_once", "skip", 1, 5},
		{"0 0 29 2 *", 0, "Pacific/Kiritimati", "2100-03-01 00:00:00", `{}`, 1 << 13, "run_once", "skip", 1, 5},
	}
	for _, s := range seeds {
		f.Add(s.cron, s.interval, s.tz, s.next, []byte(s.params), s.flags, s.misfire, s.overlap, s.attempts, s.retryMins)
	}
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, cron string, interval int32, tz, next string, params []byte, flags uint16,
		misfire, overlap string, attempts, retryMins int32) {
		for _, s := range []*string{&cron, &tz, &next, &misfire, &overlap} {
			if !utf8.ValidString(*s) || strings.ContainsRune(*s, 0) {
				return // PostgreSQL text holds neither
			}
		}
		_, err := b.pool.Exec(ctx, "TRUNCATE scheduled_jobs, river_job RESTART IDENTITY CASCADE")
		require.NoError(t, err)
		b.clock.Set(start)
		good := b.everySecond(t)

		// The row's columns. Flags: bits 0-3 flip is_active before cycles
		// 1-4; bits 8-10 pick the class; bit 12 makes the row one from
		// before the triggers (needing a plan, as migration 00004 left
		// every such row); bit 13 writes next_run_at (NULL when empty)
		// after the first cycle rather than before it.
		classes := []string{"noop", "http_request", "sql", "test_fail", "no_such_class", "App\\Jobs\\Noop", "", "noop"}
		var paramsJSON string
		if json.Valid(params) {
			paramsJSON = string(params)
		} else {
			raw, _ := json.Marshal(strings.ToValidUTF8(strings.ReplaceAll(string(params), "\x00", ""), "?"))
			paramsJSON = string(raw)
		}
		cols := map[string]any{
			"name": "fuzzed", "job_class": classes[flags>>8&7], "parameters": paramsJSON,
			"cron_expression": nullIfEmpty(cut(cron, 100)), "interval_minutes": nullIfZero(interval),
			"timezone": nullIfEmpty(cut(tz, 50)), "misfire_policy": cut(misfire, 20), "overlap_policy": cut(overlap, 20),
			"max_attempts": attempts, "retry_delay_minutes": retryMins,
		}
		if cols["cron_expression"] == nil && cols["interval_minutes"] == nil {
			cols["cron_expression"] = "" // the seed's CHECK wants one of them
		}
		id, ok := insertAnyRow(t, b, cols, flags&(1<<12) != 0)
		if !ok {
			return
		}
		writeNext := func() bool {
			// An admin's next_run_at, written by hand.
			_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET next_run_at = nullif($2, '')::timestamp WHERE id = $1", id, next)
			return err == nil // else not a timestamp PostgreSQL reads
		}
		if next != "" && flags&(1<<13) == 0 && !writeNext() {
			return
		}

		for cycle := range 4 {
			if cycle == 1 && flags&(1<<13) != 0 && !writeNext() {
				return
			}
			if flags&(1<<cycle) != 0 {
				_, err := b.pool.Exec(ctx, "UPDATE scheduled_jobs SET is_active = NOT coalesce(is_active, false) WHERE id = $1", id)
				require.NoError(t, err, "flipping is_active is always allowed")
			}
			_, err := b.sched.Tick(ctx)
			require.NoError(t, err, "cycle %d", cycle)
			b.clock.Set(b.clock.Now().Add(time.Second))
		}

		require.Equal(t, 3, b.runsOf(t, good), "the good row fired at +1, +2 and +3 s")
		var (
			active, needsPlan bool
			nextRunAt         *time.Time
			scheduleError     *string
			message           *string
		)
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT coalesce(is_active, false), needs_plan,
			CASE WHEN isfinite(next_run_at) THEN next_run_at END, schedule_error, last_run_message
			FROM scheduled_jobs WHERE id = $1`, id).Scan(&active, &needsPlan, &nextRunAt, &scheduleError, &message))
		switch {
		case scheduleError != nil:
			require.NotContains(t, *scheduleError, "internal error", "a recovered panic")
			require.Nil(t, nextRunAt, "explained rows wait for an edit")
			require.Equal(t, scheduleError, message, "explained where admins look")
		case !active:
			require.Nil(t, nextRunAt, "paused: nothing to schedule")
		case next == "infinity":
			// An admin's "never": it waits.
		default:
			require.False(t, needsPlan, "planned")
			require.NotNil(t, nextRunAt, "scheduled at a real time")
			require.True(t, nextRunAt.Year() >= 1 && nextRunAt.Year() <= 9999, "a real time: %s", nextRunAt)
		}
	})
}

// insertAnyRow inserts a row as an admin would; a row the write-time checks
// refuse is inserted as one from before them (triggers off; forceOld makes
// every row such a row). It says whether PostgreSQL could store it at all.
func insertAnyRow(t *testing.T, b *bundle, cols map[string]any, forceOld bool) (id int64, ok bool) {
	t.Helper()
	ctx := context.Background()
	names, places, vals := []string{}, []string{}, []any{}
	for k, v := range cols {
		vals = append(vals, v)
		names = append(names, k)
		places = append(places, "$"+strconv.Itoa(len(vals)))
	}
	insert := "INSERT INTO scheduled_jobs (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(places, ", ") + ") RETURNING id"
	if !forceOld {
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return tx.QueryRow(ctx, insert, vals...).Scan(&id) })
		if err == nil {
			return id, true
		}
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, insert, vals...).Scan(&id); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Logf("PostgreSQL stores no such row (%v): %v", cols, err)
		return 0, false
	}
	return id, true
}

// cut keeps the first n characters of s, as a VARCHAR(n) column would.
func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullIfZero(n int32) any {
	if n == 0 {
		return nil
	}
	return n
}
