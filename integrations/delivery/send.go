package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// tracer starts the deliveries' spans: OpenTelemetry's no-op unless the
// daemon installed a tracer provider (internal/tracing). Asked of the
// global provider each time, not kept (see integrations.tracer).
func tracer() trace.Tracer {
	return otel.Tracer("github.com/atis-edu/atis-scheduler/integrations/delivery")
}

// recordTimeout bounds each write that records what a send did: it runs
// even when the run's context has ended, so a message that went out is
// marked as such.
const recordTimeout = 10 * time.Second

// send delivers the claimed deliveries: one message each, or one digest
// when there are more than the integration's digest_over. After a failure
// that a retry may fix, the rest are released unsent for a later run: a
// receiver that is down costs one timeout per run, not one per message.
func (d *Dispatcher) send(ctx context.Context, t target, p Provider, s Settings, cs []claimed, r *IntegrationResult) {
	perMinute := t.RateLimit
	base := Request{IntegrationID: t.ID, IntegrationName: t.Name, Config: t.Config, Credentials: t.Credentials,
		Client: d.Limits.Client(t.ID, perMinute),
		Wait:   func(ctx context.Context) error { return d.Limits.WaitTurn(ctx, t.ID, perMinute) }}
	groups := make([][]claimed, 0, len(cs))
	if r.Digest = len(cs) > s.DigestOver; r.Digest {
		groups = append(groups, cs)
	} else {
		for _, c := range cs {
			groups = append(groups, []claimed{c})
		}
	}
	for i, g := range groups {
		req := base
		req.Digest, req.IdempotencyKey = r.Digest, idempotencyKey(t.ID, g)
		for _, c := range g {
			req.Notifications = append(req.Notifications, c.Notification)
		}
		r.Messages++
		msg, err := deliver(ctx, p, t, req, g)
		if err == nil {
			d.record(ctx, t, r, d.markDelivered(ctx, g))
			r.Delivered += len(g)
			continue
		}
		if r.Error == "" {
			r.Error = msg
		}
		gaveUp, recErr := d.markFailed(ctx, g, msg, errors.Is(err, ErrPermanent), s.MaxAttempts)
		d.record(ctx, t, r, recErr)
		r.Failed += len(g)
		r.GaveUp += gaveUp
		if d.Logger != nil {
			d.Logger.WarnContext(ctx, "notification delivery failed", slog.Int64("integration_id", t.ID),
				slog.String("provider", t.Provider), slog.Int("notifications", len(g)), slog.String("error", msg))
		}
		if !errors.Is(err, ErrPermanent) && i+1 < len(groups) {
			var rest []claimed
			for _, g := range groups[i+1:] {
				rest = append(rest, g...)
			}
			d.record(ctx, t, r, d.release(ctx, rest, g))
			r.Released = len(rest)
			return
		}
	}
}

// deliver sends one message under a span naming the integration, its
// provider, the deliveries and their attempt. A failure comes back with its
// message cut of the integration's credentials, as the span records it.
func deliver(ctx context.Context, p Provider, t target, req Request, g []claimed) (string, error) {
	ctx, span := tracer().Start(ctx, "atis.delivery", trace.WithAttributes(attribute.Int64("atis.integration_id", t.ID),
		attribute.String("atis.provider", t.Provider), attribute.Int("atis.notifications", len(g)),
		attribute.Int("atis.attempt", int(g[0].Attempt)), attribute.Bool("atis.digest", req.Digest)))
	defer span.End()
	err := p.Deliver(ctx, req)
	if err == nil {
		return "", nil
	}
	msg := redact.Credentials(t.Credentials).Cut(err.Error())
	span.SetStatus(codes.Error, redact.Text(msg))
	return msg, err
}

// record keeps the first error of recording a send's outcome.
func (d *Dispatcher) record(ctx context.Context, t target, r *IntegrationResult, err error) {
	if err == nil {
		return
	}
	if d.Logger != nil {
		d.Logger.ErrorContext(ctx, "record notification delivery", slog.Int64("integration_id", t.ID), slog.Any("error", err))
	}
	if r.Error == "" {
		r.Error = err.Error()
	}
}

// idempotencyKey is the same on every attempt to send the same message.
func idempotencyKey(integrationID int64, g []claimed) string {
	if len(g) == 1 {
		return fmt.Sprintf("atis-i%d-n%d", integrationID, g[0].Notification.ID)
	}
	h := sha256.New()
	for _, c := range g {
		fmt.Fprintf(h, "%d,", c.Notification.ID)
	}
	return fmt.Sprintf("atis-i%d-digest-%s", integrationID, hex.EncodeToString(h.Sum(nil))[:16])
}

// fence returns the ids and attempt numbers of g: a mark applies only
// while the row is still the same claim (still 'sending', same attempt).
func fence(g []claimed) ([]int64, []int32) {
	ids, attempts := make([]int64, len(g)), make([]int32, len(g))
	for i, c := range g {
		ids[i], attempts[i] = c.ID, c.Attempt
	}
	return ids, attempts
}

func (d *Dispatcher) markDelivered(ctx context.Context, g []claimed) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	ids, attempts := fence(g)
	_, err := d.Pool.Exec(ctx, `UPDATE notification_deliveries d
		SET status = 'delivered', delivered_at = localtimestamp, lease_until = NULL, last_error = NULL, updated_at = localtimestamp
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempt)
		WHERE d.id = c.id AND d.attempts = c.attempt AND d.status = 'sending'`, ids, attempts)
	if err != nil {
		return fmt.Errorf("mark %d deliveries delivered: %w", len(g), err)
	}
	return nil
}

// markFailed records a failed attempt: pending again after a backoff, or
// failed for good when permanent or out of attempts. It returns how many
// were given up.
func (d *Dispatcher) markFailed(ctx context.Context, g []claimed, msg string, permanent bool, maxAttempts int) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	ids, attempts := fence(g)
	var gaveUp int
	err := d.Pool.QueryRow(ctx, `WITH marked AS (
			UPDATE notification_deliveries d
			SET status = CASE WHEN $4 OR d.attempts >= $5 THEN 'failed' ELSE 'pending' END,
				last_error = $3, lease_until = NULL, updated_at = localtimestamp,
				next_attempt_at = localtimestamp + least($6::float8, $7::float8 * power(2, least(d.attempts - 1, 20))) * interval '1 millisecond'
			FROM unnest($1::bigint[], $2::int[]) AS c(id, attempt)
			WHERE d.id = c.id AND d.attempts = c.attempt AND d.status = 'sending'
			RETURNING d.status)
		SELECT count(*) FILTER (WHERE status = 'failed') FROM marked`,
		ids, attempts, truncate(msg), permanent, maxAttempts, float64(backoffMax.Milliseconds()), float64(backoffBase.Milliseconds())).
		Scan(&gaveUp)
	if err != nil {
		return 0, fmt.Errorf("mark %d deliveries failed: %w", len(g), err)
	}
	return gaveUp, nil
}

// release hands claimed deliveries that were not attempted back, the
// attempt not counted, to wait as long as the failed group's backoff: a
// receiver that is down is tried once per backoff, not once per run.
func (d *Dispatcher) release(ctx context.Context, g, failed []claimed) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	ids, attempts := fence(g)
	failedIDs, _ := fence(failed)
	_, err := d.Pool.Exec(ctx, `UPDATE notification_deliveries d
		SET status = 'pending', attempts = d.attempts - 1, lease_until = NULL, updated_at = localtimestamp,
			next_attempt_at = greatest(d.next_attempt_at, (SELECT max(f.next_attempt_at) FROM notification_deliveries f WHERE f.id = ANY($3)))
		FROM unnest($1::bigint[], $2::int[]) AS c(id, attempt)
		WHERE d.id = c.id AND d.attempts = c.attempt AND d.status = 'sending'`, ids, attempts, failedIDs)
	if err != nil {
		return fmt.Errorf("release %d deliveries: %w", len(g), err)
	}
	return nil
}

// maxErrorLen is the most bytes of an error kept in last_error and
// integration_sync_logs.error_message.
const maxErrorLen = 2000

// truncate cuts an error to maxErrorLen bytes at a character boundary:
// PostgreSQL refuses text that ends inside a UTF-8 sequence, and then the
// outcome of a send would go unrecorded.
func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	cut := maxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
