package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/jackc/pgx/v5"
)

// plan computes next_run_at for rows that were inserted or whose schedule
// changed, and explains the rows that cannot be scheduled. Each row is
// planned in a savepoint of its own: a row whose write fails (a trigger or
// constraint of someone else's, a row lock timeout) is put aside for a while
// and the others are planned.
func (s *Scheduler) plan(ctx context.Context, backoff []int64) (planned int, more bool, err error) {
	now := s.cfg.Now().UTC()
	err = inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs WHERE needs_plan AND NOT (id = ANY($2))
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, s.cfg.BatchSize, backoff)
		if err != nil {
			return err
		}
		todo, err := pgx.CollectRows(rows, scanRow)
		if err != nil {
			return err
		}
		more = len(todo) == s.cfg.BatchSize
		for _, r := range todo {
			if ctx.Err() != nil {
				return ctx.Err() // a stop: the whole batch waits for the next start
			}
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { return s.planRow(ctx, sp, r, now) })
			if err != nil {
				s.failed(ctx, r, "plan", err)
				continue
			}
			planned++
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("plan schedules: %w", err)
	}
	return planned, more, nil
}

func (s *Scheduler) planRow(ctx context.Context, tx pgx.Tx, r row, now time.Time) error {
	if !r.IsActive {
		_, err := tx.Exec(ctx, `UPDATE scheduled_jobs SET next_run_at = NULL, needs_plan = false WHERE id = $1`, r.ID)
		return err
	}
	sched, _, err := s.compile(r)
	if err != nil {
		return s.markInvalid(ctx, tx, r, err)
	}
	next := r.NextRunAt // set explicitly with the insert or edit: honoured
	if next == nil {
		t := firstFire(sched, r, now)
		next = &t
	}
	_, err = tx.Exec(ctx, `UPDATE scheduled_jobs SET next_run_at = $2, needs_plan = false, schedule_error = NULL,
			last_run_message = CASE WHEN last_run_message = schedule_error THEN NULL ELSE last_run_message END
		WHERE id = $1`, r.ID, next.UTC())
	return err
}

// firstFire is a row's first fire time: the next cron tick, or for an
// interval, N minutes after the last handled tick (now, for a new row).
func firstFire(sched schedule.Schedule, r row, now time.Time) time.Time {
	if r.Cron == nil && r.LastDueAt != nil {
		return sched.Next(*r.LastDueAt)
	}
	if r.Cron == nil {
		return now
	}
	return sched.Next(now)
}

// markInvalid stops scheduling a row and says why, where admins look.
func (s *Scheduler) markInvalid(ctx context.Context, tx pgx.Tx, r row, cause error) error {
	msg := "not scheduled: " + cause.Error()
	s.count(func(st *Stats) { st.Invalid++ })
	if r.ScheduleError == nil || *r.ScheduleError != msg {
		s.logger.WarnContext(ctx, "scheduled job cannot be scheduled", slog.Int64("scheduled_job_id", r.ID),
			slog.String("name", r.Name), slog.String("error", msg))
	}
	_, err := tx.Exec(ctx, `UPDATE scheduled_jobs SET next_run_at = NULL, needs_plan = false,
		schedule_error = $2, last_run_message = $2, updated_at = now() WHERE id = $1`, r.ID, msg)
	return err
}

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
	if r.MaxAttempts != nil && *r.MaxAttempts < 1 {
		return nil, nil, fmt.Errorf("max_attempts %d must be at least 1", *r.MaxAttempts)
	}
	if r.RetryDelay != nil && *r.RetryDelay < 0 {
		return nil, nil, fmt.Errorf("retry_delay_minutes %d must not be negative", *r.RetryDelay)
	}
	sched, err := schedule.ParseRow(r.Cron, r.Interval, r.Timezone)
	return sched, class, err
}
