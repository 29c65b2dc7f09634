package schedule_test

import (
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

// FuzzParseRow: whatever an admin writes in cron_expression,
// interval_minutes and timezone, parsing never panics, and a schedule that
// parses fires strictly after the time it is asked about, or never.
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
	} {
		f.Add(seed.cron, seed.interval, seed.tz, int64(1_790_000_000))
	}
	f.Fuzz(func(t *testing.T, cron string, interval int32, tz string, fromUnix int64) {
		var cronArg *string
		if cron != "" {
			cronArg = &cron
		}
		var intervalArg *int32
		if interval != 0 {
			intervalArg = &interval
		}
		sched, err := schedule.ParseRow(cronArg, intervalArg, &tz)
		if err != nil {
			return
		}
		// From 1970 to about 2300, where schedules live.
		const span = 330 * 365 * 24 * 3600
		from := time.Unix(((fromUnix%span)+span)%span, 0).UTC()
		next := sched.Next(from)
		if !next.IsZero() && !next.After(from) {
			t.Fatalf("ParseRow(%q, %d, %q).Next(%s) = %s: not after it", cron, interval, tz, from.Format(time.RFC3339), next.Format(time.RFC3339))
		}
	})
}
