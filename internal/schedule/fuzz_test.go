package schedule_test

import (
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

// FuzzParseRow: whatever an admin writes in cron_expression,
// interval_minutes and timezone, parsing never panics; a schedule that
// parses fires again, strictly after the time it is asked about (an
// expression that never fires is refused); and Due, from any first fire
// time (year 1 to 9999), returns at most keep fire times in order within
// [first, now], and a next fire time after now.
func FuzzParseRow(f *testing.F) {
	for _, seed := range []struct {
		cron     string
		interval int32
		tz       string
	}{
		{"* * * * * *", 0, "UTC"},
		{"*/5 * * * *", 0, "Asia/Baku"},
		{"30 2 * * *", 0, "Europe/Berlin"},
		{"0 0 L * *", 0, "America/New_York"},
		{"0 0 L 2 MON", 0, "Australia/Lord_Howe"},
		{"@every 90m", 0, ""},
		{"@yearly", 0, "Pacific/Chatham"},
		{"", 15, "UTC"},
		{"", -1, ""},
		{"0 30 1 * * *", 0, "Europe/London"},
		{"TZ=UTC * * * * *", 0, "UTC"},
		{"0 0 30 2 *", 0, "UTC"},
		{"0 0 0 31 4 *", 0, "Asia/Baku"},
		{"0 0 29 2 *", 0, "UTC"},
		{"@every 0s", 0, "UTC"},
		{"* * * * * *", 0, "Europe/Berlin"},
		{", * * * * *", 0, "UTC"},
	} {
		f.Add(seed.cron, seed.interval, seed.tz, int64(1_790_000_000), int64(-62_135_596_800), uint8(3))
		f.Add(seed.cron, seed.interval, seed.tz, int64(4_090_000_000), int64(4_080_000_000), uint8(100))
	}
	f.Fuzz(func(t *testing.T, cron string, interval int32, tz string, fromUnix, firstUnix int64, keep uint8) {
		var cronArg *string
		if cron != "" {
			cronArg = &cron
		}
		var intervalArg *int32
		if interval != 0 {
			intervalArg = &interval
		}
		began := time.Now()
		defer func() {
			// A scheduling cycle waits on these calls: a slow input stalls
			// every row (an empty field once made Next search five years
			// second by second).
			if took := time.Since(began); took > 2*time.Second {
				t.Fatalf("ParseRow(%q, %d, %q), Next and Due took %s", cron, interval, tz, took)
			}
		}()
		sched, err := schedule.ParseRow(cronArg, intervalArg, &tz)
		if err != nil {
			return
		}
		// From 1970 to about 2300, where schedules live.
		const span = 330 * 365 * 24 * 3600
		from := time.Unix(((fromUnix%span)+span)%span, 0).UTC()
		next := sched.Next(from)
		if !next.After(from) {
			t.Fatalf("ParseRow(%q, %d, %q).Next(%s) = %s: not after it", cron, interval, tz, from.Format(time.RFC3339), next.Format(time.RFC3339))
		}

		// Year 1 to 9999, as a next_run_at in the database can be.
		const lo, hi = -62_135_596_800, 253_402_300_799
		first := time.Unix(lo+int64(uint64(firstUnix)%uint64(hi-lo+1)), 0).UTC()
		latest, count, after := schedule.Due(sched, first, from, int(keep))
		if len(latest) > max(int(keep), 1) || count < len(latest) {
			t.Fatalf("Due(%s, %s, keep %d): %d fire times, count %d", first, from, keep, len(latest), count)
		}
		for i, l := range latest {
			if l.After(from) || l.Before(first) || (i > 0 && !l.After(latest[i-1])) {
				t.Fatalf("Due(%s, %s): fire time %s out of order or range in %v", first, from, l, latest)
			}
		}
		if !after.After(from) {
			t.Fatalf("Due(%s, %s): next %s is not after now", first, from, after)
		}
	})
}
