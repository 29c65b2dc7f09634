package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailingSchedule is a schedule whose latest runs failed.
type FailingSchedule struct {
	ID          int64
	Name        string
	Class       string
	Failures    int32 // in a row
	LastMessage *string
	// LastFailure is when the latest failed run ended (last_run_at).
	LastFailure *time.Time
	// Since is when the first failed run of the streak started: the first
	// failed attempt after the last completed one still in job_logs (or
	// LastFailure when retention removed them).
	Since *time.Time
}

// FailingSchedules lists schedules failing now (consecutive_failures > 0),
// most failures in a row first, at most limit.
func FailingSchedules(ctx context.Context, db DB, limit int) ([]FailingSchedule, error) {
	rows, err := db.Query(ctx, `SELECT s.id, s.name, s.job_class, s.consecutive_failures, s.last_run_message, s.last_run_at,
			coalesce((SELECT min(l.start_time) FROM job_logs l WHERE l.scheduled_job_id = s.id AND l.status = 'failed'
				AND l.id > coalesce((SELECT max(c.id) FROM job_logs c WHERE c.scheduled_job_id = s.id AND c.status = 'completed'), 0)),
				s.last_run_at)
		FROM scheduled_jobs s WHERE s.consecutive_failures > 0
		ORDER BY s.consecutive_failures DESC, s.last_run_at DESC NULLS LAST, s.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read failing schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailingSchedule])
	if err != nil {
		return nil, fmt.Errorf("read failing schedules: %w", err)
	}
	for i := range out {
		out[i].LastMessage = text(out[i].LastMessage)
	}
	return out, nil
}

// FailingIntegration is an enabled integration whose latest finished sync
// (or delivery run) failed.
type FailingIntegration struct {
	ID       int64
	Name     string
	Type     string
	Provider string
	// Failures counts the failed syncs since the last completed one.
	Failures int64
	// Since is when the first of them started; LastFailure when the
	// latest did.
	Since, LastFailure time.Time
	// LastSyncID is the latest failed sync log, LastError its message.
	LastSyncID int64
	LastError  *string
}

// FailingIntegrations lists the enabled integrations failing now, the
// longest failing first, at most limit.
func FailingIntegrations(ctx context.Context, db DB, limit int) ([]FailingIntegration, error) {
	rows, err := db.Query(ctx, `SELECT i.id, i.name, i.integration_type, i.provider, f.n, f.since, f.last_at, f.last_id, f.last_error
		FROM integrations i
		CROSS JOIN LATERAL (SELECT status FROM integration_sync_logs WHERE integration_id = i.id AND status <> 'running'
			ORDER BY start_time DESC, id DESC LIMIT 1) latest
		CROSS JOIN LATERAL (SELECT count(*) n, min(l.start_time) since, max(l.start_time) last_at,
				(array_agg(l.id ORDER BY l.start_time DESC, l.id DESC))[1] last_id,
				(array_agg(l.error_message ORDER BY l.start_time DESC, l.id DESC))[1] last_error
			FROM integration_sync_logs l
			WHERE l.integration_id = i.id AND l.status = 'failed'
			  AND l.start_time > coalesce((SELECT max(c.start_time) FROM integration_sync_logs c
				WHERE c.integration_id = i.id AND c.status = 'completed'), '-infinity'::timestamp)) f
		WHERE coalesce(i.is_enabled, false) AND latest.status = 'failed' AND f.n > 0
		ORDER BY f.since, i.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read failing integrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailingIntegration])
	if err != nil {
		return nil, fmt.Errorf("read failing integrations: %w", err)
	}
	for i := range out {
		out[i].LastError = text(out[i].LastError)
	}
	return out, nil
}

// FailingDeliveries is one delivery integration's notifications that are
// not getting through: given up (failed) or waiting for a retry after an
// error.
type FailingDeliveries struct {
	IntegrationID int64
	Integration   *string
	Failed        int64 // given up
	Retrying      int64 // pending or sending again after an error
	// Since is when the oldest of them was created; LastFailure when the
	// latest was last tried.
	Since, LastFailure time.Time
	LastError          *string
}

// failingWindow: a delivery given up longer ago than this is history, not
// a failure now.
const failingWindow = 7 * 24 * time.Hour

// FailingDeliveriesByIntegration counts, per integration, the deliveries
// that failed or are retrying after an error in the last seven days, at
// most limit integrations, the most recent failure first.
func FailingDeliveriesByIntegration(ctx context.Context, db DB, now time.Time, limit int) ([]FailingDeliveries, error) {
	rows, err := db.Query(ctx, `SELECT d.integration_id, i.name,
			count(*) FILTER (WHERE d.status = 'failed'), count(*) FILTER (WHERE d.status <> 'failed'),
			min(d.created_at), max(d.updated_at), (array_agg(d.last_error ORDER BY d.updated_at DESC, d.id DESC))[1]
		FROM notification_deliveries d LEFT JOIN integrations i ON i.id = d.integration_id
		WHERE d.updated_at >= $1 AND (d.status = 'failed' OR (d.status IN ('pending', 'sending') AND d.last_error IS NOT NULL))
		GROUP BY d.integration_id, i.name ORDER BY max(d.updated_at) DESC, d.integration_id LIMIT $2`,
		now.Add(-failingWindow), limit)
	if err != nil {
		return nil, fmt.Errorf("read failing deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailingDeliveries])
	if err != nil {
		return nil, fmt.Errorf("read failing deliveries: %w", err)
	}
	for i := range out {
		out[i].LastError = text(out[i].LastError)
	}
	return out, nil
}
