package integrations

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

// EnqueueSync puts a sync run into the queue in tx: the River side of a
// dispatch, given by the integration_dispatch class.
type EnqueueSync func(ctx context.Context, tx pgx.Tx, p SyncParams, now time.Time) error

// DispatchResult is what one dispatch did.
type DispatchResult struct {
	Enqueued []int64          `json:"enqueued"`
	Busy     []int64          `json:"busy,omitempty"`
	NotDue   int              `json:"not_due"`
	Errors   map[int64]string `json:"errors,omitempty"`
}

// providerNames lists the pull providers: integrations of any other
// provider (webhook, smtp: push) have nothing to sync, whatever their
// sync_frequency.
func (e *Engine) providerNames() []string {
	names := make([]string, 0, len(e.Providers))
	for name := range e.Providers {
		names = append(names, name)
	}
	return names
}

// Dispatch enqueues the due syncs in one transaction, each with enqueue:
// every enabled integration whose sync_frequency (hourly, daily, weekly, or
// a cron expression, read in UTC) has come round since its last sync, unless
// a sync of it is already queued or running. Integrations are locked with
// SKIP LOCKED, so two dispatches at once never enqueue one integration
// twice.
func (e *Engine) Dispatch(ctx context.Context, now time.Time, enqueue EnqueueSync) (DispatchResult, error) {
	res := DispatchResult{Enqueued: []int64{}, Errors: map[int64]string{}}
	err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT i.id FROM integrations i
			WHERE coalesce(i.is_enabled, false) AND nullif(trim(i.sync_frequency), '') IS NOT NULL AND i.provider = ANY($1)
			ORDER BY i.id FOR UPDATE OF i SKIP LOCKED`, e.providerNames())
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		// A second statement, so a second snapshot: a row locked just after
		// another dispatch committed it must see the job_logs row that
		// dispatch wrote. The locking statement's snapshot, taken before
		// that commit, would not, and the sync would be enqueued twice.
		rows, err = tx.Query(ctx, `SELECT i.id, i.sync_frequency,
				greatest(i.last_sync_at, (SELECT max(l.start_time) FROM integration_sync_logs l WHERE l.integration_id = i.id)),
				EXISTS (SELECT 1 FROM job_logs j WHERE j.job_class = '`+SyncClassName+`' AND j.status IN ('queued', 'processing')
					AND j.payload->'parameters'->>'integration_id' = i.id::text)
			FROM integrations i WHERE i.id = ANY($1) ORDER BY i.id`, locked)
		if err != nil {
			return err
		}
		type candidate struct {
			id       int64
			freq     string
			lastSync *time.Time
			busy     bool
		}
		cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (candidate, error) {
			var c candidate
			return c, r.Scan(&c.id, &c.freq, &c.lastSync, &c.busy)
		})
		if err != nil {
			return err
		}
		for _, c := range cands {
			due, err := isDue(c.freq, c.lastSync, now)
			switch {
			case err != nil:
				res.Errors[c.id] = err.Error()
			case !due:
				res.NotDue++
			case c.busy:
				res.Busy = append(res.Busy, c.id)
			default:
				if err := enqueue(ctx, tx, SyncParams{IntegrationID: c.id}, now); err != nil {
					return fmt.Errorf("enqueue sync of integration %d: %w", c.id, err)
				}
				res.Enqueued = append(res.Enqueued, c.id)
			}
		}
		return nil
	})
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	return res, err
}

// isDue reports whether a sync_frequency has come round since the last
// sync (or sync attempt); never synced is due.
func isDue(freq string, last *time.Time, now time.Time) (bool, error) {
	var base time.Time
	if last != nil {
		base = *last
	}
	next, err := NextSync(freq, base)
	switch {
	case err != nil:
		return false, err
	case last == nil:
		return true, nil
	}
	return !next.After(now), nil
}

// NextSync is when sync_frequency freq (hourly, daily, weekly, or a cron
// expression in UTC) comes round after last.
func NextSync(freq string, last time.Time) (time.Time, error) {
	switch f := strings.ToLower(strings.TrimSpace(freq)); f {
	case "hourly":
		return last.Add(time.Hour), nil
	case "daily":
		return last.Add(24 * time.Hour), nil
	case "weekly":
		return last.Add(7 * 24 * time.Hour), nil
	}
	sched, err := schedule.ParseCron(freq, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("sync_frequency %q is not hourly, daily, weekly or a cron expression: %w", freq, err)
	}
	return sched.Next(last), nil
}
