package dashboard

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/integrations"
)

// syncsShown is how many recent syncs each integration shows.
const syncsShown = 5

type syncRow struct {
	ID        int64
	Type      string
	Status    *string
	Start     time.Time
	End       *time.Time
	Processed *int32
	Created   *int32
	Updated   *int32
	Failed    *int32
	Error     *string
}

type integrationRow struct {
	ID        int64
	Name      string
	Type      string
	Provider  string
	Enabled   bool
	LastSync  *time.Time
	Frequency *string
	Syncs     []syncRow
	NextDue   string
}

// Failing: the latest finished sync failed.
func (i integrationRow) Failing() bool {
	for _, s := range i.Syncs {
		if s.Status != nil && *s.Status != "running" {
			return *s.Status == "failed"
		}
	}
	return false
}

// integrations lists every integration (never its credentials or config)
// with its latest syncs, failing ones first.
func (d *Dashboard) integrations(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rows, err := d.cfg.Pool.Query(ctx, `SELECT i.id, i.name, i.integration_type, i.provider, coalesce(i.is_enabled, false),
			i.last_sync_at, i.sync_frequency,
			l.id, l.sync_type, l.status, l.start_time, l.end_time, l.records_processed, l.records_created,
			l.records_updated, l.records_failed, l.error_message
		FROM (SELECT * FROM integrations ORDER BY id LIMIT 1000) i
		LEFT JOIN LATERAL (SELECT * FROM integration_sync_logs WHERE integration_id = i.id
			ORDER BY start_time DESC, id DESC LIMIT $1) l ON true
		ORDER BY i.id, l.start_time DESC, l.id DESC`, syncsShown)
	if err != nil {
		d.fail(w, r, fmt.Errorf("read integrations: %w", err))
		return
	}
	var list []integrationRow
	var i integrationRow
	var s struct {
		ID                                  *int64
		Type                                *string
		Status                              *string
		Start, End                          *time.Time
		Processed, Created, Updated, Failed *int32
		Error                               *string
	}
	_, err = pgx.ForEachRow(rows, []any{&i.ID, &i.Name, &i.Type, &i.Provider, &i.Enabled, &i.LastSync, &i.Frequency,
		&s.ID, &s.Type, &s.Status, &s.Start, &s.End, &s.Processed, &s.Created, &s.Updated, &s.Failed, &s.Error}, func() error {
		if len(list) == 0 || list[len(list)-1].ID != i.ID {
			list = append(list, integrationRow{ID: i.ID, Name: i.Name, Type: i.Type, Provider: i.Provider, Enabled: i.Enabled,
				LastSync: i.LastSync, Frequency: i.Frequency})
		}
		if s.ID != nil {
			cur := &list[len(list)-1]
			cur.Syncs = append(cur.Syncs, syncRow{ID: *s.ID, Type: *s.Type, Status: s.Status, Start: *s.Start, End: s.End,
				Processed: s.Processed, Created: s.Created, Updated: s.Updated, Failed: s.Failed, Error: s.Error})
		}
		return nil
	})
	if err != nil {
		d.fail(w, r, fmt.Errorf("read integrations: %w", err))
		return
	}
	now := d.cfg.Now()
	for k := range list {
		list[k].NextDue = nextDue(list[k], now)
	}
	slices.SortStableFunc(list, func(a, b integrationRow) int {
		if a.Failing() != b.Failing() {
			if a.Failing() {
				return -1
			}
			return 1
		}
		return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	d.render(w, r, "integrations", "Integrations", list)
}

// nextDue says when integration_dispatch next starts a sync: its
// sync_frequency come round since the last sync or attempt (UTC).
func nextDue(i integrationRow, now time.Time) string {
	if !i.Enabled {
		return "disabled"
	}
	if i.Frequency == nil || *i.Frequency == "" {
		return "no sync_frequency"
	}
	var base time.Time
	if i.LastSync != nil {
		base = *i.LastSync
	}
	if len(i.Syncs) > 0 && i.Syncs[0].Start.After(base) {
		base = i.Syncs[0].Start
	}
	if base.IsZero() {
		return "now (never synced)"
	}
	next, err := integrations.NextSync(*i.Frequency, base)
	if err != nil {
		return "unknown sync_frequency"
	}
	if !next.After(now) {
		return "due now"
	}
	return next.UTC().Format("2006-01-02 15:04 UTC")
}
