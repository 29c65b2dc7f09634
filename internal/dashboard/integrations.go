package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/atis-edu/atis-scheduler/internal/admin"
)

// syncsShown is how many recent syncs each integration shows.
const syncsShown = 5

// integrations lists every integration (never its credentials or config)
// with its latest syncs, failing ones first.
func (d *Dashboard) integrations(w http.ResponseWriter, r *http.Request) {
	list, err := admin.Integrations(r.Context(), d.cfg.Pool, 0, syncsShown, d.cfg.Now())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "integrations", "Integrations", list)
}

type syncPage struct {
	admin.SyncLog
	Details, Summary string
}

// syncDetail shows one sync log: counts, error, the sample of failed
// records, the summary, and the run that wrote it.
func (d *Dashboard) syncDetail(w http.ResponseWriter, r *http.Request) {
	id, ok := d.pathID(w, r)
	if !ok {
		return
	}
	s, err := admin.GetSync(r.Context(), d.cfg.Pool, id)
	switch {
	case errors.Is(err, admin.ErrSyncNotFound):
		d.notFound(w, r, problem{Message: fmt.Sprintf("No sync log has the id %d.", id), Link: "/integrations", LinkText: "Integrations"})
		return
	case err != nil:
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "sync", fmt.Sprintf("Sync %d", id), syncPage{SyncLog: s, Details: pretty(s.Details), Summary: pretty(s.Summary)})
}

type deliveriesPage struct {
	Totals      []admin.DeliveryCounts
	Rows        []admin.Delivery
	Integration string
	Status      string
	Statuses    []string
	Problem     string
	More        string
}

// deliveries lists notification deliveries, newest first, by integration
// and status, under each delivery integration's counts.
func (d *Dashboard) deliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ctx := r.Context()
	p := deliveriesPage{Integration: strings.TrimSpace(q.Get("integration")), Status: q.Get("status"), Statuses: admin.DeliveryStatuses}
	var f admin.DeliveryFilter
	if slices.Contains(admin.DeliveryStatuses, p.Status) {
		f.Status = p.Status
	}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	f.NotificationID, _ = strconv.ParseInt(q.Get("notification"), 10, 64)
	if p.Integration != "" {
		id, _, err := admin.ResolveIntegration(ctx, d.cfg.Pool, p.Integration)
		switch {
		case errors.Is(err, admin.ErrIntegrationNotFound), errors.Is(err, admin.ErrAmbiguous):
			p.Problem = fmt.Sprintf("no one integration has the id or name %q", p.Integration)
		case err != nil:
			d.fail(w, r, err)
			return
		}
		f.IntegrationID = id
	}
	err := collect(
		func() (err error) { p.Totals, err = admin.DeliveryTotals(ctx, d.cfg.Pool); return },
		func() (err error) {
			if p.Problem == "" {
				p.Rows, err = admin.Deliveries(ctx, d.cfg.Pool, f, pageSize+1)
			}
			return
		},
	)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if len(p.Rows) > pageSize {
		p.Rows = p.Rows[:pageSize]
		v := url.Values{"integration": {p.Integration}, "status": {p.Status}, "before": {strconv.FormatInt(p.Rows[pageSize-1].ID, 10)}}
		if f.NotificationID != 0 {
			v.Set("notification", strconv.FormatInt(f.NotificationID, 10))
		}
		p.More = "/deliveries?" + v.Encode()
	}
	d.render(w, r, "deliveries", "Deliveries", p)
}
