package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// Sync is one integration_sync_logs row.
type Sync struct {
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

// Integration is one integrations row as admins see it: never its
// credentials or config.
type Integration struct {
	ID        int64
	Name      string
	Type      string
	Provider  string
	Enabled   bool
	LastSync  *time.Time
	Frequency *string
	Syncs     []Sync // the latest first
	NextDue   string // when integration_dispatch next starts a sync
	// NextDueAt is NextDue's time, when it is one.
	NextDueAt *time.Time
}

// Failing: the latest finished sync failed.
func (i Integration) Failing() bool {
	for _, s := range i.Syncs {
		if s.Status != nil && *s.Status != "running" {
			return *s.Status == "failed"
		}
	}
	return false
}

// Integrations lists integrations (at most 1000; one when id is set) with
// their latest syncs (at most syncs each), failing ones first, then by name.
func Integrations(ctx context.Context, db DB, id int64, syncs int, now time.Time) ([]Integration, error) {
	rows, err := db.Query(ctx, `SELECT i.id, i.name, i.integration_type, i.provider, coalesce(i.is_enabled, false),
			i.last_sync_at, i.sync_frequency,
			l.id, l.sync_type, l.status, l.start_time, l.end_time, l.records_processed, l.records_created,
			l.records_updated, l.records_failed, l.error_message
		FROM (SELECT * FROM integrations WHERE $2 = 0 OR id = $2 ORDER BY id LIMIT 1000) i
		LEFT JOIN LATERAL (SELECT * FROM integration_sync_logs WHERE integration_id = i.id
			ORDER BY start_time DESC, id DESC LIMIT $1) l ON true
		ORDER BY i.id, l.start_time DESC, l.id DESC`, syncs, id)
	if err != nil {
		return nil, fmt.Errorf("read integrations: %w", err)
	}
	var list []Integration
	var i Integration
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
			list = append(list, Integration{ID: i.ID, Name: i.Name, Type: i.Type, Provider: i.Provider, Enabled: i.Enabled,
				LastSync: i.LastSync, Frequency: i.Frequency})
		}
		if s.ID != nil {
			cur := &list[len(list)-1]
			cur.Syncs = append(cur.Syncs, Sync{ID: *s.ID, Type: *s.Type, Status: s.Status, Start: *s.Start, End: s.End,
				Processed: s.Processed, Created: s.Created, Updated: s.Updated, Failed: s.Failed, Error: text(s.Error)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read integrations: %w", err)
	}
	for k := range list {
		list[k].NextDue, list[k].NextDueAt = nextDue(list[k], now)
	}
	slices.SortStableFunc(list, func(a, b Integration) int {
		if a.Failing() != b.Failing() {
			if a.Failing() {
				return -1
			}
			return 1
		}
		return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return list, nil
}

// ResolveIntegration turns an id or a name into one integration's id and
// name.
func ResolveIntegration(ctx context.Context, db DB, idOrName string) (int64, string, error) {
	rows, err := db.Query(ctx, `SELECT id, name FROM integrations WHERE id::text = $1 OR name = $1 ORDER BY id::text = $1 DESC, id LIMIT 3`, idOrName)
	if err != nil {
		return 0, "", fmt.Errorf("find integration %q: %w", idOrName, err)
	}
	type hit struct {
		ID   int64
		Name string
	}
	hits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[hit])
	switch {
	case err != nil:
		return 0, "", fmt.Errorf("find integration %q: %w", idOrName, err)
	case len(hits) == 0:
		return 0, "", fmt.Errorf("%w: %q", ErrIntegrationNotFound, idOrName)
	case len(hits) > 1 && hits[0].Name == hits[1].Name && hits[0].Name == idOrName:
		return 0, "", fmt.Errorf("%w %q: use an id", ErrAmbiguous, idOrName)
	}
	return hits[0].ID, hits[0].Name, nil
}

// ErrIntegrationNotFound is returned for an unknown integration.
var ErrIntegrationNotFound = errors.New("admin: no such integration")

// nextDue says when integration_dispatch next starts a sync: its
// sync_frequency come round since the last sync or attempt (UTC), and that
// time when it is in the future.
func nextDue(i Integration, now time.Time) (string, *time.Time) {
	if !i.Enabled {
		return "disabled", nil
	}
	if i.Frequency == nil || *i.Frequency == "" {
		return "no sync_frequency", nil
	}
	var base time.Time
	if i.LastSync != nil {
		base = *i.LastSync
	}
	if len(i.Syncs) > 0 && i.Syncs[0].Start.After(base) {
		base = i.Syncs[0].Start
	}
	if base.IsZero() {
		return "now (never synced)", nil
	}
	next, err := integrations.NextSync(*i.Frequency, base)
	if err != nil {
		return "unknown sync_frequency", nil
	}
	if !next.After(now) {
		return "due now", nil
	}
	return next.UTC().Format("2006-01-02 15:04 UTC"), &next
}

// SyncLog is one integration_sync_logs row with everything its page shows.
type SyncLog struct {
	Sync
	IntegrationID int64
	Integration   string
	InitiatedBy   *int64
	// Details is error_details (a sample of records that failed), Summary
	// sync_summary (pages, requests, timings): redacted JSON.
	Details, Summary []byte
	// RunID is the run that wrote the log, when job_logs still holds it.
	RunID *int64
}

// ErrSyncNotFound is returned for an unknown sync log.
var ErrSyncNotFound = errors.New("admin: no such sync log")

// syncRunWindow bounds how long before its log opened a sync's run may
// have started: the run is looked up by start_time, whose index finds it.
const syncRunWindow = 10 * time.Minute

// GetSync reads sync log id and finds the run that wrote it: an
// integration_sync run's result names its log, a notification_dispatch
// run's names one per integration.
func GetSync(ctx context.Context, db DB, id int64) (SyncLog, error) {
	var s SyncLog
	err := db.QueryRow(ctx, `SELECT l.id, l.sync_type, l.status, l.start_time, l.end_time, l.records_processed, l.records_created,
			l.records_updated, l.records_failed, l.error_message, l.integration_id, coalesce(i.name, ''), l.initiated_by,
			coalesce(l.error_details, '{}'::jsonb), coalesce(l.sync_summary, '{}'::jsonb)
		FROM integration_sync_logs l LEFT JOIN integrations i ON i.id = l.integration_id WHERE l.id = $1`, id).Scan(
		&s.ID, &s.Type, &s.Status, &s.Start, &s.End, &s.Processed, &s.Created, &s.Updated, &s.Failed, &s.Error,
		&s.IntegrationID, &s.Integration, &s.InitiatedBy, &s.Details, &s.Summary)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s, fmt.Errorf("%w: %d", ErrSyncNotFound, id)
	case err != nil:
		return s, fmt.Errorf("read sync log %d: %w", id, err)
	}
	s.Error, s.Details, s.Summary = text(s.Error), redact.JSON(s.Details), redact.JSON(s.Summary)
	err = db.QueryRow(ctx, `SELECT river_job_id FROM job_logs
		WHERE start_time BETWEEN $2::timestamp - $3 * interval '1 second' AND $2::timestamp + interval '1 minute'
		  AND (result->>'sync_log_id' = $1 OR result->'integrations'->$4->>'sync_log_id' = $1)
		ORDER BY id DESC LIMIT 1`, strconv.FormatInt(id, 10), s.Start, int64(syncRunWindow/time.Second),
		strconv.FormatInt(s.IntegrationID, 10)).Scan(&s.RunID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("find the run of sync log %d: %w", id, err)
	}
	return s, nil
}
