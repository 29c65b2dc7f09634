package admin

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

// describe puts the common schedules into words; others are shown as
// written.
func describe(cron *string, interval *int32) string {
	expr := schedule.CronOf(cron)
	if expr == "" {
		if interval == nil {
			return "no schedule"
		}
		return every(int(*interval))
	}
	if w, ok := map[string]string{"@yearly": "once a year", "@annually": "once a year", "@monthly": "monthly, on the 1st at 00:00",
		"@weekly": "weekly, on Sunday at 00:00", "@daily": "daily at 00:00", "@midnight": "daily at 00:00", "@hourly": "every hour"}[expr]; ok {
		return w
	}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		return "every " + d
	}
	f := strings.Fields(expr)
	if len(f) != 5 {
		return schedule.Describe(expr)
	}
	min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4]
	if dom != "*" || mon != "*" {
		return schedule.Describe(expr)
	}
	days := map[string]string{"*": "daily", "1-5": "on weekdays", "MON-FRI": "on weekdays", "0": "on Sundays", "1": "on Mondays",
		"6": "on Saturdays", "SUN": "on Sundays", "MON": "on Mondays", "SAT": "on Saturdays"}[strings.ToUpper(dow)]
	switch {
	case min == "*" && hour == "*" && dow == "*":
		return "every minute"
	case strings.HasPrefix(min, "*/") && hour == "*" && dow == "*":
		if n, err := strconv.Atoi(min[2:]); err == nil {
			return every(n)
		}
	case isNumber(min) && hour == "*" && dow == "*":
		return fmt.Sprintf("hourly at minute %s", min)
	case isNumber(min) && isNumber(hour) && days != "":
		m, _ := strconv.Atoi(min)
		h, _ := strconv.Atoi(hour)
		return fmt.Sprintf("%s at %02d:%02d", days, h, m)
	}
	return schedule.Describe(expr)
}

func every(minutes int) string {
	switch {
	case minutes == 1:
		return "every minute"
	case minutes%1440 == 0:
		return fmt.Sprintf("every %d day(s)", minutes/1440)
	case minutes%60 == 0:
		return fmt.Sprintf("every %d hour(s)", minutes/60)
	default:
		return fmt.Sprintf("every %d minutes", minutes)
	}
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// Retries says how a schedule retries, in words: "no retries", "up to 3
// attempts, 5 min apart", "up to 3 attempts, retried at once".
func (d ScheduleDetail) Retries() string {
	n, delay := int32(runqueue.DefaultMaxAttempts), int32(runqueue.DefaultRetryDelay/time.Minute)
	if d.MaxAttempts != nil {
		n = *d.MaxAttempts
	}
	if d.RetryDelay != nil {
		delay = *d.RetryDelay
	}
	switch {
	case n <= 1:
		return "no retries"
	case delay == 0:
		return fmt.Sprintf("up to %d attempts, retried at once", n)
	}
	return fmt.Sprintf("up to %d attempts, %d min apart", n, delay)
}

// Warning says what a schedule's expression may not mean what its author
// thought (a 6-field expression read with seconds first), or "".
func (s Schedule) Warning() string {
	expr := schedule.CronOf(s.Cron)
	if expr == "" {
		return ""
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		loc = time.UTC
	}
	return schedule.SixFieldWarning(expr, loc)
}
