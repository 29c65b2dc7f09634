package delivery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Delivery is one notification_deliveries row as admins see it.
type Delivery struct {
	ID             int64      `json:"id"`
	NotificationID int64      `json:"notification_id"`
	Notification   *string    `json:"notification"`
	IntegrationID  int64      `json:"integration_id"`
	Integration    *string    `json:"integration"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastError      *string    `json:"last_error"`
	NextAttemptAt  time.Time  `json:"next_attempt_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
	CreatedAt      time.Time  `json:"created_at"`
}

// Filter narrows ListDeliveries; zero fields match everything.
type Filter struct {
	IntegrationID int64
	Status        string
	Limit         int
}

// ListDeliveries lists deliveries, newest first.
func ListDeliveries(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]Delivery, error) {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return nil, fmt.Errorf("status %q is not one of %s", f.Status, strings.Join(Statuses, ", "))
	}
	rows, err := pool.Query(ctx, `SELECT d.id, d.notification_id, n.title, d.integration_id, i.name, d.status, d.attempts, d.last_error,
			d.next_attempt_at, d.delivered_at, d.created_at
		FROM notification_deliveries d
		LEFT JOIN system_notifications n ON n.id = d.notification_id
		LEFT JOIN integrations i ON i.id = d.integration_id
		WHERE ($1 = 0 OR d.integration_id = $1) AND ($2 = '' OR d.status = $2)
		ORDER BY d.id DESC LIMIT $3`, f.IntegrationID, f.Status, max(f.Limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Delivery])
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}
