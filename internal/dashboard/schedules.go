package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

// pageSize is the rows per page of the long lists.
const pageSize = 100

// invalidShown bounds the schedules that cannot run, all shown first on one
// page.
const invalidShown = 500

type scheduleRow struct {
	ID          int64
	Name        string
	Class       string
	Cron        *string
	Interval    *int32
	Timezone    string
	Active      bool
	Running     bool
	NextRunAt   *time.Time
	LastRunAt   *time.Time
	LastStatus  *string
	LastMessage *string
	LastDur     *int32
	Runs        int32
	Failures    int32
	Skips       int32
	Consecutive int32
	Error       *string
}

// Words is the schedule in words.
func (s scheduleRow) Words() string { return describe(s.Cron, s.Interval) }

// Written is the schedule as written in the row.
func (s scheduleRow) Written() string {
	if s.Cron != nil && strings.TrimSpace(*s.Cron) != "" {
		return *s.Cron
	}
	if s.Interval != nil {
		return fmt.Sprintf("interval_minutes = %d", *s.Interval)
	}
	return ""
}

const scheduleColumns = `id, name, job_class, cron_expression, interval_minutes, coalesce(timezone, 'UTC'),
	coalesce(is_active, false), coalesce(is_running, false), next_run_at, last_run_at, last_run_status,
	last_run_message, last_run_duration, coalesce(run_count, 0), coalesce(failure_count, 0), skipped_count,
	consecutive_failures, schedule_error`

type schedulesPage struct {
	Invalid []scheduleRow
	Rows    []scheduleRow
	Sort    string
	Class   string
	Query   string
	Classes []string
	More    string // the next page's URL, or ""
}

// sortKeys are the orders of the schedules list: the SQL key, and how a
// cursor's key is cast.
var sortKeys = map[string][2]string{
	"next": {"coalesce(next_run_at, 'infinity'::timestamp)", "::timestamp"},
	"name": {"name", "::text"},
	"id":   {"id", "::bigint"},
}

func (d *Dashboard) schedules(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := schedulesPage{Sort: q.Get("sort"), Class: q.Get("class"), Query: strings.TrimSpace(q.Get("q")), Classes: d.cfg.Registry.Names()}
	if _, ok := sortKeys[p.Sort]; !ok {
		p.Sort = "next"
	}
	after, afterID := q.Get("after"), q.Get("after_id")
	var err error
	if after == "" {
		p.Invalid, err = d.scheduleList(r.Context(), "schedule_error IS NOT NULL", invalidShown, p, "", "")
	}
	if err == nil {
		p.Rows, err = d.scheduleList(r.Context(), "schedule_error IS NULL", pageSize+1, p, after, afterID)
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if len(p.Rows) > pageSize {
		p.Rows = p.Rows[:pageSize]
		last := p.Rows[pageSize-1]
		key := map[string]string{"name": last.Name, "id": strconv.FormatInt(last.ID, 10), "next": "infinity"}[p.Sort]
		if p.Sort == "next" && last.NextRunAt != nil {
			key = last.NextRunAt.Format("2006-01-02T15:04:05.999999")
		}
		v := url.Values{"sort": {p.Sort}, "class": {p.Class}, "q": {p.Query}, "after": {key}, "after_id": {strconv.FormatInt(last.ID, 10)}}
		p.More = "/schedules?" + v.Encode()
	}
	d.render(w, r, "schedules", "Schedules", p)
}

// scheduleList reads up to limit schedules matching where and the page's
// filters, after the keyset cursor (after, afterID) when given.
func (d *Dashboard) scheduleList(ctx context.Context, where string, limit int, p schedulesPage, after, afterID string) ([]scheduleRow, error) {
	key := sortKeys[p.Sort]
	conds, args := []string{where}, []any{}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if p.Class != "" {
		conds = append(conds, "job_class = "+arg(p.Class))
	}
	if p.Query != "" {
		conds = append(conds, "name ILIKE "+arg("%"+likeEscape(p.Query)+"%"))
	}
	if id, err := strconv.ParseInt(afterID, 10, 64); err == nil && after != "" {
		conds = append(conds, fmt.Sprintf("(%s, id) > (%s%s, %s)", key[0], arg(after), key[1], arg(id)))
	}
	return query(ctx, d.cfg.Pool, pgx.RowToStructByPos[scheduleRow], "list schedules", `SELECT `+scheduleColumns+
		` FROM scheduled_jobs WHERE `+strings.Join(conds, " AND ")+` ORDER BY `+key[0]+`, id LIMIT `+strconv.Itoa(limit), args...)
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

type scheduleDetailPage struct {
	S             scheduleRow
	Misfire       string
	Overlap       string
	MaxAttempts   *int32
	RetryDelay    *int32
	Parameters    string
	Fires         []fireTime
	FiresErr      string
	Runs          []attemptRow
	PausedByClass bool
}

type fireTime struct {
	Local, UTC time.Time
}

func (d *Dashboard) scheduleDetail(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var p scheduleDetailPage
	var params []byte
	rows, err := d.cfg.Pool.Query(ctx, `SELECT `+scheduleColumns+`, misfire_policy, overlap_policy, max_attempts, retry_delay_minutes,
		coalesce(parameters, '{}'::jsonb) FROM scheduled_jobs WHERE id = $1`, id)
	if err == nil {
		_, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (struct{}, error) {
			s := &p.S
			return struct{}{}, row.Scan(&s.ID, &s.Name, &s.Class, &s.Cron, &s.Interval, &s.Timezone, &s.Active, &s.Running,
				&s.NextRunAt, &s.LastRunAt, &s.LastStatus, &s.LastMessage, &s.LastDur, &s.Runs, &s.Failures, &s.Skips,
				&s.Consecutive, &s.Error, &p.Misfire, &p.Overlap, &p.MaxAttempts, &p.RetryDelay, &params)
		})
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		http.NotFound(w, r)
		return
	case err != nil:
		d.fail(w, r, fmt.Errorf("read schedule %d: %w", id, err))
		return
	}
	p.Parameters = pretty(redact.JSON(d.cfg.Registry.Redact(p.S.Class, params)))
	p.Fires, p.FiresErr = nextFireTimes(p.S, d.cfg.Now(), 10)
	if p.Runs, err = d.attempts(ctx, runFilter{ScheduleIDs: []int64{id}}, 20); err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "schedule", p.S.Name, p)
}

// nextFireTimes computes a row's next n fire times from its next_run_at (or
// from now), in its time zone, as the scheduler does.
func nextFireTimes(s scheduleRow, now time.Time, n int) ([]fireTime, string) {
	tz := s.Timezone
	sch, err := schedule.ParseRow(s.Cron, s.Interval, &tz)
	if err != nil {
		return nil, err.Error()
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, err.Error()
	}
	var times []time.Time
	if s.NextRunAt != nil {
		times = append([]time.Time{*s.NextRunAt}, schedule.Upcoming(sch, *s.NextRunAt, n-1)...)
	} else {
		times = schedule.Upcoming(sch, now, n)
	}
	out := make([]fireTime, len(times))
	for i, t := range times {
		out[i] = fireTime{Local: t.In(loc), UTC: t.UTC()}
	}
	return out, ""
}

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
		return "cron"
	}
	min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4]
	if dom != "*" || mon != "*" {
		return "cron"
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
	return "cron"
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
