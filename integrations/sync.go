package integrations

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"
	"github.com/atis-edu/atis-scheduler/internal/advisorylock"
	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// Sync types (integration_sync_logs.sync_type).
const (
	SyncFull        = "full"
	SyncIncremental = "incremental"
)

// Observer counts synced records (metrics). Optional.
type Observer interface {
	SyncRecords(integration, outcome string, n int)
}

// Engine runs integration syncs. One Engine serves a whole daemon: its rate
// limiters are per process.
type Engine struct {
	Pool      *pgxpool.Pool
	Providers provider.Providers
	Observer  Observer
	Logger    *slog.Logger

	// Limits paces the requests to each integration's provider; share it
	// with everything else that calls providers (deliveries). Defaults to
	// one of the Engine's own.
	Limits *ratelimit.Limiters

	// ChunkRecords is how many records are written at a time while pages
	// arrive. Defaults to DefaultChunkRecords (10,000).
	ChunkRecords int

	limitsOnce sync.Once
}

// integration is an integrations row as a sync reads it.
type integration struct {
	ID          int64
	Name        string
	Type        string
	Provider    string
	Credentials json.RawMessage
	Config      json.RawMessage
	Enabled     bool
	RateLimit   *int32
}

// SyncParams are the parameters of an integration_sync run.
type SyncParams struct {
	IntegrationID int64  `json:"integration_id"`
	SyncType      string `json:"sync_type"`
}

// SyncResult is what a sync did; it is the run's job_logs.result.
type SyncResult struct {
	SyncLogID int64  `json:"sync_log_id,omitempty"`
	Skipped   string `json:"skipped,omitempty"`
	SyncType  string `json:"sync_type,omitempty"`
	Processed int    `json:"records_processed"`
	Created   int    `json:"records_created"`
	Updated   int    `json:"records_updated"`
	Unchanged int    `json:"records_unchanged"`
	Deleted   int    `json:"records_deleted"`
	Failed    int    `json:"records_failed"`
	Pages     int    `json:"pages"`
	Requests  int64  `json:"requests"`
	Retries   int64  `json:"retries"`
	Bytes     int64  `json:"bytes"`
	Millis    int64  `json:"duration_ms"`
	// FetchMs is the time until the last page had arrived, records being
	// written meanwhile; ApplyMs the time it took after that to write the
	// last chunk, mark deletions and commit.
	FetchMs int64 `json:"fetch_ms"`
	ApplyMs int64 `json:"apply_ms"`

	invalid []string
	secrets redact.Secrets // the credentials' values, cut from every message
}

// permanentError is a failure no retry fixes, with the message the sync
// log shows.
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }
func (e *permanentError) Unwrap() error { return provider.ErrPermanent }

// Sync runs one sync of an integration. A second sync of the same
// integration while one runs (in this process or another) is skipped and
// says so. Records are written chunk by chunk as pages arrive, in one
// transaction that commits, with the sync log and last_sync_at, only once
// the last page has arrived: a sync that fails or is cancelled midway
// changes no record.
func (e *Engine) Sync(ctx context.Context, p SyncParams, initiatedBy *int64) (SyncResult, error) {
	ctx, span := tracer().Start(ctx, "atis.sync", trace.WithAttributes(attribute.Int64("atis.integration_id", p.IntegrationID)))
	defer span.End()
	res, err := e.syncUntraced(ctx, p, initiatedBy)
	span.SetAttributes(attribute.String("atis.sync_type", res.SyncType), attribute.Int64("atis.sync_log_id", res.SyncLogID),
		attribute.Int("atis.pages", res.Pages), attribute.Int("atis.records", res.Processed))
	switch {
	case err != nil:
		span.SetStatus(codes.Error, redact.Text(res.secrets.Cut(err.Error())))
	case res.Skipped != "":
		span.SetAttributes(attribute.Bool("atis.skipped", true))
	}
	return res, err
}

// tracer starts the sync's spans (one per sync, one per page): the no-op
// unless the daemon installed a tracer provider (internal/tracing). It is
// asked of the global provider each time, not kept: a tracer taken before
// the first provider is installed stays with that first one.
func tracer() trace.Tracer { return otel.Tracer("github.com/atis-edu/atis-scheduler/integrations") }

// syncUntraced is Sync without its span.
func (e *Engine) syncUntraced(ctx context.Context, p SyncParams, initiatedBy *int64) (SyncResult, error) {
	var res SyncResult
	in, err := e.load(ctx, p.IntegrationID)
	if err != nil {
		return res, err
	}
	conn, err := e.Pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", advisorylock.IntegrationSync, advisorylock.Key(in.ID)).Scan(&locked); err != nil {
		return res, err
	}
	if !locked {
		res.Skipped = fmt.Sprintf("a sync of integration %d (%s) is already running", in.ID, in.Name)
		return res, nil
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1, $2)", advisorylock.IntegrationSync, advisorylock.Key(in.ID)); err != nil {
			_ = conn.Conn().Close(unlockCtx) // closing the session frees the lock
		}
	}()

	start := time.Now().UTC()
	prov, syncType, since, planErr := e.plan(ctx, in, p.SyncType)
	res.SyncType = syncType
	if res.SyncLogID, err = e.openLog(ctx, in.ID, syncType, start, initiatedBy); err != nil {
		return res, err
	}
	res.secrets = append(redact.Credentials(in.Credentials), redact.HeaderValues(in.Config)...)
	if planErr != nil { // a configuration the engine refuses (permanent), or a database error (retried)
		return res, e.closeFailed(ctx, in, &res, start, planErr)
	}
	err = e.run(ctx, conn.Conn(), in, prov, syncType, since, start, &res)
	if err != nil {
		return res, e.closeFailed(ctx, in, &res, start, err)
	}
	e.observe(in, &res)
	return res, nil
}

func (e *Engine) load(ctx context.Context, id int64) (integration, error) {
	var in integration
	err := e.Pool.QueryRow(ctx, `SELECT id, name, integration_type, provider, coalesce(credentials, '{}'), coalesce(config, '{}'),
			coalesce(is_enabled, false), api_rate_limit
		FROM integrations WHERE id = $1`, id).
		Scan(&in.ID, &in.Name, &in.Type, &in.Provider, &in.Credentials, &in.Config, &in.Enabled, &in.RateLimit)
	if errors.Is(err, pgx.ErrNoRows) {
		return in, fmt.Errorf("%w: integration %d does not exist", provider.ErrPermanent, id)
	}
	if err != nil {
		return in, fmt.Errorf("load integration %d: %w", id, err)
	}
	if !in.Enabled {
		return in, fmt.Errorf("%w: integration %d (%s) is disabled", provider.ErrPermanent, in.ID, in.Name)
	}
	return in, nil
}

// plan picks the provider and the sync type: full on the first sync,
// incremental afterwards when the provider can, unless asked.
func (e *Engine) plan(ctx context.Context, in integration, asked string) (provider.Provider, string, time.Time, error) {
	syncType := asked
	prov, ok := e.Providers[in.Provider]
	if !ok {
		names := make([]string, 0, len(e.Providers))
		for n := range e.Providers {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, cmp.Or(syncType, SyncFull), time.Time{}, provider.ConfigError(fmt.Errorf("unknown provider %q (known: %s)", in.Provider, strings.Join(names, ", ")))
	}
	supported, incremental := prov.Supports(in.Type, in.Config)
	if !supported {
		return nil, cmp.Or(syncType, SyncFull), time.Time{}, provider.ConfigError(fmt.Errorf("provider %s does not support integration_type %q", in.Provider, in.Type))
	}
	var since *time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT max(start_time) FROM integration_sync_logs WHERE integration_id = $1 AND status = 'completed'`,
		in.ID).Scan(&since); err != nil {
		return nil, cmp.Or(syncType, SyncFull), time.Time{}, err
	}
	switch {
	case syncType == "" && since != nil && incremental:
		syncType = SyncIncremental
	case syncType == "":
		syncType = SyncFull
	case syncType == SyncIncremental && !incremental:
		return nil, syncType, time.Time{}, provider.ConfigError(fmt.Errorf("integration %d cannot sync incrementally: provider %s cannot with this config "+
			"(http_json needs updated_since_param, scim filter_last_modified; ics and csv are always full)", in.ID, in.Provider))
	case syncType == SyncIncremental && since == nil:
		syncType = SyncFull // nothing to be incremental from
	}
	var from time.Time
	if since != nil {
		from = *since
	}
	return prov, syncType, from, nil
}

func (e *Engine) openLog(ctx context.Context, integrationID int64, syncType string, start time.Time, initiatedBy *int64) (int64, error) {
	var id int64
	err := e.Pool.QueryRow(ctx, `INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, status, initiated_by, created_at, updated_at)
		VALUES ($1, $2, $3, 'running', $4, $3, $3) RETURNING id`, integrationID, syncType, start, initiatedBy).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("open sync log: %w", err)
	}
	return id, nil
}

// run writes the records as pages arrive, in one transaction on the
// sync's connection that commits only once the last page has arrived (see
// writer): a failure before the commit changes no record. The provider
// fetches and the records are hashed on one goroutine while this one writes
// the chunk before; at most three chunks are held (building, queued,
// writing), so memory stays flat whatever the sync's size.
func (e *Engine) run(ctx context.Context, conn *pgx.Conn, in integration, prov provider.Provider, syncType string,
	since, start time.Time, res *SyncResult) error {
	tr := e.limits().Transport(in.ID, int(deref(in.RateLimit)))
	req := provider.FetchRequest{Config: in.Config, Credentials: in.Credentials, Incremental: syncType == SyncIncremental, Since: since,
		Client: &http.Client{Transport: tr}}
	counted := func() {
		res.Requests = tr.Requests()
		res.Retries = max(0, res.Requests-int64(res.Pages))
	}
	defer counted() // for a failed sync's log, written after this returns

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin the sync's transaction: %w", err)
	}
	defer func() { // a no-op once committed
		rollbackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rollbackCtx)
	}()
	w, err := openWriter(ctx, tx, in.ID, syncType == SyncFull)
	if err != nil {
		return err
	}
	b, fetchErr, writeErr := e.pump(ctx, prov, req, w, start, res)
	res.Pages, res.Bytes, res.Processed, res.Failed, res.invalid = b.pages, b.bytes, b.processed, b.failed, b.invalid
	counted()
	switch {
	case writeErr != nil:
		return writeErr
	case fetchErr != nil:
		return fetchErr
	}
	return e.finish(ctx, tx, w, in, syncType, start, res)
}

// pump runs the provider's fetch on a goroutine that turns pages into
// chunks, and writes each chunk with w as it comes. A write error stops the
// fetch. It returns the fetch's tallies and errors once the fetch has ended.
func (e *Engine) pump(ctx context.Context, prov provider.Provider, req provider.FetchRequest, w *writer, start time.Time,
	res *SyncResult) (b *batcher, fetchErr, writeErr error) {
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	b = newBatcher(cmp.Or(e.ChunkRecords, DefaultChunkRecords), DefaultChunkBytes, w.fresh)
	chunks := make(chan *chunk, 1)
	fetched := make(chan error, 1)
	send := func(c *chunk) error {
		if c == nil {
			return nil
		}
		select {
		case chunks <- c:
			return nil
		case <-fetchCtx.Done():
			return fetchCtx.Err()
		}
	}
	go func() {
		defer close(chunks)
		pageStart := time.Now()
		err := prov.Fetch(fetchCtx, req, func(p provider.Page) error {
			c := b.add(p, res.secrets.Cut)
			tracePage(ctx, pageStart, p)
			err := send(c)
			pageStart = time.Now() // the wait for the writer is no page's
			return err
		})
		if err == nil {
			err = send(b.flush())
		}
		res.FetchMs = time.Since(start).Milliseconds() // read after fetched
		fetched <- err
	}()
	for c := range chunks {
		if writeErr == nil {
			if writeErr = w.write(ctx, c); writeErr != nil {
				stopFetch() // and drain what is left
			}
		}
	}
	return b, <-fetched, writeErr
}

// tracePage records a page's span under the sync's: from when the page
// before was handed to the writer (the start of this page's fetch) to this
// page's arrival.
func tracePage(ctx context.Context, start time.Time, p provider.Page) {
	_, span := tracer().Start(ctx, "atis.sync.page", trace.WithTimestamp(start), trace.WithAttributes(
		attribute.Int("atis.page", p.Number), attribute.Int("atis.records", len(p.Records)),
		attribute.Int("atis.invalid", len(p.Invalid)), attribute.Int64("atis.bytes", p.Bytes)))
	span.End()
}

// finish marks what a full sync did not see as deleted, advances
// last_sync_at, closes the sync log and commits.
func (e *Engine) finish(ctx context.Context, tx pgx.Tx, w *writer, in integration, syncType string, start time.Time, res *SyncResult) error {
	res.Created, res.Updated, res.Unchanged = w.created, w.updated, w.unchanged
	if syncType == SyncFull {
		deleted, err := w.markDeleted(ctx)
		if err != nil {
			return err
		}
		res.Deleted = deleted
	}
	if _, err := tx.Exec(ctx, `UPDATE integrations SET last_sync_at = $2 WHERE id = $1`, in.ID, start); err != nil {
		return fmt.Errorf("advance last_sync_at: %w", err)
	}
	end := time.Now().UTC()
	res.Millis = end.Sub(start).Milliseconds()
	res.ApplyMs = res.Millis - res.FetchMs
	if err := e.closeLog(ctx, tx, res, "completed", "", end); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit the sync: %w", err)
	}
	return nil
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// closeLog writes the sync log row's outcome.
func (e *Engine) closeLog(ctx context.Context, q execer, res *SyncResult, status, message string, end time.Time) error {
	summary, _ := json.Marshal(map[string]any{"pages": res.Pages, "requests": res.Requests, "retries": res.Retries, "bytes": res.Bytes,
		"unchanged": res.Unchanged, "deleted": res.Deleted, "duration_ms": res.Millis, "fetch_ms": res.FetchMs, "apply_ms": res.ApplyMs})
	details := []byte("{}")
	if len(res.invalid) > 0 {
		details, _ = json.Marshal(map[string]any{"invalid_records": res.Failed, "invalid_records_sample": res.invalid})
	}
	_, err := q.Exec(ctx, `UPDATE integration_sync_logs SET status = $2, end_time = $3, records_processed = $4, records_created = $5,
			records_updated = $6, records_failed = $7, error_message = nullif($8, ''), error_details = $9, sync_summary = $10, updated_at = $3
		WHERE id = $1`, res.SyncLogID, status, end, res.Processed, res.Created, res.Updated, res.Failed, message, details, summary)
	if err != nil {
		return fmt.Errorf("close sync log %d: %w", res.SyncLogID, err)
	}
	return nil
}

// closeFailed ends the sync log row failed (or cancelled, on shutdown),
// records a security event when the provider refused the credentials, and
// returns the error the run ends with: ctx's for a shutdown (River runs it
// again), a permanent one for configuration (no retry), else cause.
func (e *Engine) closeFailed(ctx context.Context, in integration, res *SyncResult, start time.Time, cause error) error {
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res.Millis = time.Since(start).Milliseconds()
	// A provider's answer quoted in the message may echo the credentials
	// it was sent: they are cut before the message goes anywhere.
	status, message := "failed", res.secrets.Cut(strings.TrimPrefix(cause.Error(), provider.ErrPermanent.Error()+": "))
	if ctx.Err() != nil {
		status, message = "cancelled", "cancelled: the daemon stopped during the sync; it runs again"
	}
	if err := e.closeLog(recordCtx, e.Pool, res, status, message, time.Now().UTC()); err != nil {
		return errors.Join(cause, err)
	}
	var auth *provider.AuthError
	if errors.As(cause, &auth) {
		if _, err := e.Pool.Exec(recordCtx, `INSERT INTO security_events (event_type, severity, description, event_data)
			VALUES ('integration_auth_failed', 'warning', $1, $2)`,
			fmt.Sprintf("integration %d (%s) was refused by its provider (HTTP %d)", in.ID, in.Name, auth.Status),
			map[string]any{"integration_id": in.ID, "provider": in.Provider, "status": auth.Status, "sync_log_id": res.SyncLogID}); err != nil {
			return errors.Join(cause, err)
		}
	}
	if e.Logger != nil {
		e.Logger.WarnContext(ctx, "integration sync "+status, slog.Int64("integration_id", in.ID), slog.Int64("sync_log_id", res.SyncLogID),
			slog.String("error", message))
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(cause, provider.ErrPermanent):
		return &permanentError{msg: message}
	default:
		return errors.New(message)
	}
}

func (e *Engine) observe(in integration, res *SyncResult) {
	if e.Observer == nil {
		return
	}
	for outcome, n := range map[string]int{"created": res.Created, "updated": res.Updated, "unchanged": res.Unchanged,
		"deleted": res.Deleted, "failed": res.Failed} {
		if n > 0 {
			e.Observer.SyncRecords(in.Name, outcome, n)
		}
	}
}

// limits is Limits, made on first use when none was given.
func (e *Engine) limits() *ratelimit.Limiters {
	e.limitsOnce.Do(func() {
		if e.Limits == nil {
			e.Limits = &ratelimit.Limiters{}
		}
	})
	return e.Limits
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// SyncClassName is the job class of sync runs (job_logs.job_class).
const SyncClassName = "integration_sync"
