package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SyncExport is the integration_sync_logs.sync_type of a delivery run.
const SyncExport = "export"

// writeLog records one run's work for one integration as an
// integration_sync_logs row (sync_type export): claimed as processed,
// delivered as created, failed as failed. A run that had nothing to send
// writes none.
func (d *Dispatcher) writeLog(ctx context.Context, t target, start time.Time, r *IntegrationResult) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	status := "completed"
	if r.Failed > 0 || r.Error != "" {
		status = "failed"
	}
	summary, _ := json.Marshal(map[string]any{"messages": r.Messages, "digest": r.Digest, "gave_up": r.GaveUp,
		"released": r.Released, "queued": r.Queued, "duration_ms": time.Since(start).Milliseconds()})
	err := d.Pool.QueryRow(ctx, `INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, end_time, status,
			records_processed, records_created, records_updated, records_failed, error_message, sync_summary, created_at, updated_at)
		VALUES ($1, $10, $2, $3, $4, $5, $6, 0, $7, nullif($8, ''), $9, $3, $3) RETURNING id`,
		t.ID, start, time.Now(), status, r.Claimed, r.Delivered, r.Failed, truncate(r.Error), summary, SyncExport).Scan(&r.SyncLogID)
	if err != nil {
		return fmt.Errorf("write export log of integration %d: %w", t.ID, err)
	}
	return nil
}

// configFailed records a misconfigured integration as a failed export log,
// once: not again while its latest export log says the same.
func (d *Dispatcher) configFailed(ctx context.Context, t target, start time.Time, r *IntegrationResult) error {
	var last string
	err := d.Pool.QueryRow(ctx, `SELECT coalesce(error_message, '') FROM integration_sync_logs
		WHERE integration_id = $1 AND sync_type = $2 ORDER BY id DESC LIMIT 1`, t.ID, SyncExport).Scan(&last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read export log of integration %d: %w", t.ID, err)
	}
	if last == truncate(r.Error) {
		return nil
	}
	return d.writeLog(ctx, t, start, r)
}
