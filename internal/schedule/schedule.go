// Package schedule computes fire times: cron expressions evaluated in a
// time zone with its DST rules, and fixed intervals; ParseRow reads the
// schedule of a scheduled_jobs row.
package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule yields fire times.
type Schedule interface {
	// Next returns the first fire time strictly after after, or the zero
	// time when there is none.
	Next(after time.Time) time.Time
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a cron expression evaluated in loc.
//
// The dialect is robfig/cron's: 5 fields, or 6 with a leading seconds field;
// names (JAN, MON); @yearly @annually @monthly @weekly @daily @midnight
// @hourly and @every <duration>. On top of it: L in day-of-month for the last
// day of the month. Around DST changes, a local time that does not exist
// fires once, shifted forward by the size of the gap; a local time that
// occurs twice fires once, at its first occurrence, unless the hour field
// matches every hour, in which case both real hours fire.
func ParseCron(expr string, loc *time.Location) (Schedule, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, fmt.Errorf("cron expression is empty")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("cron expression %q: set the time zone in the timezone column, not in the expression", expr)
	}
	lastDay := false
	if !strings.HasPrefix(expr, "@") {
		fields := strings.Fields(expr)
		if len(fields) != 5 && len(fields) != 6 {
			return nil, fmt.Errorf("cron expression %q: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, got %d", expr, len(fields))
		}
		dom := len(fields) - 3
		if strings.EqualFold(fields[dom], "L") {
			fields[dom] = "28-31" // the parser's candidates; Next keeps the last day only
			lastDay = true
		}
		expr = strings.Join(fields, " ")
	}
	parsed, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron expression %q: %w", expr, err)
	}
	switch s := parsed.(type) {
	case cron.ConstantDelaySchedule:
		return Every(s.Delay), nil
	case *cron.SpecSchedule:
		// Matching runs on wall-clock times carried as UTC values; the
		// mapping to real instants in loc is ours (see instants).
		s.Location = time.UTC
		const allHours = 1<<24 - 1
		return &cronSchedule{spec: s, loc: loc, lastDay: lastDay, everyHour: s.Hour&allHours == allHours}, nil
	default:
		return nil, fmt.Errorf("cron expression %q: unsupported schedule type %T", expr, parsed)
	}
}

// Upcoming returns s's next n fire times after after, fewer when s has no
// more.
func Upcoming(s Schedule, after time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for t := after; len(out) < n; {
		if t = s.Next(t); t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// Every returns a schedule firing every d after the previous fire time.
func Every(d time.Duration) Schedule { return interval(d) }

type interval time.Duration

func (i interval) Next(after time.Time) time.Time { return after.Add(time.Duration(i)) }

type cronSchedule struct {
	spec      *cron.SpecSchedule
	loc       *time.Location
	lastDay   bool
	everyHour bool
}

// starBit is robfig/cron's marker of a field written as "*".
const starBit = 1 << 63

func (s *cronSchedule) Next(after time.Time) time.Time {
	// Before a fall-back transition, the repeated wall-clock hour comes again
	// after `after`, and wall-clock order is not instant order there (02:30
	// of the first pass precedes 02:00 of the second): search from that much
	// earlier, and past the first hit by as much, keeping the earliest.
	repeat := s.repeatAhead(after)
	c := wallClock(after.In(s.loc)).Add(-repeat).Add(-time.Second)
	var best, bestWall time.Time
	for range 100_000 {
		c = s.nextWall(c)
		if c.IsZero() || (!best.IsZero() && c.After(bestWall.Add(repeat))) {
			return best
		}
		for _, t := range s.instants(c) {
			if t.After(after) && (best.IsZero() || t.Before(best)) {
				best, bestWall = t, c
			}
		}
		if !best.IsZero() && repeat == 0 {
			return best
		}
	}
	return best
}

// nextWall is the first matching wall-clock time after c.
func (s *cronSchedule) nextWall(c time.Time) time.Time {
	for range 1000 {
		c = s.spec.Next(c)
		if c.IsZero() || !s.lastDay || s.lastDayOK(c) {
			return c
		}
	}
	return time.Time{}
}

// lastDayOK keeps, among the 28-31 candidates of an L day-of-month, the
// last day of the month, or a day matching a restricted day-of-week (cron
// ORs the two day fields when both are restricted).
func (s *cronSchedule) lastDayOK(c time.Time) bool {
	if c.AddDate(0, 0, 1).Day() == 1 {
		return true
	}
	return s.spec.Dow&starBit == 0 && s.spec.Dow&(1<<uint(c.Weekday())) != 0
}

// repeatAhead is the length of a fall-back transition within the next two
// days of t in s.loc (the wall-clock time that will be lived twice), else 0.
func (s *cronSchedule) repeatAhead(t time.Time) time.Duration {
	_, end := t.In(s.loc).ZoneBounds()
	if end.IsZero() || end.Sub(t) > 48*time.Hour {
		return 0
	}
	_, before := end.Add(-time.Second).In(s.loc).Zone()
	_, after := end.In(s.loc).Zone()
	if before > after {
		return time.Duration(before-after) * time.Second
	}
	return 0
}

// instants maps wall-clock time c (carried as UTC) to the real instants it
// fires at in s.loc: one normally; in a DST gap, the instant shifted forward
// by the gap; in a repeated hour, the first occurrence, or both when the
// schedule matches every hour.
func (s *cronSchedule) instants(c time.Time) []time.Time {
	var offsets []int
	for _, probe := range []time.Duration{-14 * time.Hour, 0, 14 * time.Hour} {
		_, off := c.Add(probe).In(s.loc).Zone()
		if !slices.Contains(offsets, off) {
			offsets = append(offsets, off)
		}
	}
	var valid []time.Time
	for _, off := range offsets {
		t := c.Add(-time.Duration(off) * time.Second)
		if _, got := t.In(s.loc).Zone(); got == off {
			valid = append(valid, t.In(s.loc))
		}
	}
	if len(valid) == 0 {
		// In a gap: read c with the offset from before the jump, which lands
		// the gap's size later on the wall clock after it.
		before := slices.Min(offsets)
		return []time.Time{c.Add(-time.Duration(before) * time.Second).In(s.loc)}
	}
	slices.SortFunc(valid, func(a, b time.Time) int { return a.Compare(b) })
	if !s.everyHour {
		return valid[:1]
	}
	return valid
}

// wallClock carries t's wall-clock fields in a UTC value.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// MaxIntervalMinutes is the longest interval_minutes (ten years): beyond
// about 290 years the interval would not even fit a time.Duration.
const MaxIntervalMinutes = 10 * 366 * 24 * 60

// CronOf returns a row's cron_expression, trimmed: "" when it is null or
// blank, and then the row's interval_minutes is its schedule.
func CronOf(cron *string) string {
	if cron == nil {
		return ""
	}
	return strings.TrimSpace(*cron)
}

// ParseRow returns the schedule of a row: its cron expression in its time
// zone when set (cron wins over interval_minutes), else its interval.
func ParseRow(cron *string, intervalMinutes *int32, timezone *string) (Schedule, error) {
	tz := "UTC"
	if timezone != nil && *timezone != "" {
		tz = *timezone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || strings.EqualFold(tz, "local") {
		return nil, fmt.Errorf("unknown time zone %q (use an IANA name such as Asia/Baku or UTC)", tz)
	}
	switch {
	case CronOf(cron) != "":
		return ParseCron(*cron, loc)
	case intervalMinutes != nil && *intervalMinutes > MaxIntervalMinutes:
		return nil, fmt.Errorf("interval_minutes %d is more than %d (ten years); use a cron expression for rare schedules", *intervalMinutes, MaxIntervalMinutes)
	case intervalMinutes != nil && *intervalMinutes > 0:
		return Every(time.Duration(*intervalMinutes) * time.Minute), nil
	case intervalMinutes != nil:
		return nil, fmt.Errorf("interval_minutes %d must be greater than 0", *intervalMinutes)
	default:
		return nil, errors.New("neither cron_expression nor interval_minutes is set")
	}
}
