// Package schedule computes fire times: cron expressions evaluated in a
// time zone with its DST rules, and fixed intervals; ParseRow reads the
// schedule of a scheduled_jobs row.
package schedule

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
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
		if n, err := strconv.Atoi(fields[len(fields)-1]); len(fields) == 6 && err == nil && n >= 1000 {
			return nil, fmt.Errorf("cron expression %q: its sixth field %q looks like a year, but cron has no year field: "+
				"6 fields are read as second, minute, hour, day of the month, month, day of the week", expr, fields[5])
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
		return parseEvery(expr)
	case *cron.SpecSchedule:
		if why := neverFires(s); why != "" {
			return nil, fmt.Errorf("cron expression %q never fires: %s", expr, why)
		}
		// Matching runs on wall-clock times carried as UTC values; the
		// mapping to real instants in loc is ours (see instants).
		s.Location = time.UTC
		const allHours = 1<<24 - 1
		return &cronSchedule{spec: s, loc: loc, lastDay: lastDay, everyHour: s.Hour&allHours == allHours}, nil
	default:
		return nil, fmt.Errorf("cron expression %q: unsupported schedule type %T", expr, parsed)
	}
}

// parseEvery reads "@every <duration>", which robfig/cron would take with
// any duration, running every second for "@every 0s" or "@every -1m" and
// dropping fractions of a second: a duration must be whole seconds, at
// least one, and at most MaxIntervalMinutes.
func parseEvery(expr string) (Schedule, error) {
	text := strings.TrimSpace(strings.TrimPrefix(expr, "@every"))
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		return nil, fmt.Errorf("cron expression %q: %w", expr, err)
	case d < time.Second:
		return nil, fmt.Errorf("cron expression %q: @every needs a duration of at least 1s", expr)
	case d%time.Second != 0:
		return nil, fmt.Errorf("cron expression %q: @every needs whole seconds (%s is not)", expr, text)
	case d > MaxIntervalMinutes*time.Minute:
		return nil, fmt.Errorf("cron expression %q: @every is at most ten years; use a cron expression for rare schedules", expr)
	}
	return Every(d), nil
}

// neverFires says why a parsed expression matches no time of any year ("its
// seconds field matches no value", "February has no day 30"), or "" when it
// fires. robfig/cron takes a field such as "," as matching nothing, and its
// Next then searches five years second by second before giving up. When
// both day fields are restricted, cron fires on either (robfig/cron's
// rule), so restricted weekdays always come.
func neverFires(s *cron.SpecSchedule) string {
	for _, f := range []struct {
		name string
		bits uint64
	}{{"seconds", s.Second}, {"minute", s.Minute}, {"hour", s.Hour}, {"month", s.Month}} {
		if f.bits&^starBit == 0 {
			return fmt.Sprintf("its %s field matches no value", f.name)
		}
	}
	domStar, dowStar, weekdays := s.Dom&starBit != 0, s.Dow&starBit != 0, s.Dow&^starBit != 0
	switch {
	case domStar && !weekdays:
		return "its day-of-week field matches no value"
	case domStar, !dowStar && weekdays:
		return ""
	case s.Dom&^starBit == 0:
		return "its day-of-month field matches no value"
	}
	// The day of the month alone decides.
	var days []string
	for d := 1; d <= 31; d++ {
		if s.Dom&(1<<uint(d)) != 0 {
			days = append(days, fmt.Sprint(d))
		}
	}
	var months []string
	for m := time.January; m <= time.December; m++ {
		if s.Month&(1<<uint(m)) == 0 {
			continue
		}
		for d := 1; d <= daysIn(m); d++ {
			if s.Dom&(1<<uint(d)) != 0 {
				return ""
			}
		}
		months = append(months, m.String())
	}
	verb := "has"
	if len(months) > 1 {
		verb = "have"
	}
	return fmt.Sprintf("%s %s no day %s", list(months, "and"), verb, list(days, "or"))
}

// daysIn is the most days month m has (29 for February: leap years).
func daysIn(m time.Month) int {
	return time.Date(2028, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// list joins words as a sentence does: "a", "a and b", "a, b and c".
func list(words []string, conj string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
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

// Every returns a schedule firing every d after the previous fire time; a d
// that is not positive never fires.
func Every(d time.Duration) Schedule { return interval(d) }

type interval time.Duration

func (i interval) Next(after time.Time) time.Time {
	if i <= 0 {
		return time.Time{}
	}
	return after.Add(time.Duration(i))
}

// Due walks the fire times of s from first (itself taken as a fire time: a
// row's next_run_at) up to now. It returns the latest keep of them (oldest
// first; none when first is after now), how many there were, and the first
// fire time after now (zero when s has none).
//
// It answers in bounded time whatever first is. An interval is computed,
// not walked. A cron schedule is walked up to 100,000 fire times; past that
// (a long outage of a frequent schedule) or when first is more than five
// years back (an admin's next_run_at of year 1), the latest fire times come
// from a window ending at now, widened until it holds keep of them, and
// count is then a lower bound (the fire times between the walk and the
// window are not counted).
func Due(s Schedule, first, now time.Time, keep int) (latest []time.Time, count int, next time.Time) {
	keep = max(keep, 1)
	if first.After(now) {
		return nil, 0, first
	}
	if iv, ok := s.(interval); ok && iv > 0 {
		return iv.due(first, now, keep)
	}
	t := first
	if now.Sub(first) <= farPast {
		for ; !t.IsZero() && !t.After(now) && count < maxWalk; t = s.Next(t) {
			latest = keepLast(latest, t, keep)
			count++
		}
		if t.IsZero() || t.After(now) {
			return latest, count, t
		}
	}
	for i, w := range windows {
		from := now.Add(-w)
		joined := !from.After(t) // the window reaches back to where the walk stopped
		if joined {
			from = t
		}
		var tail []time.Time
		n := 0
		u := s.Next(from.Add(-time.Nanosecond))
		for ; !u.IsZero() && !u.After(now) && n < maxWalk; u = s.Next(u) {
			tail = keepLast(tail, u, keep)
			n++
		}
		if n < keep && !joined && i < len(windows)-1 {
			continue
		}
		if joined {
			for _, v := range tail {
				latest = keepLast(latest, v, keep)
			}
			tail = latest
		}
		if !u.IsZero() && !u.After(now) {
			u = s.Next(now)
		}
		return tail, count + n, u
	}
	return latest, count, s.Next(now) // not reached: the last window returns
}

const (
	maxWalk = 100_000
	farPast = 5 * 366 * 24 * time.Hour
)

// windows are the spans Due looks back over when it cannot walk: each about
// 24 to 60 times the one before, so the one that first holds keep fire
// times holds at most 60 × keep.
var windows = []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, farPast}

// keepLast appends t to ts, keeping the last n.
func keepLast(ts []time.Time, t time.Time, n int) []time.Time {
	if len(ts) == n {
		copy(ts, ts[1:])
		ts = ts[:n-1]
	}
	return append(ts, t)
}

// due is Due for an interval: first + k×i for every k that is not after
// now, computed without overflowing a time.Duration over any span.
func (i interval) due(first, now time.Time, keep int) ([]time.Time, int, time.Time) {
	d := time.Duration(i)
	var k int64
	if span := now.Sub(first); span < 100*366*24*time.Hour {
		k = int64(span / d)
	} else {
		ns := new(big.Int).Mul(big.NewInt(now.Unix()-first.Unix()), big.NewInt(int64(time.Second)))
		ns.Add(ns, big.NewInt(int64(now.Nanosecond()-first.Nanosecond())))
		if ns.Quo(ns, big.NewInt(int64(d))); ns.IsInt64() {
			k = ns.Int64()
		} else { // sub-second intervals over millennia: ParseRow makes none
			k = math.MaxInt64 / 2
		}
	}
	from := max(0, k-int64(keep)+1)
	latest := make([]time.Time, 0, k-from+1)
	for j := from; j <= k; j++ {
		latest = append(latest, addTimes(first, d, j))
	}
	return latest, int(min(k+1, math.MaxInt32)), addTimes(first, d, k+1)
}

// addTimes is t + n×d, in steps that each fit a time.Duration.
func addTimes(t time.Time, d time.Duration, n int64) time.Time {
	for n > 0 {
		step := min(n, math.MaxInt64/int64(d))
		t = t.Add(time.Duration(step * int64(d)))
		n -= step
	}
	return t
}

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
		c = s.specNext(c)
		if c.IsZero() || !s.lastDay || s.lastDayOK(c) {
			return c
		}
		// No time of this day fires: go on from the next one, not minute by
		// minute (1,440 candidates a day for "* * L * *").
		c = time.Date(c.Year(), c.Month(), c.Day()+1, 0, 0, 0, 0, time.UTC).Add(-time.Second)
	}
	return time.Time{}
}

// specNext is robfig/cron's Next, which gives up after the end of the fifth
// year ahead: February 29 from March 2097 is in 2104, the next leap year.
// An expression that parses fires in some year of every eight (ParseCron
// refuses the others), so two more searches further on find it.
func (s *cronSchedule) specNext(c time.Time) time.Time {
	for range 3 {
		if next := s.spec.Next(c); !next.IsZero() {
			return next
		}
		c = time.Date(c.Year()+5, time.January, 1, 0, 0, 0, 0, time.UTC).Add(-time.Second)
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
