package integrations

import (
	"cmp"
	"context"
	"crypto/md5" //nolint:gosec // change detection, not security
	"encoding/hex"
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
	FetchMs   int64  `json:"fetch_ms"`
	ApplyMs   int64  `json:"apply_ms"`

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
// says so. Records are staged page by page and applied in one transaction
// once every page has arrived, with the sync log and last_sync_at: a sync
// that fails or is cancelled midway changes no record.
func (e *Engine) Sync(ctx context.Context, p SyncParams, initiatedBy *int64) (SyncResult, error) {
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

// run stages every page in a temporary table on the sync's connection (a
// goroutine fetches the next page while the last is copied in; one page at
// most waits, so memory stays flat), then applies everything in one
// transaction. A failure before the commit changes no record.
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
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS atis_sync_stage;
		CREATE TEMP TABLE atis_sync_stage (seq bigserial, external_id text NOT NULL, payload jsonb NOT NULL, hash text NOT NULL)`); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS atis_sync_stage") }()

	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	pages := make(chan provider.Page, 1)
	fetched := make(chan error, 1)
	go func() {
		defer close(pages)
		fetched <- prov.Fetch(fetchCtx, req, func(p provider.Page) error {
			select {
			case pages <- p:
				return nil
			case <-fetchCtx.Done():
				return fetchCtx.Err()
			}
		})
	}()
	var stageErr error
	for p := range pages {
		if stageErr == nil {
			if stageErr = e.stage(ctx, conn, p, res); stageErr != nil {
				stopFetch() // and drain what is left
			}
		}
	}
	fetchErr := <-fetched
	res.FetchMs = time.Since(start).Milliseconds()
	counted()
	switch {
	case stageErr != nil:
		return stageErr
	case fetchErr != nil:
		return fetchErr
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return e.apply(ctx, tx, in, syncType, start, res) })
}

// stage copies one page into the staging table.
func (e *Engine) stage(ctx context.Context, conn *pgx.Conn, p provider.Page, res *SyncResult) error {
	res.Pages++
	res.Bytes += p.Bytes
	res.Processed += len(p.Records) + len(p.Invalid)
	res.Failed += len(p.Invalid)
	for _, s := range p.Invalid {
		if len(res.invalid) < 10 {
			res.invalid = append(res.invalid, res.secrets.Cut(fmt.Sprintf("page %d, %s", p.Number, s)))
		}
	}
	rows := make([][]any, len(p.Records))
	for i, r := range p.Records {
		// The hash of the provider's bytes, here, overlapped with fetching.
		// A provider that re-formats an unchanged record costs a needless
		// update, never a missed change.
		sum := md5.Sum(r.Payload)
		rows[i] = []any{r.ExternalID, r.Payload, hex.EncodeToString(sum[:])}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"atis_sync_stage"}, []string{"external_id", "payload", "hash"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("page %d: stage records: %w", p.Number, err)
	}
	return nil
}

// apply writes the staged records — only new and changed ones, compared by
// hash before the upsert so that unchanged records cost no write — marks
// records a full sync no longer saw as deleted, and closes the sync log and
// advances last_sync_at, all in the caller's transaction.
func (e *Engine) apply(ctx context.Context, tx pgx.Tx, in integration, syncType string, start time.Time, res *SyncResult) error {
	now := time.Now().UTC()
	// Memory for the deduplication's hash (55 MB at a million records).
	// The integration may not go away while its records go in (what a
	// foreign key would check row by row, at the cost of the whole write).
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		return err
	}
	var alive bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM integrations WHERE id = $1 FOR KEY SHARE)", in.ID).Scan(&alive); err != nil {
		return err
	}
	if !alive {
		return fmt.Errorf("%w: integration %d was deleted during the sync", provider.ErrPermanent, in.ID)
	}
	// Statistics let the planner hash the deduplication below, not sort
	// (or loop over) a million staged payloads.
	if _, err := tx.Exec(ctx, "ANALYZE atis_sync_stage"); err != nil {
		return err
	}
	var distinct int
	// The latest record of each id: those with no later one of the same id.
	// (DISTINCT ON sorted every payload, 250 MB on disk at a million.)
	err := tx.QueryRow(ctx, `WITH latest AS (
			SELECT s.external_id, s.payload, s.hash FROM atis_sync_stage s
			WHERE NOT EXISTS (SELECT 1 FROM atis_sync_stage d WHERE d.external_id = s.external_id AND d.seq > s.seq)
		), changed AS (
			SELECT l.* FROM latest l LEFT JOIN integration_records r ON r.integration_id = $1 AND r.external_id = l.external_id
			WHERE r.id IS NULL OR r.payload_hash <> l.hash OR r.deleted_at IS NOT NULL
		), written AS (
			INSERT INTO integration_records AS r (integration_id, external_id, payload, payload_hash, first_synced_at, last_synced_at)
			SELECT $1, external_id, payload, hash, $2, $2 FROM changed
			ON CONFLICT (integration_id, external_id) DO UPDATE SET payload = EXCLUDED.payload, payload_hash = EXCLUDED.payload_hash,
				last_synced_at = EXCLUDED.last_synced_at, deleted_at = NULL
			RETURNING (xmax = 0) AS inserted
		)
		SELECT (SELECT count(*) FROM latest), count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written`,
		in.ID, now).Scan(&distinct, &res.Created, &res.Updated)
	if err != nil {
		return fmt.Errorf("write records: %w", err)
	}
	res.Unchanged = distinct - res.Created - res.Updated
	if syncType == SyncFull {
		if err := e.markDeleted(ctx, tx, in.ID, distinct, now, res); err != nil {
			return err
		}
	}
	res.Millis = time.Since(start).Milliseconds()
	res.ApplyMs = res.Millis - res.FetchMs
	if _, err := tx.Exec(ctx, `UPDATE integrations SET last_sync_at = $2 WHERE id = $1`, in.ID, start); err != nil {
		return err
	}
	return e.closeLog(ctx, tx, res, "completed", "", now)
}

// markDeleted marks the records a full sync did not see as deleted.
func (e *Engine) markDeleted(ctx context.Context, tx pgx.Tx, integrationID int64, seen int, now time.Time, res *SyncResult) error {
	// Every record seen is live now (written, revived or unchanged): when
	// the live count equals what was seen, none is missing and the
	// anti-join below has nothing to find.
	var live int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NULL`,
		integrationID).Scan(&live); err != nil {
		return err
	}
	switch {
	case seen == 0 && live > 0:
		return fmt.Errorf("the full sync returned no records: refusing to mark all %d records deleted (check records_path, or delete them by hand if the provider really has none)", live)
	case live == seen:
		return nil
	}
	// Whatever the statistics say about integration_records (which this
	// transaction may just have filled), the anti-join must probe an index,
	// not scan the stage once per record: that plan took 10 minutes at 100k.
	// (apply has analyzed the stage already; a plain column index needs no
	// statistics of its own).
	if _, err := tx.Exec(ctx, "CREATE INDEX ON atis_sync_stage (external_id)"); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `UPDATE integration_records r SET deleted_at = $2
		WHERE r.integration_id = $1 AND r.deleted_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM atis_sync_stage s WHERE s.external_id = r.external_id)`, integrationID, now)
	if err != nil {
		return fmt.Errorf("mark deleted records: %w", err)
	}
	res.Deleted = int(tag.RowsAffected())
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
