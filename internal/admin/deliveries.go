package admin

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
)

// DeliveryStatuses are the statuses a notification delivery can be in.
var DeliveryStatuses = delivery.Statuses

// Delivery is one notification_deliveries row: one notification for one
// delivery integration (webhook, smtp).
type Delivery struct {
	ID             int64
	NotificationID int64
	Notification   *string // its title
	IntegrationID  int64
	Integration    *string
	Status         string
	Attempts       int32
	LastError      *string
	NextAttemptAt  time.Time
	DeliveredAt    *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// DeliveryFilter narrows Deliveries. Zero fields do not filter.
type DeliveryFilter struct {
	IntegrationID  int64
	NotificationID int64
	Status         string
	Before         int64 // keyset: ids below this
}

// Deliveries lists deliveries newest first, at most limit, their errors
// redacted.
func Deliveries(ctx context.Context, db DB, f DeliveryFilter, limit int) ([]Delivery, error) {
	if f.Status != "" && !slices.Contains(DeliveryStatuses, f.Status) {
		return nil, fmt.Errorf("delivery status %q is not one of %s", f.Status, strings.Join(DeliveryStatuses, ", "))
	}
	var w filter
	if f.IntegrationID != 0 {
		w.add("d.integration_id = " + w.arg(f.IntegrationID))
	}
	if f.NotificationID != 0 {
		w.add("d.notification_id = " + w.arg(f.NotificationID))
	}
	if f.Status != "" {
		w.add("d.status = " + w.arg(f.Status))
	}
	if f.Before > 0 {
		w.add("d.id < " + w.arg(f.Before))
	}
	rows, err := db.Query(ctx, `SELECT d.id, d.notification_id, n.title, d.integration_id, i.name, d.status, d.attempts, d.last_error,
			d.next_attempt_at, d.delivered_at, d.created_at, d.updated_at
		FROM notification_deliveries d
		LEFT JOIN system_notifications n ON n.id = d.notification_id
		LEFT JOIN integrations i ON i.id = d.integration_id `+w.where()+`
		ORDER BY d.id DESC LIMIT `+strconv.Itoa(max(limit, 1)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Delivery])
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	for i := range out {
		out[i].LastError = text(out[i].LastError)
	}
	return out, nil
}

// DeliveryCounts is one delivery integration's deliveries by status.
type DeliveryCounts struct {
	IntegrationID int64
	Integration   *string
	Pending       int64
	Sending       int64
	Delivered     int64
	Failed        int64
	// LastDelivered is the latest delivery that went through.
	LastDelivered *time.Time
}

// DeliveryTotals counts every delivery integration's deliveries by status
// (at most 200 integrations).
func DeliveryTotals(ctx context.Context, db DB) ([]DeliveryCounts, error) {
	rows, err := db.Query(ctx, `SELECT d.integration_id, i.name,
			count(*) FILTER (WHERE d.status = 'pending'), count(*) FILTER (WHERE d.status = 'sending'),
			count(*) FILTER (WHERE d.status = 'delivered'), count(*) FILTER (WHERE d.status = 'failed'), max(d.delivered_at)
		FROM notification_deliveries d LEFT JOIN integrations i ON i.id = d.integration_id
		GROUP BY d.integration_id, i.name ORDER BY i.name, d.integration_id LIMIT 200`)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DeliveryCounts])
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	return out, nil
}
