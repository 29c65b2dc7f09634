package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// TickResult is what one scheduling cycle did.
type TickResult struct {
	// Planned rows got a new next_run_at (or an error).
	Planned int
	// Fired rows were due and handled.
	Fired int
	// Enqueued runs went to River.
	Enqueued int
	// More is true when a batch was full: run another cycle at once.
	More bool
	// NextDue is the earliest next_run_at left, zero when there is none.
	NextDue time.Time

	paused []string // the job classes paused during the cycle, for prepare
}

// row is one scheduled_jobs row as the scheduler reads it.
type row struct {
	ID                   int64
	Name, JobClass       string
	Parameters           json.RawMessage
	Cron                 *string
	Interval             *int32
	NextRunAt, LastDueAt *time.Time
	Timezone             *string
	Misfire, Overlap     string
	MaxAttempts          *int32
	RetryDelay           *int32
	IsActive             bool
	LastRunMessage       *string
	ScheduleError        *string
}

const rowColumns = `id, name, job_class, coalesce(parameters, '{}'::jsonb), cron_expression, interval_minutes,
	` + finiteNextRunAt + `, ` + finiteLastDueAt + `, timezone, misfire_policy, overlap_policy, max_attempts, retry_delay_minutes,
	coalesce(is_active, false), last_run_message, schedule_error`

// A TIMESTAMP column may hold what no time.Time scan accepts ('infinity',
// '-infinity') or what no schedule needs (4713 BC, year 294276): an admin
// can write any of them. Read within year 1 to 9999, so that the far past
// is due now and the far future waits.
const (
	finiteNextRunAt = `CASE WHEN next_run_at IS NOT NULL THEN least(greatest(next_run_at, '0001-01-01'::timestamp), '9999-12-31 23:59:59'::timestamp) END`
	finiteLastDueAt = `CASE WHEN last_due_at IS NOT NULL THEN least(greatest(last_due_at, '0001-01-01'::timestamp), '9999-12-31 23:59:59'::timestamp) END`
)

func scanRow(rows pgx.CollectableRow) (row, error) {
	var r row
	err := rows.Scan(&r.ID, &r.Name, &r.JobClass, &r.Parameters, &r.Cron, &r.Interval, &r.NextRunAt, &r.LastDueAt,
		&r.Timezone, &r.Misfire, &r.Overlap, &r.MaxAttempts, &r.RetryDelay, &r.IsActive, &r.LastRunMessage, &r.ScheduleError)
	return r, err
}

// claim locks up to BatchSize rows matching where (with its ORDER BY; its
// parameters are args from $2 on), skipping the rows another replica holds,
// and says whether there may be more.
func (s *Scheduler) claim(ctx context.Context, tx pgx.Tx, where string, args ...any) (rows []row, more bool, err error) {
	res, err := tx.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs WHERE `+where+`
		LIMIT $1 FOR UPDATE SKIP LOCKED`, append([]any{s.cfg.BatchSize}, args...)...)
	if err != nil {
		return nil, false, err
	}
	rows, err = pgx.CollectRows(res, scanRow)
	return rows, len(rows) == s.cfg.BatchSize, err
}

// Tick runs one scheduling cycle: plan the rows that need it, enqueue the
// due ones, and find the next due time.
func (s *Scheduler) Tick(ctx context.Context) (TickResult, error) {
	var res TickResult
	planned, morePlans, err := s.plan(ctx, s.backoffIDs())
	if err != nil {
		return res, err
	}
	res.Planned = planned
	paused, all, err := s.pausedClasses(ctx)
	if err != nil {
		return res, err
	}
	backoff := s.backoffIDs()
	res.paused = paused
	if !all {
		fired, enqueued, moreDue, err := s.enqueueDue(ctx, paused, backoff)
		if err != nil {
			return res, err
		}
		res.Fired, res.Enqueued, res.More = fired, enqueued, moreDue
	}
	res.More = res.More || morePlans
	if all {
		return res, nil
	}
	var next pgtype.Timestamp // may be ±infinity (see finiteNextRunAt)
	if err := s.pool.QueryRow(ctx, `SELECT min(next_run_at) FROM scheduled_jobs
		WHERE is_active AND NOT needs_plan AND NOT (job_class = ANY($1)) AND NOT (id = ANY($2))`,
		paused, backoff).Scan(&next); err != nil {
		return res, fmt.Errorf("find next due time: %w", err)
	}
	switch {
	case !next.Valid, next.InfinityModifier == pgtype.Infinity:
	case next.InfinityModifier == pgtype.NegativeInfinity:
		res.NextDue = s.cfg.Now()
	default:
		res.NextDue = next.Time
	}
	if t := s.nextBackoff(); !t.IsZero() && (res.NextDue.IsZero() || t.Before(res.NextDue)) {
		res.NextDue = t
	}
	return res, nil
}
