// Package integrations syncs ATİS with outside systems on schedule and
// records every sync in integration_sync_logs.
package integrations

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SyncLog is one integration_sync_logs row as admins see it.
type SyncLog struct {
	ID               int64      `json:"id"`
	IntegrationID    int64      `json:"integration_id"`
	Integration      *string    `json:"integration"`
	SyncType         string     `json:"sync_type"`
	Status           *string    `json:"status"`
	StartTime        time.Time  `json:"start_time"`
	EndTime          *time.Time `json:"end_time"`
	RecordsProcessed *int       `json:"records_processed"`
	RecordsCreated   *int       `json:"records_created"`
	RecordsUpdated   *int       `json:"records_updated"`
	RecordsFailed    *int       `json:"records_failed"`
	ErrorMessage     *string    `json:"error_message"`
}

// ListSyncs lists syncs, newest first; integrationID 0 means all.
func ListSyncs(ctx context.Context, pool *pgxpool.Pool, integrationID int64, limit int) ([]SyncLog, error) {
	rows, err := pool.Query(ctx, `SELECT l.id, l.integration_id, i.name, l.sync_type, l.status, l.start_time, l.end_time,
			l.records_processed, l.records_created, l.records_updated, l.records_failed, l.error_message
		FROM integration_sync_logs l LEFT JOIN integrations i ON i.id = l.integration_id
		WHERE $1 = 0 OR l.integration_id = $1
		ORDER BY l.start_time DESC, l.id DESC LIMIT $2`, integrationID, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SyncLog])
	if err != nil {
		return nil, fmt.Errorf("list syncs: %w", err)
	}
	return out, nil
}
