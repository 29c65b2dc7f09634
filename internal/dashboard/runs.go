package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/admin"
)

type runsPage struct {
	Rows     []admin.AttemptRow
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
		From: q.Get("from"), To: q.Get("to"), Classes: d.cfg.Registry.Names(), Statuses: admin.Statuses}
	f := admin.AttemptFilter{Class: p.Class}
	if slices.Contains(admin.Statuses, p.Status) {
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
		ids, err := admin.HistoryIDs(ctx, d.cfg.Pool, p.Schedule) // deleted schedules' runs too
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
		if p.Rows, err = admin.Attempts(ctx, d.cfg.Pool, f, pageSize+1); err != nil {
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

type attemptDetail struct {
	admin.AttemptRow
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
	id, ok := d.pathID(w, r)
	if !ok {
		return
	}
	attempts, err := admin.RunAttempts(r.Context(), d.cfg.Pool, id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	p := runDetailPage{ID: id}
	for _, a := range attempts {
		p.Attempts = append(p.Attempts, attemptDetail{AttemptRow: a.AttemptRow, Trace: a.Trace, Queue: a.Queue,
			Result: pretty(a.Result), Payload: pretty(a.Payload)})
	}
	if len(p.Attempts) == 0 {
		d.notFound(w, r, problem{})
		return
	}
	d.render(w, r, "run", fmt.Sprintf("Run %d", id), p)
}
