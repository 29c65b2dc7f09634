package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/workers"
)

// plan computes next_run_at for rows that were inserted or whose schedule
// changed, and explains the rows that cannot be scheduled: a batch with a
// few set-based statements, or its rows one by one when it fails (inBatch).
func (s *Scheduler) plan(ctx context.Context, backoff []int64) (planned int, more bool, err error) {
	now := s.cfg.Now().UTC()
	var done []firing
	err = inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		var todo []row
		todo, more, err = s.claim(ctx, tx, `needs_plan AND NOT (id = ANY($2)) ORDER BY id`, backoff)
		if err != nil {
			return err
		}
		if len(todo) == 0 {
			return nil
		}
		planned, _, done, err = s.inBatch(ctx, tx, todo, now, "plan", s.planRows)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("plan schedules: %w", err)
	}
	s.observe(ctx, done)
	return planned, more, nil
}

// planRows plans rows in three statements: the inactive ones lose their
// next_run_at, the invalid ones are explained, the others get their first
// fire time (an explicit next_run_at, set with the insert or edit, is
// honoured). It enqueues nothing; it returns the invalid rows to observe.
func (s *Scheduler) planRows(ctx context.Context, tx pgx.Tx, todo []row, now time.Time) (int, []firing, error) {
	var inactive, ids []int64
	var nexts []*time.Time // nil: keep the explicit next_run_at
	var invalid []firing
	for _, r := range todo {
		if !r.IsActive {
			inactive = append(inactive, r.ID)
			continue
		}
		sched, _, err := s.compile(r)
		if err != nil {
			invalid = append(invalid, firing{row: r, invalid: "not scheduled: " + err.Error()})
			continue
		}
		var next *time.Time
		if r.NextRunAt == nil {
			first := firstFire(sched, r, now)
			if first.IsZero() {
				invalid = append(invalid, firing{row: r, invalid: fmt.Sprintf("not scheduled: the schedule has no fire time after %s", now.Format(time.RFC3339))})
				continue
			}
			next = new(first.UTC())
		}
		ids, nexts = append(ids, r.ID), append(nexts, next)
	}
	if len(inactive) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE scheduled_jobs SET next_run_at = NULL, needs_plan = false WHERE id = ANY($1)`, inactive); err != nil {
			return 0, nil, fmt.Errorf("plan inactive rows: %w", err)
		}
	}
	if err := explainInvalid(ctx, tx, invalid); err != nil {
		return 0, nil, err
	}
	if len(ids) > 0 {
		_, err := tx.Exec(ctx, `UPDATE scheduled_jobs s SET next_run_at = coalesce(x.next, s.next_run_at), needs_plan = false, schedule_error = NULL,
				last_run_message = CASE WHEN s.last_run_message = s.schedule_error THEN NULL ELSE s.last_run_message END
			FROM unnest($1::bigint[], $2::timestamp[]) AS x(id, next) WHERE s.id = x.id`, ids, nexts)
		if err != nil {
			return 0, nil, fmt.Errorf("plan rows: %w", err)
		}
	}
	return 0, invalid, nil
}

// firstFire is a row's first fire time: the next cron tick, or for an
// interval, N minutes after the last handled tick (now, for a new row). It
// is zero when the schedule has none.
func firstFire(sched schedule.Schedule, r row, now time.Time) time.Time {
	if r.Cron == nil && r.LastDueAt != nil {
		return sched.Next(*r.LastDueAt)
	}
	if r.Cron == nil {
		return now
	}
	return sched.Next(now)
}

// MaxAttempts is the most attempts a run may have (max_attempts): River
// counts attempts in a smallint, and a thousand retries is already a loop.
const MaxAttempts = 1000

// compile checks everything about a row that can be wrong and returns its
// schedule and class.
func (s *Scheduler) compile(r row) (schedule.Schedule, workers.Class, error) {
	class, ok := s.registry.Lookup(r.JobClass)
	if !ok {
		return nil, nil, fmt.Errorf("unknown job class %q (known: %s)", r.JobClass, strings.Join(s.registry.Names(), ", "))
	}
	if err := class.ValidateParameters(r.Parameters); err != nil {
		return nil, nil, err
	}
	if !slices.Contains([]string{MisfireRunOnce, MisfireSkip, MisfireRunAll}, r.Misfire) {
		return nil, nil, fmt.Errorf("misfire_policy %q is not one of run_once, skip, run_all", r.Misfire)
	}
	if !slices.Contains([]string{runqueue.OverlapSkip, runqueue.OverlapAllow, runqueue.OverlapQueueOne}, r.Overlap) {
		return nil, nil, fmt.Errorf("overlap_policy %q is not one of skip, allow, queue_one", r.Overlap)
	}
	switch {
	case r.MaxAttempts != nil && *r.MaxAttempts < 1:
		return nil, nil, fmt.Errorf("max_attempts %d must be at least 1", *r.MaxAttempts)
	case r.MaxAttempts != nil && *r.MaxAttempts > MaxAttempts:
		return nil, nil, fmt.Errorf("max_attempts %d must be at most %d", *r.MaxAttempts, MaxAttempts)
	case r.RetryDelay != nil && *r.RetryDelay < 0:
		return nil, nil, fmt.Errorf("retry_delay_minutes %d must not be negative", *r.RetryDelay)
	case r.RetryDelay != nil && *r.RetryDelay > schedule.MaxIntervalMinutes:
		return nil, nil, fmt.Errorf("retry_delay_minutes %d must be at most %d (ten years)", *r.RetryDelay, schedule.MaxIntervalMinutes)
	}
	sched, err := schedule.ParseRow(r.Cron, r.Interval, r.Timezone)
	return sched, class, err
}
