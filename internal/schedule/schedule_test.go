package schedule_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

func fireTimes(t *testing.T, expr, tz, from string, n int) []string {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	require.NoError(t, err)
	sched, err := schedule.ParseCron(expr, loc)
	require.NoError(t, err)
	at, err := time.Parse(time.RFC3339, from)
	require.NoError(t, err)
	var out []string
	for range n {
		at = sched.Next(at)
		out = append(out, at.In(loc).Format(time.RFC3339))
	}
	return out
}

func TestParseCronNext(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, expr, tz, from string
		want                 []string
	}{
		// Spring forward: 02:00 CET jumps to 03:00 CEST on 2026-03-29.
		{"BerlinGapShiftsForward", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+01:00",
			[]string{"2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"}},
		{"BerlinGapEveryHourNoDoubles", "*/30 * * * *", "Europe/Berlin", "2026-03-29T01:15:00+01:00",
			[]string{"2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-29T04:00:00+02:00"}},
		// Fall back: 03:00 CEST goes back to 02:00 CET on 2026-10-25.
		{"BerlinRepeatFiresOnceAtFirst", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
			[]string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
		{"BerlinRepeatEveryHourFiresBoth", "*/30 * * * *", "Europe/Berlin", "2026-10-25T01:45:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"}},
		{"BerlinRepeatStepHoursFireOnce", "0 */2 * * *", "Europe/Berlin", "2026-10-25T00:30:00+02:00",
			[]string{"2026-10-25T02:00:00+02:00", "2026-10-25T04:00:00+01:00"}},
		{"BerlinRepeatStartingInSecondOccurrence", "*/30 * * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00",
			[]string{"2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"}},
		// New York: 2026-03-08 02:00 -> 03:00; 2026-11-01 02:00 EDT -> 01:00 EST.
		{"NewYorkGap", "30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00",
			[]string{"2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"NewYorkRepeat", "30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"NewYorkSecondsInGap", "15 30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00",
			[]string{"2026-03-08T03:30:15-04:00"}},
		// Lord Howe has a 30-minute DST: 2026-10-04 02:00 -> 02:30 (+10:30 -> +11),
		// 2026-04-05 02:00 (+11) -> 01:30 (+10:30).
		{"LordHoweHalfHourGap", "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
			[]string{"2026-10-04T02:45:00+11:00", "2026-10-05T02:15:00+11:00"}},
		{"LordHoweHalfHourRepeat", "45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
			[]string{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}},
		{"LordHoweRepeatEveryHour", "*/15 * * * *", "Australia/Lord_Howe", "2026-04-05T01:20:00+11:00",
			[]string{"2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:45:00+10:30", "2026-04-05T02:00:00+10:30"}},
		// Day-of-month L.
		{"LastDayOfMonth", "0 0 L * *", "UTC", "2026-01-31T00:00:00Z",
			[]string{"2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"}},
		{"LastDayOfLeapFebruary", "30 18 L 2 *", "Asia/Baku", "2027-03-01T00:00:00+04:00",
			[]string{"2028-02-29T18:30:00+04:00", "2029-02-28T18:30:00+04:00"}},
		{"EveryMinuteOfTheLastDay", "* * L * *", "UTC", "2026-01-01T00:00:00Z",
			[]string{"2026-01-31T00:00:00Z", "2026-01-31T00:01:00Z"}},
		{"LastDayOrMonday", "0 9 L * MON", "UTC", "2026-11-24T00:00:00Z",
			[]string{"2026-11-30T09:00:00Z", "2026-12-07T09:00:00Z", "2026-12-14T09:00:00Z", "2026-12-21T09:00:00Z", "2026-12-28T09:00:00Z", "2026-12-31T09:00:00Z"}},
		// Seconds, names, descriptors.
		{"SecondsField", "*/20 * * * * *", "UTC", "2026-01-01T12:00:05Z",
			[]string{"2026-01-01T12:00:20Z", "2026-01-01T12:00:40Z", "2026-01-01T12:01:00Z"}},
		{"Names", "0 8 * JAN,FEB MON-WED", "UTC", "2026-01-30T00:00:00Z",
			[]string{"2026-02-02T08:00:00Z", "2026-02-03T08:00:00Z", "2026-02-04T08:00:00Z", "2026-02-09T08:00:00Z"}},
		{"Daily", "@daily", "Asia/Baku", "2026-06-01T10:00:00+04:00", []string{"2026-06-02T00:00:00+04:00"}},
		{"Midnight", "@midnight", "UTC", "2026-06-01T10:00:00Z", []string{"2026-06-02T00:00:00Z"}},
		{"Hourly", "@hourly", "UTC", "2026-06-01T10:00:00Z", []string{"2026-06-01T11:00:00Z", "2026-06-01T12:00:00Z"}},
		{"Weekly", "@weekly", "UTC", "2026-11-22T10:00:00Z", []string{"2026-11-29T00:00:00Z"}},
		{"Monthly", "@monthly", "UTC", "2026-11-22T10:00:00Z", []string{"2026-12-01T00:00:00Z"}},
		{"Yearly", "@yearly", "UTC", "2026-11-22T10:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"Annually", "@annually", "Europe/Berlin", "2026-11-22T10:00:00+01:00", []string{"2027-01-01T00:00:00+01:00"}},
		{"EveryDuration", "@every 90m", "UTC", "2026-11-22T10:00:00Z", []string{"2026-11-22T11:30:00Z", "2026-11-22T13:00:00Z"}},
		{"EveryIgnoresDST", "@every 1h", "Europe/Berlin", "2026-03-29T01:30:00+01:00", []string{"2026-03-29T03:30:00+02:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.want, fireTimes(t, tt.expr, tt.tz, tt.from, len(tt.want)))
		})
	}
}

// TestParseCronNeverDoublesOrSkipsAYear walks a year of several schedules in
// DST zones and checks the promises that hold whatever the zone: times
// strictly increase, and a once-a-day schedule fires exactly once a day.
func TestParseCronNeverDoublesOrSkipsAYear(t *testing.T) {
	t.Parallel()

	for _, tz := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Asia/Baku"} {
		for _, expr := range []string{"30 2 * * *", "0 1 * * *", "59 23 * * *", "15 3 * * *"} {
			t.Run(strings.ReplaceAll(tz+"_"+expr, " ", "_"), func(t *testing.T) {
				t.Parallel()

				loc, err := time.LoadLocation(tz)
				require.NoError(t, err)
				sched, err := schedule.ParseCron(expr, loc)
				require.NoError(t, err)
				at := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
				days := map[string]int{}
				for range 365 {
					next := sched.Next(at)
					require.True(t, next.After(at), "%s after %s", next, at)
					days[next.In(loc).Format(time.DateOnly)]++
					at = next
				}
				for day, n := range days {
					require.Equal(t, 1, n, "fires %d times on %s", n, day)
				}
				require.Len(t, days, 365, "one fire per day, none skipped")
			})
		}
	}
}

// TestParseCronFiresRarely: expressions that fire seldom but do fire parse,
// and their next fire time is found even across the 2100 gap in leap years.
func TestParseCronFiresRarely(t *testing.T) {
	t.Parallel()

	tests := []struct{ expr, from, want string }{
		{"0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 29 2 *", "2097-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},   // 2100 is no leap year
		{"0 0 31 2 MON", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"}, // either day field: Mondays
		{"0 0 30 2 0-6", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z"}, // every day, by its weekdays
		{"0 0 , 2 MON", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"},  // no day of the month, but Mondays
		{"0 0 L 2 *", "2026-01-01T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"@every 1s", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}, // a second after the second before
	}
	for _, tt := range tests {
		t.Run(tt.expr+"_"+tt.from, func(t *testing.T) {
			t.Parallel()

			from, err := time.Parse(time.RFC3339, tt.from)
			require.NoError(t, err)
			sched, err := schedule.ParseCron(tt.expr, time.UTC)
			require.NoError(t, err)
			next := sched.Next(from.Add(-time.Second))
			require.Equal(t, tt.want, next.Format(time.RFC3339))
		})
	}
}

func TestDue(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
	year1 := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	cron := func(expr string) schedule.Schedule {
		s, err := schedule.ParseCron(expr, time.UTC)
		require.NoError(t, err)
		return s
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	tests := []struct {
		name       string
		sched      schedule.Schedule
		first      time.Time
		keep       int
		wantLatest []string
		wantCount  int
		wantNext   string
	}{
		{"NotDue", schedule.Every(time.Minute), now.Add(time.Hour), 3, nil, 0, "2026-06-01T13:00:30Z"},
		{"IntervalWalk", schedule.Every(10 * time.Minute), at("2026-06-01T11:20:00Z"), 2,
			[]string{"2026-06-01T11:50:00Z", "2026-06-01T12:00:00Z"}, 5, "2026-06-01T12:10:00Z"},
		{"IntervalFromYearOne", schedule.Every(time.Minute), year1, 2,
			[]string{"2026-06-01T11:59:00Z", "2026-06-01T12:00:00Z"}, 1_065_265_201, "2026-06-01T12:01:00Z"},
		{"IntervalCountIsCapped", schedule.Every(time.Second), year1, 1,
			[]string{"2026-06-01T12:00:30Z"}, math.MaxInt32, "2026-06-01T12:00:31Z"},
		{"CronWalkCountsEveryMissedTick", cron("*/15 * * * *"), at("2026-06-01T10:00:00Z"), 2,
			[]string{"2026-06-01T11:45:00Z", "2026-06-01T12:00:00Z"}, 9, "2026-06-01T12:15:00Z"},
		// The windows: a minute, an hour and a day hold fewer than 2;
		// 32 days hold 32 (the count of the window only).
		{"CronFromYearOneTakesTheLatestRealTicks", cron("0 3 * * *"), year1, 2,
			[]string{"2026-05-31T03:00:00Z", "2026-06-01T03:00:00Z"}, 32, "2026-06-02T03:00:00Z"},
		{"CronFromZeroTime", cron("* * * * * *"), time.Time{}, 1, []string{"2026-06-01T12:00:30Z"}, 61, "2026-06-01T12:00:31Z"},
		// 20 days of every second is 1.7M fire times: walked 100,000, then
		// the last minute (60 < keep), then the last hour.
		{"EverySecondAfterALongOutage", cron("* * * * * *"), now.Add(-20 * 24 * time.Hour), 100,
			nil, 100_000 + 3601, "2026-06-01T12:00:31Z"},
		{"YearlyFromFarBack", cron("@yearly"), at("1990-01-01T00:00:00Z"), 3,
			[]string{"2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}, 5, "2027-01-01T00:00:00Z"},
		{"IntervalThatNeverFires", schedule.Every(0), now.Add(-time.Minute), 5,
			[]string{"2026-06-01T11:59:30Z"}, 1, "0001-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			latest, count, next := schedule.Due(tt.sched, tt.first, now, tt.keep)
			require.Equal(t, tt.wantCount, count)
			require.Equal(t, tt.wantNext, next.UTC().Format(time.RFC3339))
			if tt.wantLatest == nil && count > 0 {
				require.Len(t, latest, tt.keep)
				require.Equal(t, now.Truncate(time.Second), latest[len(latest)-1])
				return
			}
			var got []string
			for _, l := range latest {
				got = append(got, l.UTC().Format(time.RFC3339))
			}
			require.Equal(t, tt.wantLatest, got)
		})
	}
}

func TestParseCronErrors(t *testing.T) {
	t.Parallel()

	tests := []struct{ expr, wantErr string }{
		{"", "cron expression is empty"},
		{"* * *", `expected 5 fields`},
		{"61 * * * *", `cron expression "61 * * * *": end of range (61) above maximum (59): 61`},
		{"* * * * * * *", "got 7"},
		{"@every banana", `cron expression "@every banana"`},
		{"@fortnightly", `unrecognized descriptor: @fortnightly`},
		{"CRON_TZ=Asia/Baku 0 9 * * *", "timezone column"},
		{"0 9 5L * *", `cron expression "0 9 5L * *"`},
		{"0 0 30 2 *", `cron expression "0 0 30 2 *" never fires: February has no day 30`},
		{"0 0 31 4 *", "never fires: April has no day 31"},
		{"0 0 0 31 2 *", "never fires: February has no day 31"},
		{"0 0 30,31 2 *", "never fires: February has no day 30 or 31"},
		{"0 0 31 4,6,FEB *", "never fires: February, April and June have no day 31"},
		{"0 0 31 2,4 ?", "never fires: February and April have no day 31"},
		{", * * * * *", "never fires: its seconds field matches no value"},
		{"0 , * * *", "never fires: its hour field matches no value"},
		{"0 0 , * *", "never fires: its day-of-month field matches no value"},
		{"0 0 * * ,", "never fires: its day-of-week field matches no value"},
		{"0 0 31 2 ,", "never fires: February has no day 31"},
		{"0 0 , 2 ,", "never fires: its day-of-month field matches no value"},
		{"@every 0s", "at least 1s"},
		{"@every -1m", "at least 1s"},
		{"@every 500ms", "at least 1s"},
		{"@every 1500ms", "whole seconds"},
		{"@every 100000h", "at most ten years"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()

			_, err := schedule.ParseCron(tt.expr, time.UTC)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
