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

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

// pageSize is the rows per page of the long lists.
const pageSize = 100

// invalidShown bounds the schedules that cannot run, all shown first on one
// page.
const invalidShown = 500

type schedulesPage struct {
	Invalid []admin.Schedule
	Rows    []admin.Schedule
	Sort    string
	Class   string
	Query   string
	Classes []string
	More    string // the next page's URL, or ""
}

func (d *Dashboard) schedules(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := schedulesPage{Sort: q.Get("sort"), Class: q.Get("class"), Query: strings.TrimSpace(q.Get("q")), Classes: d.cfg.Registry.Names()}
	if _, ok := admin.Sorts[p.Sort]; !ok {
		p.Sort = "next"
	}
	after, afterID := q.Get("after"), q.Get("after_id")
	if why := checkCursor(p.Sort, after, afterID); why != "" {
		d.badRequest(w, r, why)
		return
	}
	var err error
	if after == "" {
		p.Invalid, err = d.scheduleList(r.Context(), true, invalidShown, p, "", "")
	}
	if err == nil {
		p.Rows, err = d.scheduleList(r.Context(), false, pageSize+1, p, after, afterID)
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

// checkCursor says what is wrong with a schedules page's keyset cursor
// (after, after_id), or "": each sort has its own key type.
func checkCursor(sort, after, afterID string) string {
	if after == "" && afterID == "" {
		return ""
	}
	if _, err := strconv.ParseInt(afterID, 10, 64); err != nil {
		return "after_id is not a number"
	}
	switch sort {
	case "id":
		if _, err := strconv.ParseInt(after, 10, 64); err != nil {
			return "after is not a schedule id"
		}
	case "next":
		if _, err := time.Parse("2006-01-02T15:04:05.999999", after); err != nil && after != "infinity" {
			return "after is not a time (2006-01-02T15:04:05)"
		}
	}
	return ""
}

// scheduleList reads up to limit schedules that cannot run (invalid) or
// can, matching the page's filters, after the keyset cursor (after,
// afterID) when given.
func (d *Dashboard) scheduleList(ctx context.Context, invalid bool, limit int, p schedulesPage, after, afterID string) ([]admin.Schedule, error) {
	q := admin.ScheduleQuery{Invalid: &invalid, Class: p.Class, Name: p.Query, Sort: p.Sort, Limit: limit}
	if id, err := strconv.ParseInt(afterID, 10, 64); err == nil && after != "" {
		q.After, q.AfterID = after, id
	}
	return admin.Schedules(ctx, d.cfg.Pool, q)
}

type scheduleDetailPage struct {
	S           admin.Schedule
	Misfire     string
	Overlap     string
	MaxAttempts *int32
	RetryDelay  *int32
	Retries     string
	Parameters  string
	Fires       []fireTime
	// OneZone: the schedule's zone shows every fire time as the
	// dashboard's zone does, so one column says it all.
	OneZone       bool
	FiresErr      string
	Runs          []admin.AttemptRow
	PausedByClass bool
}

// fireTime is a fire time in the schedule's zone and in the dashboard's.
type fireTime struct {
	Local, Shown time.Time
}

func (d *Dashboard) scheduleDetail(w http.ResponseWriter, r *http.Request) {
	id, ok := d.pathID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var p scheduleDetailPage
	detail, err := admin.GetSchedule(ctx, d.cfg.Pool, id)
	switch {
	case errors.Is(err, admin.ErrNotFound):
		p := problem{Message: fmt.Sprintf("No schedule has the id %d.", id)}
		if gone, err := admin.GetDeleted(ctx, d.cfg.Pool, id); err == nil {
			p = problem{Heading: "Schedule deleted", Message: fmt.Sprintf("Schedule %d (%s) was deleted on %s. Its %d runs of history remain.",
				id, gone.Name, formatTime(gone.DeletedAt, d.cfg.Location), gone.Runs), Link: fmt.Sprintf("/runs?schedule=%d", id), LinkText: "Its runs"}
		}
		d.notFound(w, r, p)
		return
	case err != nil:
		d.fail(w, r, err)
		return
	}
	p.S, p.Misfire, p.Overlap, p.MaxAttempts, p.RetryDelay = detail.Schedule, detail.Misfire, detail.Overlap, detail.MaxAttempts, detail.RetryDelay
	p.Retries = detail.Retries()
	params := detail.Parameters
	p.Parameters = pretty(redact.JSON(d.cfg.Registry.Redact(p.S.Class, params)))
	p.Fires, p.FiresErr = nextFireTimes(p.S, d.cfg.Now(), d.cfg.Location, 10)
	p.OneZone = sameWallClock(p.Fires)
	if p.Runs, err = admin.Attempts(ctx, d.cfg.Pool, admin.AttemptFilter{ScheduleIDs: []int64{id}}, 20); err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "schedule", p.S.Name, p)
}

// nextFireTimes computes a row's next n fire times from its next_run_at (or
// from now), in its time zone as the scheduler does, and in shown.
func nextFireTimes(s admin.Schedule, now time.Time, shown *time.Location, n int) ([]fireTime, string) {
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
		out[i] = fireTime{Local: t.In(loc), Shown: t.In(shown)}
	}
	return out, ""
}

// sameWallClock reports whether every fire time reads the same in both
// zones (a UTC schedule on a UTC dashboard).
func sameWallClock(fires []fireTime) bool {
	for _, f := range fires {
		if formatLocal(f.Local) != formatLocal(f.Shown) {
			return false
		}
	}
	return true
}
