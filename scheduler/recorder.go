package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Defaults of RecorderConfig.
const (
	DefaultFailureAlertThreshold = 3
	// queueOneWait is how long a run waits before looking again whether the
	// run ahead of it has finished.
	queueOneWait  = time.Second
	recordTimeout = 15 * time.Second
)

// Job log statuses (job_logs.status) and run statuses (last_run_status).
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// RecorderConfig tunes the Recorder.
type RecorderConfig struct {
	// FailureAlertThreshold is how many finished runs of one schedule must
	// fail in a row before one system_notifications row tells admins.
	// Defaults to 3.
	FailureAlertThreshold int

	// InstanceID names this process in performance_metrics.
	InstanceID string

	// Stopping reports whether the daemon is shutting down, so that a run it
	// cancels is recorded as interrupted (River runs it again), not failed.
	Stopping func() bool
}

// Recorder is a River worker middleware that writes one job_logs row per
// attempt and, when a run is over, the schedule's bookkeeping, a
// system_errors row for a failure, a performance_metrics row, and an alert
// after repeated failures.
type Recorder struct {
	river.MiddlewareDefaults
	cfg      RecorderConfig
	logger   *slog.Logger
	pool     *pgxpool.Pool
	registry *workers.Registry
}

// NewRecorder returns a Recorder writing through pool.
func NewRecorder(pool *pgxpool.Pool, registry *workers.Registry, logger *slog.Logger, cfg RecorderConfig) *Recorder {
	cfg.FailureAlertThreshold = cmp.Or(cfg.FailureAlertThreshold, DefaultFailureAlertThreshold)
	if cfg.Stopping == nil {
		cfg.Stopping = func() bool { return false }
	}
	return &Recorder{cfg: cfg, logger: logger.With(slog.String("component", "recorder")), pool: pool, registry: registry}
}

// run is what the recorder knows about the job being worked.
type run struct {
	job  *rivertype.JobRow
	args workers.Args
	meta runMetadata
}

func newRun(job *rivertype.JobRow) run {
	r := run{job: job}
	_ = json.Unmarshal(job.EncodedArgs, &r.args)
	_ = json.Unmarshal(job.Metadata, &r.meta)
	r.meta.JobClass = cmp.Or(r.meta.JobClass, job.Kind)
	return r
}

// outcome is how an attempt ended.
type outcome struct {
	status  string // job_logs status of the attempt
	final   bool   // the run is over
	message string
	trace   string
	result  any
	start   time.Time
	end     time.Time
}

// Work implements rivertype.WorkerMiddleware.
func (rec *Recorder) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	r := newRun(job)
	if r.args.ScheduledJobID != 0 && r.meta.OverlapPolicy != OverlapAllow {
		busy, err := rec.anotherRunning(ctx, r)
		if err != nil {
			return err
		}
		if busy { // wait without spending an attempt
			return river.JobSnooze(queueOneWait)
		}
	}
	start := time.Now()
	if err := rec.begin(ctx, r, start); err != nil {
		rec.logger.ErrorContext(ctx, "could not record attempt start", slog.Int64("job_id", job.ID), slog.String("error", err.Error()))
	}

	var result any
	err, trace := callRecovering(workers.WithResult(ctx, &result), doInner)
	o := rec.classify(ctx, job, err)
	o.trace, o.result, o.start, o.end = trace, result, start, time.Now()

	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if rerr := rec.finish(recordCtx, r, o); rerr != nil {
		rec.logger.ErrorContext(ctx, "could not record attempt result", slog.Int64("job_id", job.ID), slog.String("error", rerr.Error()))
	}
	return err
}

// callRecovering calls doInner, turning a panic into an error and its stack.
func callRecovering(ctx context.Context, doInner func(context.Context) error) (err error, trace string) {
	defer func() {
		if p := recover(); p != nil {
			err, trace = fmt.Errorf("panic: %v", p), string(debug.Stack())
		}
	}()
	return doInner(ctx), ""
}

func (rec *Recorder) classify(ctx context.Context, job *rivertype.JobRow, err error) outcome {
	var (
		snooze *rivertype.JobSnoozeError
		cancel *rivertype.JobCancelError
	)
	switch {
	case err == nil:
		return outcome{status: StatusCompleted, final: true}
	case errors.As(err, &snooze):
		return outcome{status: StatusQueued, message: "snoozed by the worker; runs again later"}
	case rec.cfg.Stopping() && errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return outcome{status: StatusQueued, message: "interrupted by a daemon shutdown; runs again"}
	case errors.As(err, &cancel):
		return outcome{status: StatusCancelled, final: true, message: cancelMessage(cancel)}
	default:
		return outcome{status: StatusFailed, final: job.Attempt >= job.MaxAttempts, message: err.Error()}
	}
}

func cancelMessage(e *rivertype.JobCancelError) string {
	if inner := errors.Unwrap(e); inner != nil {
		return inner.Error()
	}
	return e.Error()
}

// anotherRunning reports whether another run of the same schedule is being
// worked, which a run under overlap_policy skip or queue_one waits for.
func (rec *Recorder) anotherRunning(ctx context.Context, r run) (bool, error) {
	var busy bool
	err := rec.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job j
		WHERE `+ofSchedule+` AND j.state = 'running' AND j.id <> $2 AND `+unfinishedRun+`)`,
		r.args.ScheduledJobID, r.job.ID).Scan(&busy)
	if err != nil {
		return false, fmt.Errorf("check overlapping runs: %w", err)
	}
	return busy, nil
}

// begin marks the attempt's row processing (inserting it if the attempt had
// none, as after a crash).
func (rec *Recorder) begin(ctx context.Context, r run, start time.Time) error {
	return pgx.BeginFunc(ctx, rec.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE job_logs SET status = 'processing', start_time = $3, error_message = NULL
			WHERE river_job_id = $1 AND attempt = $2 AND status = 'queued'`, r.job.ID, r.job.Attempt, start.UTC())
		if err != nil || tag.RowsAffected() > 0 {
			return err
		}
		return rec.insertLog(ctx, tx, r, r.job.Attempt, StatusProcessing, &start)
	})
}

func (rec *Recorder) insertLog(ctx context.Context, tx pgx.Tx, r run, attempt int, status string, start *time.Time) error {
	payload, err := json.Marshal(workers.Args{ExecutedBy: r.args.ExecutedBy, ScheduledFor: r.args.ScheduledFor,
		ScheduledJobID: r.args.ScheduledJobID, Parameters: rec.registry.Redact(r.meta.JobClass, r.args.Parameters)})
	if err != nil {
		return err
	}
	var startArg *time.Time
	if start != nil {
		startArg = new(start.UTC())
	}
	var scheduledJobID *int64
	if r.args.ScheduledJobID != 0 {
		scheduledJobID = &r.args.ScheduledJobID
	}
	_, err = tx.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload,
			start_time, scheduled_job_id, executed_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		fmt.Sprint(r.job.ID), r.job.ID, r.meta.JobClass, r.job.Queue, attempt, status, payload, startArg,
		scheduledJobID, r.args.ExecutedBy)
	return err
}

// finish records how the attempt ended; for a failed attempt that River
// will retry, it adds the next attempt's queued row; for a finished run, it
// updates the bookkeeping.
func (rec *Recorder) finish(ctx context.Context, r run, o outcome) error {
	return pgx.BeginFunc(ctx, rec.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL atis.scheduler = 'on'"); err != nil {
			return err
		}
		if o.status == StatusQueued { // not an attempt after all: back in line
			_, err := tx.Exec(ctx, `UPDATE job_logs SET status = 'queued', start_time = NULL, error_message = $3
				WHERE river_job_id = $1 AND attempt = $2 AND status = 'processing'`, r.job.ID, r.job.Attempt, o.message)
			return err
		}
		if err := rec.closeAttempt(ctx, tx, r, o); err != nil {
			return err
		}
		if !o.final {
			return rec.insertLog(ctx, tx, r, r.job.Attempt+1, StatusQueued, nil)
		}
		return finalize(ctx, tx, finalRun{
			JobID: r.job.ID, ScheduledJobID: r.args.ScheduledJobID, JobClass: r.meta.JobClass, Queue: r.job.Queue,
			Attempt: r.job.Attempt, Status: o.status, Message: o.message, Trace: o.trace, Start: o.start, End: o.end,
			InstanceID: rec.cfg.InstanceID, AlertThreshold: rec.cfg.FailureAlertThreshold,
		})
	})
}

func (rec *Recorder) closeAttempt(ctx context.Context, tx pgx.Tx, r run, o outcome) error {
	result := []byte("{}")
	if o.result != nil {
		b, err := json.Marshal(o.result)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		result = b
	}
	var msg, trace *string
	if o.message != "" {
		msg = &o.message
	}
	if o.trace != "" {
		trace = &o.trace
	}
	secs := durationSeconds(o.end.Sub(o.start))
	tag, err := tx.Exec(ctx, `UPDATE job_logs SET status = $3, result = $4, error_message = $5, error_trace = $6,
			end_time = $7, duration = $8
		WHERE river_job_id = $1 AND attempt = $2 AND status = 'processing'`,
		r.job.ID, r.job.Attempt, o.status, result, msg, trace, o.end.UTC(), secs)
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	// begin could not write its row: write the whole attempt now.
	if err := rec.insertLog(ctx, tx, r, r.job.Attempt, StatusProcessing, &o.start); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE job_logs SET status = $3, result = $4, error_message = $5, error_trace = $6,
			end_time = $7, duration = $8
		WHERE river_job_id = $1 AND attempt = $2 AND status = 'processing'`,
		r.job.ID, r.job.Attempt, o.status, result, msg, trace, o.end.UTC(), secs)
	return err
}

// finalRun is a run that is over, for finalize.
type finalRun struct {
	JobID, ScheduledJobID int64
	JobClass, Queue       string
	Attempt               int
	Status                string // completed, failed or cancelled
	Message, Trace        string
	Start, End            time.Time
	InstanceID            string
	AlertThreshold        int
}

// finalize writes what a finished run leaves behind: the schedule's
// bookkeeping, a performance_metrics row, and for a failure a system_errors
// row and, at the threshold of failures in a row, one notification.
func finalize(ctx context.Context, tx pgx.Tx, f finalRun) error {
	dur := f.End.Sub(f.Start)
	ctxJSON, _ := json.Marshal(map[string]any{"job_id": f.JobID, "scheduled_job_id": f.ScheduledJobID,
		"job_class": f.JobClass, "attempt": f.Attempt, "queue": f.Queue, "status": f.Status})
	ms := math.Min(float64(dur.Microseconds())/1000, 99_999_999)
	if _, err := tx.Exec(ctx, `INSERT INTO performance_metrics (metric_type, name, value, unit, context, instance_id)
		VALUES ('job', left($1, 100), $2, 'ms', $3, $4)`, f.JobClass, ms, ctxJSON, f.InstanceID); err != nil {
		return fmt.Errorf("insert performance_metrics: %w", err)
	}
	failed := f.Status != StatusCompleted
	if failed {
		if _, err := tx.Exec(ctx, `INSERT INTO system_errors (error_code, error_type, message, stack_trace, context, severity)
			VALUES ('job_failed', 'scheduled_job_failed', $1, nullif($2, ''), $3, 'error')`,
			fmt.Sprintf("%s run %d %s after %d attempt(s): %s", f.JobClass, f.JobID, f.Status, f.Attempt, f.Message),
			f.Trace, ctxJSON); err != nil {
			return fmt.Errorf("insert system_errors: %w", err)
		}
	}
	if f.ScheduledJobID == 0 {
		return nil
	}
	lastStatus := map[string]string{StatusCompleted: "success", StatusFailed: "failed", StatusCancelled: "cancelled"}[f.Status]
	var msg *string
	if f.Message != "" {
		msg = &f.Message
	}
	var name string
	var streak int
	err := tx.QueryRow(ctx, `UPDATE scheduled_jobs SET
			is_running = EXISTS (SELECT 1 FROM river_job j WHERE `+ofSchedule+` AND j.id <> $2 AND `+unfinishedRun+`),
			last_run_at = $3, last_run_status = $4, last_run_message = $5, last_run_duration = $6,
			run_count = coalesce(run_count, 0) + 1,
			failure_count = coalesce(failure_count, 0) + CASE WHEN $7 THEN 1 ELSE 0 END,
			consecutive_failures = CASE WHEN $7 THEN consecutive_failures + 1 ELSE 0 END,
			updated_at = $8
		WHERE id = $1 RETURNING name, consecutive_failures`,
		f.ScheduledJobID, f.JobID, f.Start.UTC(), lastStatus, msg, durationSeconds(dur), failed, f.End.UTC(),
	).Scan(&name, &streak)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the schedule was deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("update scheduled job bookkeeping: %w", err)
	}
	if failed && streak == f.AlertThreshold {
		_, err = tx.Exec(ctx, `INSERT INTO system_notifications (type, title, message, level, start_at, target_roles, target_institutions)
			VALUES ('scheduled_job_failing', left($1, 200), $2, 'danger', $3, '[]', '[]')`,
			fmt.Sprintf("Scheduled job %q has failed %d times in a row", name, streak),
			fmt.Sprintf("Scheduled job %d (%s, class %s) has failed %d runs in a row. Last error: %s",
				f.ScheduledJobID, name, f.JobClass, streak, f.Message), f.End.UTC())
		if err != nil {
			return fmt.Errorf("insert failure notification: %w", err)
		}
	}
	return nil
}

// durationSeconds rounds to whole seconds, as job_logs.duration and
// scheduled_jobs.last_run_duration hold.
func durationSeconds(d time.Duration) int32 {
	return int32(math.Round(d.Seconds()))
}

// RetryPolicy waits retry_delay_minutes (carried in the job's metadata)
// between attempts; 0 retries at once. Jobs without it use River's default.
type RetryPolicy struct{}

// NextRetry implements river.ClientRetryPolicy.
func (RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	var meta runMetadata
	if json.Unmarshal(job.Metadata, &meta) == nil && meta.RetryDelaySeconds != nil {
		return time.Now().Add(time.Duration(*meta.RetryDelaySeconds) * time.Second)
	}
	return (&river.DefaultClientRetryPolicy{}).NextRetry(job)
}
