package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// Defaults of Dispatcher.
const (
	// DefaultBatch is the most deliveries of one integration claimed by
	// one run (and so listed in one digest).
	DefaultBatch = 100
	// DefaultLease is how long a claimed delivery belongs to the run that
	// claimed it. A run that dies while sending leaves it claimed; once the
	// lease ends another run sends it again.
	DefaultLease = 10 * time.Minute
	// DefaultIntegrationTimeout bounds one run's work for one integration;
	// it must stay well under the lease.
	DefaultIntegrationTimeout = 2 * time.Minute
	// DefaultConcurrency is how many integrations one run serves at once.
	DefaultConcurrency = 4
	// backoffBase and backoffMax: the n-th failed attempt waits
	// min(backoffBase*2^(n-1), backoffMax) before the next.
	backoffBase = 30 * time.Second
	backoffMax  = time.Hour
)

// Delivery statuses (notification_deliveries.status).
const (
	StatusPending   = "pending"
	StatusSending   = "sending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Statuses lists the delivery statuses.
var Statuses = []string{StatusPending, StatusSending, StatusDelivered, StatusFailed}

// Dispatcher delivers system_notifications to every enabled integration
// whose provider is one of Providers.
//
// Guarantee: a delivery row (notification_id, integration_id) is unique, is
// claimed by one run at a time (FOR UPDATE SKIP LOCKED, then status
// 'sending' with a lease, committed before anything is sent) and is marked
// delivered right after the send succeeds, fenced by its attempt number. So
// two runs at once, in one process or several, never send one notification
// to one integration twice. A crash between a successful send and the mark
// leaves the row 'sending'; it is sent again when its lease ends: at least
// once, never lost, with the same IdempotencyKey for the receiver to drop
// the duplicate.
type Dispatcher struct {
	Pool      *pgxpool.Pool
	Providers Providers
	// Limits paces requests under each integration's api_rate_limit; give
	// it the sync engine's, so that syncs and deliveries share one bucket
	// per integration. Required.
	Limits *ratelimit.Limiters
	Logger *slog.Logger

	// Batch, Lease, IntegrationTimeout and Concurrency default to the
	// constants above.
	Batch              int
	Lease              time.Duration
	IntegrationTimeout time.Duration
	Concurrency        int
}

// Result is what one run did; it is the run's job_logs.result.
type Result struct {
	Integrations map[int64]IntegrationResult `json:"integrations"`
}

// IntegrationResult is what one run did for one integration.
type IntegrationResult struct {
	Queued    int    `json:"queued"`
	Claimed   int    `json:"claimed"`
	Delivered int    `json:"delivered"`
	Failed    int    `json:"failed"`
	GaveUp    int    `json:"gave_up,omitempty"`
	Released  int    `json:"released,omitempty"`
	Digest    bool   `json:"digest,omitempty"`
	Messages  int    `json:"messages"`
	SyncLogID int64  `json:"sync_log_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

// target is an integrations row as the dispatcher reads it.
type target struct {
	ID          int64
	Name        string
	Type        string
	Provider    string
	Credentials json.RawMessage
	Config      json.RawMessage
	Institution *int64
	SystemWide  bool
	RateLimit   int // api_rate_limit per minute; 0: none
}

// Run queues the new matching notifications of every delivery integration
// and sends what is due, integrations side by side: one that is down or
// slow costs its own time only.
func (d *Dispatcher) Run(ctx context.Context) (Result, error) {
	res := Result{Integrations: map[int64]IntegrationResult{}}
	targets, err := d.targets(ctx)
	if err != nil {
		return res, err
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, cmp.Or(d.Concurrency, DefaultConcurrency))
	)
	for _, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return res, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := d.serve(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			res.Integrations[t.ID] = r
			if err != nil {
				errs = append(errs, fmt.Errorf("integration %d: %w", t.ID, err))
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, errors.Join(errs...)
}

func (d *Dispatcher) targets(ctx context.Context) ([]target, error) {
	names := make([]string, 0, len(d.Providers))
	for n := range d.Providers {
		names = append(names, n)
	}
	rows, err := d.Pool.Query(ctx, `SELECT id, name, integration_type, provider, coalesce(credentials, '{}'), coalesce(config, '{}'),
			institution_id, coalesce(is_system_wide, false), coalesce(api_rate_limit, 0)
		FROM integrations WHERE coalesce(is_enabled, false) AND provider = ANY($1) ORDER BY id`, names)
	if err != nil {
		return nil, fmt.Errorf("list delivery integrations: %w", err)
	}
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[target])
	if err != nil {
		return nil, fmt.Errorf("list delivery integrations: %w", err)
	}
	return slices.DeleteFunc(ts, func(t target) bool { return !d.Providers[t.Provider].Supports(t.Type) }), nil
}

// serve does one run's work for one integration. Its error is a database
// error; a provider's failure is recorded on the deliveries and in the
// sync log.
func (d *Dispatcher) serve(ctx context.Context, t target) (IntegrationResult, error) {
	var r IntegrationResult
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(d.IntegrationTimeout, DefaultIntegrationTimeout))
	defer cancel()
	start := time.Now()
	provider := d.Providers[t.Provider]
	settings, err := ParseSettings(t.Config)
	if err == nil {
		err = provider.Validate(t.Config, t.Credentials)
	}
	if err != nil {
		// Nothing is queued for a misconfigured integration: once fixed, it
		// sends what has come since it was created.
		r.Error = redact.Credentials(t.Credentials).Cut(err.Error())
		return r, d.configFailed(ctx, t, start, &r)
	}
	if r.Queued, err = d.queue(ctx, t, settings); err != nil {
		return r, err
	}
	claimed, err := d.claim(ctx, t.ID)
	if err != nil || len(claimed) == 0 {
		return r, err
	}
	r.Claimed = len(claimed)
	d.send(ctx, t, provider, settings, claimed, &r)
	return r, d.writeLog(ctx, t, start, &r)
}

// queue adds a pending delivery for every notification that matches the
// integration's filter, is not older than the integration, is showing
// (start_at come, end_at not passed) and has none.
func (d *Dispatcher) queue(ctx context.Context, t target, s Settings) (int, error) {
	tag, err := d.Pool.Exec(ctx, `INSERT INTO notification_deliveries (notification_id, integration_id)
		SELECT n.id, i.id FROM integrations i JOIN system_notifications n ON n.created_at >= i.created_at
		WHERE i.id = $1
		  AND coalesce(n.level, 'info')::text = ANY($2::text[])
		  AND (cardinality($3::text[]) = 0 OR n.type::text = ANY($3::text[]))
		  AND (cardinality($4::text[]) = 0
		       OR jsonb_typeof(n.target_institutions) IS DISTINCT FROM 'array'
		       OR jsonb_array_length(n.target_institutions) = 0
		       OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(n.target_institutions) e WHERE e = ANY($4::text[])))
		  AND (n.start_at IS NULL OR n.start_at <= localtimestamp) AND (n.end_at IS NULL OR n.end_at > localtimestamp)
		  AND NOT EXISTS (SELECT 1 FROM notification_deliveries x WHERE x.notification_id = n.id AND x.integration_id = i.id)
		ON CONFLICT (notification_id, integration_id) DO NOTHING`,
		t.ID, s.levels(), nonNil(s.Types), s.institutionTexts(t.Institution, t.SystemWide))
	if err != nil {
		return 0, fmt.Errorf("queue deliveries of integration %d: %w", t.ID, err)
	}
	return int(tag.RowsAffected()), nil
}

// claimed is one delivery this run owns, with its notification.
type claimed struct {
	ID      int64
	Attempt int32
	Notification
}

// claim takes the integration's due deliveries — pending ones whose
// next_attempt_at has come, and 'sending' ones whose lease has ended (their
// run died) — and marks them 'sending' under a lease, in one committed
// statement, before anything is sent.
func (d *Dispatcher) claim(ctx context.Context, integrationID int64) ([]claimed, error) {
	rows, err := d.Pool.Query(ctx, `UPDATE notification_deliveries d
		SET status = 'sending', attempts = d.attempts + 1, lease_until = localtimestamp + $3 * interval '1 millisecond', updated_at = localtimestamp
		FROM system_notifications n
		WHERE n.id = d.notification_id AND d.id IN (
			SELECT id FROM notification_deliveries
			WHERE integration_id = $1 AND next_attempt_at <= localtimestamp
			  AND (status = 'pending' OR (status = 'sending' AND lease_until <= localtimestamp))
			ORDER BY notification_id LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING d.id, d.attempts, n.id, n.type, n.title, n.message, coalesce(n.level, 'info'), coalesce(n.action_text, ''),
			coalesce(n.action_url, ''), coalesce(n.target_institutions, '[]'), coalesce(n.created_at, localtimestamp)`,
		integrationID, cmp.Or(d.Batch, DefaultBatch), cmp.Or(d.Lease, DefaultLease).Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of integration %d: %w", integrationID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		var targets json.RawMessage
		err := r.Scan(&c.ID, &c.Attempt, &c.Notification.ID, &c.Type, &c.Title, &c.Message, &c.Level, &c.ActionText, &c.ActionURL,
			&targets, &c.CreatedAt)
		c.TargetInstitutions = parseIDs(targets)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of integration %d: %w", integrationID, err)
	}
	slices.SortFunc(out, func(a, b claimed) int { return cmp.Compare(a.Notification.ID, b.Notification.ID) })
	return out, nil
}

// parseIDs reads target_institutions: numbers or numeric strings; anything
// else is left out.
func parseIDs(raw json.RawMessage) []int64 {
	var items []json.RawMessage
	_ = json.Unmarshal(raw, &items)
	out := make([]int64, 0, len(items))
	for _, item := range items {
		var f FlexInt
		if json.Unmarshal(item, &f) == nil {
			out = append(out, int64(f))
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
