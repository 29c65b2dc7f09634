package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// attemptRow is one job_logs row: one attempt of a run.
type attemptRow struct {
	ID         int64
	RunID      *int64
	ScheduleID *int64
	Schedule   *string
	Class      string
	Attempt    int32
	Status     string
	Start      *time.Time
	End        *time.Time
	Duration   *int32
	Error      *string
	CreatedAt  *time.Time
}

type runFilter struct {
	ScheduleIDs []int64
	Class       string
	Status      string
	From, To    time.Time
	Before      int64 // keyset: job_logs.id below this
}

const attemptColumns = `l.id, l.river_job_id, l.scheduled_job_id, s.name, l.job_class, l.attempt, l.status,
	l.start_time, l.end_time, l.duration, l.error_message, l.created_at`

// attempts lists job_logs rows newest first. The WHERE clause holds only the
// filters given, so that each shape gets its own plan (and index).
func (d *Dashboard) attempts(ctx context.Context, f runFilter, limit int) ([]attemptRow, error) {
	var conds []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	switch {
	case len(f.ScheduleIDs) == 1: // the index on (scheduled_job_id, id) gives the order
		conds = append(conds, "l.scheduled_job_id = "+arg(f.ScheduleIDs[0]))
	case f.ScheduleIDs != nil:
		conds = append(conds, "l.scheduled_job_id = ANY("+arg(f.ScheduleIDs)+")")
	}
	if f.Class != "" {
		conds = append(conds, "l.job_class = "+arg(f.Class))
	}
	if f.Status != "" {
		conds = append(conds, "l.status = "+arg(f.Status))
	}
	if !f.From.IsZero() {
		conds = append(conds, "l.start_time >= "+arg(f.From.UTC()))
	}
	if !f.To.IsZero() {
		conds = append(conds, "l.start_time < "+arg(f.To.UTC()))
	}
	if f.Before > 0 {
		conds = append(conds, "l.id < "+arg(f.Before))
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	return query(ctx, d.cfg.Pool, pgx.RowToStructByPos[attemptRow], "list runs", `SELECT `+attemptColumns+` FROM job_logs l
		LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id `+where+`
		ORDER BY l.id DESC LIMIT `+strconv.Itoa(limit), args...)
}

type runsPage struct {
	Rows     []attemptRow
	Schedule string
	Class    string
	Status   string
	From, To string
	Classes  []string
	Statuses []string
	Problem  string
	More     string
}

// timeInput is the format of <input type="datetime-local">, read as UTC.
const timeInput = "2006-01-02T15:04"

func (d *Dashboard) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := runsPage{Schedule: strings.TrimSpace(q.Get("schedule")), Class: q.Get("class"), Status: q.Get("status"),
		From: q.Get("from"), To: q.Get("to"), Classes: d.cfg.Registry.Names(), Statuses: scheduler.Statuses}
	f := runFilter{Class: p.Class}
	if slices.Contains(scheduler.Statuses, p.Status) {
		f.Status = p.Status
	}
	var problems []string
	for _, t := range []struct {
		in  string
		out *time.Time
	}{{p.From, &f.From}, {p.To, &f.To}} {
		if t.in == "" {
			continue
		}
		v, err := time.Parse(timeInput, t.in)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%q is not a time (YYYY-MM-DDTHH:MM, UTC)", t.in))
		}
		*t.out = v
	}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	ctx := r.Context()
	if p.Schedule != "" {
		ids, err := d.resolveSchedule(ctx, p.Schedule)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		if len(ids) == 0 {
			problems = append(problems, fmt.Sprintf("no schedule has the id or name %q", p.Schedule))
		}
		f.ScheduleIDs = ids
	}
	p.Problem = strings.Join(problems, "; ")
	if p.Problem == "" {
		var err error
		if p.Rows, err = d.attempts(ctx, f, pageSize+1); err != nil {
			d.fail(w, r, err)
			return
		}
	}
	if len(p.Rows) > pageSize {
		p.Rows = p.Rows[:pageSize]
		v := url.Values{"schedule": {p.Schedule}, "class": {p.Class}, "status": {p.Status}, "from": {p.From}, "to": {p.To},
			"before": {strconv.FormatInt(p.Rows[pageSize-1].ID, 10)}}
		p.More = "/runs?" + v.Encode()
	}
	d.render(w, r, "runs", "Runs", p)
}

// resolveSchedule turns an id or a name into the ids of the schedules it
// names (names need not be unique).
func (d *Dashboard) resolveSchedule(ctx context.Context, s string) ([]int64, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		return []int64{id}, nil
	}
	return query(ctx, d.cfg.Pool, pgx.RowTo[int64], fmt.Sprintf("find schedule %q", s),
		`SELECT id FROM scheduled_jobs WHERE name = $1 ORDER BY id LIMIT 100`, s)
}

type attemptDetail struct {
	attemptRow
	Trace   *string
	Result  string
	Payload string
	Queue   *string
}

type runDetailPage struct {
	ID       int64
	Attempts []attemptDetail
}

func (d *Dashboard) runDetail(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	// job_id holds the River job id as text: its index finds the run.
	rows, err := d.cfg.Pool.Query(r.Context(), `SELECT `+attemptColumns+`, l.error_trace, coalesce(l.result, '{}'::jsonb),
			coalesce(l.payload, '{}'::jsonb), l.queue
		FROM job_logs l LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		WHERE l.job_id = $1 AND l.river_job_id = $2 ORDER BY l.attempt, l.id`, strconv.FormatInt(id, 10), id)
	var p runDetailPage
	p.ID = id
	if err == nil {
		p.Attempts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (attemptDetail, error) {
			var a attemptDetail
			var result, payload json.RawMessage
			err := row.Scan(&a.ID, &a.RunID, &a.ScheduleID, &a.Schedule, &a.Class, &a.Attempt, &a.Status, &a.Start, &a.End,
				&a.Duration, &a.Error, &a.CreatedAt, &a.Trace, &result, &payload, &a.Queue)
			a.Result = pretty(redact.JSON(result))
			a.Payload = pretty(d.redactPayload(a.Class, payload))
			return a, err
		})
	}
	if err != nil {
		d.fail(w, r, fmt.Errorf("read run %d: %w", id, err))
		return
	}
	if len(p.Attempts) == 0 {
		http.NotFound(w, r)
		return
	}
	d.render(w, r, "run", fmt.Sprintf("Run %d", id), p)
}

// redactPayload hides secrets in a run's payload: its parameters as their
// class redacts them, then anything that looks like a secret.
func (d *Dashboard) redactPayload(class string, payload json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil {
		return redact.JSON(payload)
	}
	if params, ok := m["parameters"]; ok {
		m["parameters"] = d.cfg.Registry.Redact(class, params)
	}
	b, _ := json.Marshal(m)
	return redact.JSON(b)
}
