package joblog

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// Final is a run that is over, for Finalize.
type Final struct {
	JobID, ScheduledJobID int64
	JobClass, Queue       string
	Attempt               int
	Status                string // completed, failed or cancelled
	Message, Trace        string
	Start, End            time.Time
}

// scheduleTally is what the finished runs of one schedule in one finalize
// do to its bookkeeping.
type scheduleTally struct {
	id                 int64
	runs, failures     int32
	trailing           int32 // failures after the last success (all of them without one)
	anySuccess         bool
	last               Final // the run that ended last
	lastFailureMessage string
}

// Finalize writes, in tx, what finished runs leave behind: a
// performance_metrics row each; a system_errors row for each failure; each
// schedule's bookkeeping; and one notification for each schedule whose
// failures in a row reach threshold. Runs are in the order they ended. A
// fixed number of statements, whatever the number of runs.
func Finalize(ctx context.Context, tx pgx.Tx, runs []Final, instanceID string, threshold int) error {
	if len(runs) == 0 {
		return nil
	}
	var (
		classes, contexts           []string
		millis                      []float64
		errMsgs, errTraces, errCtxs []string
		tallies                     = map[int64]*scheduleTally{}
		order                       []int64
	)
	for _, f := range runs {
		ctxJSON, _ := json.Marshal(map[string]any{"job_id": f.JobID, "scheduled_job_id": f.ScheduledJobID,
			"job_class": f.JobClass, "attempt": f.Attempt, "queue": f.Queue, "status": f.Status})
		classes, contexts = append(classes, f.JobClass), append(contexts, string(ctxJSON))
		millis = append(millis, math.Min(float64(f.End.Sub(f.Start).Microseconds())/1000, 99_999_999))
		failed := f.Status != StatusCompleted
		if failed {
			errMsgs = append(errMsgs, fmt.Sprintf("%s run %d %s after %d attempt(s): %s", f.JobClass, f.JobID, f.Status, f.Attempt, f.Message))
			errTraces, errCtxs = append(errTraces, f.Trace), append(errCtxs, string(ctxJSON))
		}
		if f.ScheduledJobID == 0 {
			continue
		}
		t, ok := tallies[f.ScheduledJobID]
		if !ok {
			t = &scheduleTally{id: f.ScheduledJobID}
			tallies[f.ScheduledJobID] = t
			order = append(order, f.ScheduledJobID)
		}
		t.runs++
		if failed {
			t.failures++
			t.trailing++
			t.lastFailureMessage = f.Message
		} else {
			t.anySuccess, t.trailing = true, 0
		}
		if t.last.End.IsZero() || !f.End.Before(t.last.End) {
			t.last = f
		}
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO performance_metrics (metric_type, name, value, unit, context, instance_id)
		SELECT 'job', left(c, 100), v, 'ms', x::jsonb, $4 FROM unnest($1::text[], $2::float8[], $3::text[]) AS t(c, v, x)`,
		classes, millis, contexts, instanceID)
	if len(errMsgs) > 0 {
		batch.Queue(`INSERT INTO system_errors (error_code, error_type, message, stack_trace, context, severity)
			SELECT 'job_failed', 'scheduled_job_failed', m, nullif(s, ''), x::jsonb, 'error'
			FROM unnest($1::text[], $2::text[], $3::text[]) AS t(m, s, x)`, errMsgs, errTraces, errCtxs)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("record finished runs: %w", err)
	}
	if len(order) == 0 {
		return nil
	}
	return tallySchedules(ctx, tx, tallies, order, threshold)
}

// tallySchedules updates the bookkeeping of the schedules whose runs ended,
// and alerts for those whose failures in a row have just reached threshold.
func tallySchedules(ctx context.Context, tx pgx.Tx, tallies map[int64]*scheduleTally, order []int64, threshold int) error {
	n := len(order)
	var (
		ids                      = make([]int64, n)
		runs, failures, trailing = make([]int32, n), make([]int32, n), make([]int32, n)
		anySuccess               = make([]bool, n)
		starts, ends             = make([]time.Time, n), make([]time.Time, n)
		statuses, messages       = make([]string, n), make([]string, n)
		durations                = make([]int32, n)
	)
	for i, id := range order {
		t := tallies[id]
		ids[i], runs[i], failures[i], trailing[i], anySuccess[i] = id, t.runs, t.failures, t.trailing, t.anySuccess
		starts[i], ends[i] = t.last.Start.UTC(), t.last.End.UTC()
		statuses[i] = map[string]string{StatusCompleted: "success", StatusFailed: "failed", StatusCancelled: "cancelled"}[t.last.Status]
		messages[i], durations[i] = t.last.Message, DurationSeconds(t.last.End.Sub(t.last.Start))
	}
	// Our own bookkeeping wakes no scheduler.
	if _, err := tx.Exec(ctx, `SELECT set_config('atis.scheduler', 'on', true)`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `UPDATE scheduled_jobs s SET
			is_running = EXISTS (SELECT 1 FROM job_logs l WHERE l.scheduled_job_id = s.id AND l.status IN ('queued', 'processing')),
			last_run_at = x.start_at, last_run_status = x.status, last_run_message = nullif(x.message, ''),
			last_run_duration = x.duration,
			run_count = least(coalesce(s.run_count, 0)::bigint + x.runs, 2147483647)::int,
			failure_count = least(coalesce(s.failure_count, 0)::bigint + x.failures, 2147483647)::int,
			consecutive_failures = CASE WHEN x.any_success THEN x.trail
				ELSE least(s.consecutive_failures::bigint + x.trail, 2147483647)::int END,
			updated_at = x.end_at
		FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::bool[], $6::timestamp[], $7::timestamp[], $8::text[], $9::text[], $10::int[])
			AS x(id, runs, failures, trail, any_success, start_at, end_at, status, message, duration)
		WHERE s.id = x.id
		RETURNING s.id, s.consecutive_failures, x.trail`,
		ids, runs, failures, trailing, anySuccess, starts, ends, statuses, messages, durations)
	if err != nil {
		return fmt.Errorf("update schedules' bookkeeping: %w", err)
	}
	var alertIDs []int64
	var alertClasses, alertMessages []string
	var alertAt []time.Time
	for rows.Next() {
		var id int64
		var consecutive, added int32
		if err := rows.Scan(&id, &consecutive, &added); err != nil {
			rows.Close()
			return err
		}
		// Reached in this batch: at or past the threshold now, below it
		// before this batch's trailing failures.
		if consecutive >= int32(threshold) && consecutive-added < int32(threshold) {
			t := tallies[id]
			alertIDs = append(alertIDs, id)
			alertClasses, alertMessages = append(alertClasses, t.last.JobClass), append(alertMessages, t.lastFailureMessage)
			alertAt = append(alertAt, t.last.End.UTC())
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("update schedules' bookkeeping: %w", err)
	}
	if len(alertIDs) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO system_notifications (type, title, message, level, start_at, target_roles, target_institutions)
		SELECT 'scheduled_job_failing', left(format('Scheduled job "%s" has failed %s times in a row', s.name, s.consecutive_failures), 200),
			format('Scheduled job %s (%s, class %s) has failed %s runs in a row. Last error: %s',
				s.id, s.name, x.class, s.consecutive_failures, x.message),
			'danger', x.at, '[]', '[]'
		FROM scheduled_jobs s JOIN unnest($1::bigint[], $2::text[], $3::text[], $4::timestamp[]) AS x(id, class, message, at) ON s.id = x.id`,
		alertIDs, alertClasses, alertMessages, alertAt)
	if err != nil {
		return fmt.Errorf("alert on failing schedules: %w", err)
	}
	return nil
}

// DurationSeconds rounds to whole seconds, as job_logs.duration and
// scheduled_jobs.last_run_duration hold.
func DurationSeconds(d time.Duration) int32 {
	return int32(math.Round(d.Seconds()))
}
