package schedule

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Describe puts a cron expression into words ("at 02:30 every day",
// "every 5 minutes", "at :15 past every hour on weekdays"), for the CLI and
// the dashboard. An expression it cannot read is returned as written.
func Describe(expr string) string {
	expr = strings.TrimSpace(expr)
	if w, ok := map[string]string{"@yearly": "at 00:00 on January 1", "@annually": "at 00:00 on January 1",
		"@monthly": "at 00:00 on day 1 of every month", "@weekly": "at 00:00 every Sunday", "@daily": "at 00:00 every day",
		"@midnight": "at 00:00 every day", "@hourly": "every hour, on the hour"}[expr]; ok {
		return w
	}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		if dur, err := time.ParseDuration(strings.TrimSpace(d)); err == nil {
			return "every " + ShortDuration(dur)
		}
		return expr
	}
	f := strings.Fields(expr)
	sec := "0"
	switch len(f) {
	case 6:
		sec, f = f[0], f[1:]
	case 5:
	default:
		return expr
	}
	min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4]
	when, on := timeOfDay(sec, min, hour), days(dom, dow)
	if on == "every day" && !fixedTime.MatchString(when) {
		on = "" // "every 5 minutes" says it already
	}
	return strings.Join(nonEmpty(when, on, months(mon)), " ")
}

// fixedTime matches a time of day ("at 02:30", "at 02:30:15").
var fixedTime = regexp.MustCompile(`^at \d\d:\d\d(:\d\d)?$`)

// timeOfDay describes the seconds, minute and hour fields.
func timeOfDay(sec, min, hour string) string {
	secN, secOK := number(sec, 59)
	minN, minOK := number(min, 59)
	hourN, hourOK := number(hour, 23)
	atSec := ""
	if secOK && secN != 0 {
		atSec = fmt.Sprintf(":%02d", secN)
	}
	switch {
	case secOK && minOK && hourOK:
		return fmt.Sprintf("at %02d:%02d%s", hourN, minN, atSec)
	case secOK && minOK && hour == "*":
		return fmt.Sprintf("at :%02d%s past every hour", minN, atSec)
	case secOK && min == "*" && hour == "*" && atSec == "":
		return "every minute"
	case secOK && strings.HasPrefix(min, "*/") && hour == "*" && atSec == "":
		if n, ok := number(min[2:], 59); ok && n > 0 {
			return plural(n, "minute", "every")
		}
	case sec == "*" && min == "*" && hour == "*":
		return "every second"
	case strings.HasPrefix(sec, "*/") && min == "*" && hour == "*":
		if n, ok := number(sec[2:], 59); ok && n > 0 {
			return plural(n, "second", "every")
		}
	case secOK && minOK && strings.HasPrefix(hour, "*/"):
		if n, ok := number(hour[2:], 23); ok && n > 0 {
			return fmt.Sprintf("at :%02d%s %s", minN, atSec, plural(n, "hour", "every"))
		}
	case secOK && minOK:
		return fmt.Sprintf("at :%02d%s past hours %s", minN, atSec, hour)
	}
	parts := []string{"minute " + min, "hour " + hour}
	if sec != "0" {
		parts = append([]string{"second " + sec}, parts...)
	}
	return "at " + strings.Join(parts, ", ")
}

var weekdays = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// days describes the day-of-month and day-of-week fields (cron fires on
// either when both are restricted).
func days(dom, dow string) string {
	domAny, dowAny := dom == "*" || dom == "?", dow == "*" || dow == "?"
	var onDom, onDow string
	switch {
	case strings.EqualFold(dom, "L"):
		onDom = "on the last day of the month"
	case !domAny:
		onDom = "on day " + dom + " of the month"
	}
	if !dowAny {
		onDow = weekdayWords(dow)
	}
	switch {
	case domAny && dowAny:
		return "every day"
	case dowAny:
		return onDom
	case domAny:
		return onDow
	}
	return onDom + " or " + onDow
}

func weekdayWords(dow string) string {
	switch strings.ToUpper(dow) {
	case "1-5", "MON-FRI":
		return "on weekdays (Monday to Friday)"
	case "0,6", "6,0", "SAT,SUN", "SUN,SAT":
		return "on weekends"
	}
	var names []string
	for _, part := range strings.Split(dow, ",") {
		n, ok := weekday(part)
		if !ok {
			return "on weekdays " + dow
		}
		names = append(names, n+"s")
	}
	return "on " + list(names, "and")
}

func weekday(s string) (string, bool) {
	if n, ok := number(s, 7); ok {
		return weekdays[n%7], true
	}
	for _, d := range weekdays {
		if strings.EqualFold(s, d[:3]) {
			return d, true
		}
	}
	return "", false
}

// months describes the month field.
func months(mon string) string {
	if mon == "*" || mon == "?" {
		return ""
	}
	var names []string
	for _, part := range strings.Split(mon, ",") {
		if n, ok := number(part, 12); ok && n >= 1 {
			names = append(names, time.Month(n).String())
			continue
		}
		found := false
		for m := time.January; m <= time.December; m++ {
			if strings.EqualFold(part, m.String()[:3]) {
				names, found = append(names, m.String()), true
			}
		}
		if !found {
			return "in months " + mon
		}
	}
	return "in " + list(names, "and")
}

func number(s string, maxN int) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && n <= maxN
}

func plural(n int, unit, prefix string) string {
	if n == 1 {
		return prefix + " " + unit
	}
	return fmt.Sprintf("%s %d %ss", prefix, n, unit)
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ShortDuration writes d without zero units: 90m is 1h30m, 1h0m0s is 1h.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// SixFieldWarning says, for a 6-field expression that fires otherwise than
// its first five fields read as a 5-field one would, what it does and what
// was probably meant: "30 2 * * * *" is read as second 30 of minute 2 of
// every hour, not 02:30 every day. "" when there is nothing to say.
func SixFieldWarning(expr string, loc *time.Location) string {
	f := strings.Fields(strings.TrimSpace(expr))
	if len(f) != 6 || strings.HasPrefix(expr, "@") {
		return ""
	}
	five := strings.Join(f[:5], " ")
	six, err1 := ParseCron(expr, loc)
	alt, err2 := ParseCron(five, loc)
	if err1 != nil || err2 != nil {
		return ""
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	a, b := Upcoming(six, from, 5), Upcoming(alt, from, 5)
	same := len(a) == len(b)
	for i := 0; same && i < len(a); i++ {
		same = a[i].Truncate(time.Minute).Equal(b[i].Truncate(time.Minute))
	}
	if same {
		return ""
	}
	return fmt.Sprintf("6 fields are read as second, minute, hour, day, month, weekday: %q fires %s; if you meant %s, write %q",
		expr, Describe(expr), Describe(five), five)
}
