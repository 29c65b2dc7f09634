package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/internal/runqueue"
)

type runsPage struct {
	Rows     []admin.AttemptRow
	Schedule string
	Class    string
	Status   string
	From, To string
	// Quiet hides the every-minute dispatch classes (quiet=1).
	Quiet    bool
	Classes  []string
	Statuses []string
	Problem  string
	More     string
}

// timeInput is the format of <input type="datetime-local">, read in the
// dashboard's zone.
const timeInput = "2006-01-02T15:04"

// dispatchClasses run every minute and fill the runs page: quiet=1 hides
// them (with their aliases).
var dispatchClasses = []string{"integration_dispatch", "notification_dispatch"}

// quietClasses are the job_class values quiet=1 leaves out.
func (d *Dashboard) quietClasses() []string {
	var out []string
	for _, c := range dispatchClasses {
		out = append(out, d.cfg.Registry.NamesFor(c)...)
	}
	return out
}

func (d *Dashboard) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := runsPage{Schedule: strings.TrimSpace(q.Get("schedule")), Class: q.Get("class"), Status: q.Get("status"),
		From: q.Get("from"), To: q.Get("to"), Quiet: q.Get("quiet") == "1", Classes: d.cfg.Registry.Names(), Statuses: admin.Statuses}
	f := admin.AttemptFilter{Class: p.Class}
	if p.Quiet {
		f.ExcludeClasses = d.quietClasses()
	}
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
		v, err := time.ParseInLocation(timeInput, t.in, d.cfg.Location)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%q is not a time (YYYY-MM-DDTHH:MM, %s)", t.in, d.cfg.Location))
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
		if p.Quiet {
			v.Set("quiet", "1")
		}
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

// runSummary is what a run's page says first: how it ended, or where it
// stands.
type runSummary struct {
	Status string
	// Attempts made, of MaxAttempts allowed (0: unknown, River no longer
	// holds the run and its schedule is gone).
	Attempts, MaxAttempts int32
	// MaxFrom says where MaxAttempts was read when River no longer holds
	// the run: "the schedule's setting now".
	MaxFrom      string
	ScheduledFor *time.Time
	// NextRetry is when River retries it, if it will.
	NextRetry *time.Time
	// SyncLogID is the sync log an integration_sync run wrote.
	SyncLogID int64
}

type runDetailPage struct {
	ID       int64
	Summary  runSummary
	Attempts []attemptDetail
}

func (d *Dashboard) runDetail(w http.ResponseWriter, r *http.Request) {
	id, ok := d.pathID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	attempts, err := admin.RunAttempts(ctx, d.cfg.Pool, id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if len(attempts) == 0 {
		d.notFound(w, r, problem{})
		return
	}
	p := runDetailPage{ID: id}
	for _, a := range attempts {
		p.Attempts = append(p.Attempts, attemptDetail{AttemptRow: a.AttemptRow, Trace: a.Trace, Queue: a.Queue,
			Result: pretty(a.Result), Payload: pretty(a.Payload)})
	}
	if p.Summary, err = d.summarize(ctx, id, attempts); err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "run", fmt.Sprintf("Run %d", id), p)
}

// summarize reads where run id stands: its latest attempt's status, the
// attempts allowed and the next retry from River's queue while it holds
// the run (else from the schedule), the fire time from its payload.
func (d *Dashboard) summarize(ctx context.Context, id int64, attempts []admin.AttemptDetail) (runSummary, error) {
	// The run's status is its latest attempt's; but an attempt that waits
	// for its retry is only queued: the latest that started says more.
	last := attempts[len(attempts)-1]
	status := last
	for i := len(attempts) - 1; i >= 0; i-- {
		if attempts[i].Start != nil {
			status = attempts[i]
			break
		}
	}
	s := runSummary{Status: status.Status}
	if status.Start != nil {
		s.Attempts = status.Attempt
	}
	var payload struct {
		ScheduledFor *time.Time `json:"scheduled_for"`
	}
	if json.Unmarshal(last.Payload, &payload) == nil && payload.ScheduledFor != nil && !payload.ScheduledFor.IsZero() {
		s.ScheduledFor = payload.ScheduledFor
	}
	var result struct {
		SyncLogID int64 `json:"sync_log_id"`
	}
	if json.Unmarshal(last.Result, &result) == nil {
		s.SyncLogID = result.SyncLogID
	}
	q, err := admin.RunQueueState(ctx, d.cfg.Pool, id)
	if err != nil {
		return s, err
	}
	switch {
	case q != nil:
		s.MaxAttempts = q.MaxAttempts
		if q.State == "retryable" || (q.State == "scheduled" && q.Attempt > 0) {
			s.NextRetry = &q.ScheduledAt
		}
	case last.ScheduleID != nil:
		detail, err := admin.GetSchedule(ctx, d.cfg.Pool, *last.ScheduleID)
		switch {
		case errors.Is(err, admin.ErrNotFound):
		case err != nil:
			return s, err
		default:
			s.MaxAttempts, s.MaxFrom = runqueue.DefaultMaxAttempts, "the schedule's setting now"
			if detail.MaxAttempts != nil {
				s.MaxAttempts = *detail.MaxAttempts
			}
		}
	}
	return s, nil
}
