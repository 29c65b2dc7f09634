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

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
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

	// Observer is told of starts, retries and finished runs (metrics). Optional.
	Observer Observer

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
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Recorder{cfg: cfg, logger: logger.With(slog.String("component", "recorder")), pool: pool, registry: registry}
}

// run is what the recorder knows about the job being worked.
type run struct {
	job  *rivertype.JobRow
	args workers.Args
	meta runqueue.Metadata
	// payload is the job_logs payload: the args with secrets redacted,
	// built once for the attempt's start and its end.
	payload []byte
}

func (rec *Recorder) newRun(job *rivertype.JobRow) run {
	r := run{job: job}
	_ = json.Unmarshal(job.EncodedArgs, &r.args)
	_ = json.Unmarshal(job.Metadata, &r.meta)
	r.meta.JobClass = cmp.Or(r.meta.JobClass, job.Kind)
	shown := r.args
	shown.Parameters = rec.registry.Redact(r.meta.JobClass, r.args.Parameters)
	var err error
	if r.payload, err = json.Marshal(shown); err != nil {
		r.payload = []byte("{}") // unreachable: Args always encodes
	}
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
	r := rec.newRun(job)
	start := time.Now()
	busy, err := rec.begin(ctx, r, start)
	switch {
	case err != nil:
		rec.logger.ErrorContext(ctx, "could not record attempt start", slog.Int64("job_id", job.ID), slog.String("error", err.Error()))
	case busy: // another run of this schedule is being worked: wait, spending no attempt
		return river.JobSnooze(queueOneWait)
	case job.Attempt == 1 && !r.args.ScheduledFor.IsZero():
		rec.cfg.Observer.RunStarted(job.Kind, start.Sub(r.args.ScheduledFor))
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
	switch {
	case o.final:
		rec.cfg.Observer.RunFinished(job.Kind, o.status, o.end.Sub(o.start))
	case o.status == StatusFailed:
		rec.cfg.Observer.AttemptRetried(job.Kind)
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

// begin marks the attempt's row processing, or inserts it if the attempt
// has none (as after a crash), in one statement. Under overlap_policy skip or
// queue_one it first checks whether another run of the schedule is being
// worked; if so it changes nothing and reports busy.
func (rec *Recorder) begin(ctx context.Context, r run, start time.Time) (busy bool, err error) {
	guard := r.args.ScheduledJobID != 0 && r.meta.OverlapPolicy != runqueue.OverlapAllow
	if !guard {
		return false, rec.markProcessing(ctx, rec.pool, r, start, false, &busy)
	}
	// Two runs of one schedule fetched together would each see the other as
	// not yet started: their checks take turns under a lock of the schedule's
	// own, held until the winner's row says processing.
	err = pgx.BeginFunc(ctx, rec.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", overlapLockClass, int32(r.args.ScheduledJobID)); err != nil {
			return fmt.Errorf("lock schedule %d: %w", r.args.ScheduledJobID, err)
		}
		return rec.markProcessing(ctx, tx, r, start, true, &busy)
	})
	return busy, err
}

// overlapLockClass is the first key of the advisory locks that serialise
// the overlap checks of one schedule ('atis').
const overlapLockClass int32 = 0x61746973

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (rec *Recorder) markProcessing(ctx context.Context, db queryRower, r run, start time.Time, guard bool, busy *bool) error {
	err := db.QueryRow(ctx, `WITH busy AS (
			SELECT $4::bool AND EXISTS (SELECT 1 FROM job_logs WHERE scheduled_job_id = $5 AND status = 'processing'
				AND river_job_id <> $1) AS b
		), upd AS (
			UPDATE job_logs SET status = 'processing', start_time = $3, error_message = NULL
			WHERE job_id = $6 AND river_job_id = $1 AND attempt = $2 AND status IN ('queued', 'processing') AND NOT (SELECT b FROM busy)
			RETURNING 1
		), ins AS (
			INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, start_time, scheduled_job_id, executed_by)
			SELECT $6, $1, $7, $8, $2, 'processing', $9, $3, $5, $10
			WHERE NOT (SELECT b FROM busy) AND NOT EXISTS (SELECT 1 FROM upd)
			RETURNING 1
		)
		SELECT b FROM busy`,
		r.job.ID, r.job.Attempt, start.UTC(), guard, r.scheduledJobID(), fmt.Sprint(r.job.ID), r.meta.JobClass, r.job.Queue,
		r.payload, r.args.ExecutedBy).Scan(busy)
	if err != nil {
		return fmt.Errorf("mark attempt processing: %w", err)
	}
	return nil
}

func (r run) scheduledJobID() *int64 {
	if r.args.ScheduledJobID == 0 {
		return nil
	}
	return &r.args.ScheduledJobID
}

// finish records how the attempt ended: back in line (not an attempt after
// all), closed with the next attempt queued (River retries), or closed with
// the run's bookkeeping (final). One transaction, its statements pipelined.
func (rec *Recorder) finish(ctx context.Context, r run, o outcome) error {
	if o.status == StatusQueued {
		_, err := rec.pool.Exec(ctx, `UPDATE job_logs SET status = 'queued', start_time = NULL, error_message = $3
			WHERE job_id = $4 AND river_job_id = $1 AND attempt = $2 AND status = 'processing'`,
			r.job.ID, r.job.Attempt, o.message, fmt.Sprint(r.job.ID))
		return err
	}
	result := []byte("{}")
	if o.result != nil {
		var err error
		if result, err = json.Marshal(o.result); err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
	}
	batch := &pgx.Batch{}
	batch.Queue(`WITH upd AS (
			UPDATE job_logs SET status = $3, result = $4, error_message = nullif($5, ''), error_trace = nullif($6, ''),
				end_time = $7, duration = $8
			WHERE job_id = $9 AND river_job_id = $1 AND attempt = $2 AND status = 'processing' RETURNING 1
		)
		INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, start_time, scheduled_job_id,
			executed_by, result, error_message, error_trace, end_time, duration)
		SELECT $9, $1, $10, $11, $2, $3, $12, $13, $14, $15, $4, nullif($5, ''), nullif($6, ''), $7, $8
		WHERE NOT EXISTS (SELECT 1 FROM upd)`,
		r.job.ID, r.job.Attempt, o.status, result, o.message, o.trace, o.end.UTC(), durationSeconds(o.end.Sub(o.start)),
		fmt.Sprint(r.job.ID), r.meta.JobClass, r.job.Queue, r.payload, o.start.UTC(), r.scheduledJobID(), r.args.ExecutedBy)
	if !o.final {
		batch.Queue(`INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id, executed_by)
			VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8)`,
			fmt.Sprint(r.job.ID), r.job.ID, r.meta.JobClass, r.job.Queue, r.job.Attempt+1, r.payload, r.scheduledJobID(), r.args.ExecutedBy)
	} else {
		queueFinalize(batch, finalRun{
			JobID: r.job.ID, ScheduledJobID: r.args.ScheduledJobID, JobClass: r.meta.JobClass, Queue: r.job.Queue,
			Attempt: r.job.Attempt, Status: o.status, Message: o.message, Trace: o.trace, Start: o.start, End: o.end,
			InstanceID: rec.cfg.InstanceID, AlertThreshold: rec.cfg.FailureAlertThreshold,
		})
	}
	return pgx.BeginFunc(ctx, rec.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
}

// finalRun is a run that is over, for queueFinalize.
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

// queueFinalize queues, for one transaction, what a finished run leaves
// behind: a performance_metrics row; for a failure a system_errors row; the
// schedule's bookkeeping; and, when its failures in a row reach the
// threshold, one notification.
func queueFinalize(batch *pgx.Batch, f finalRun) {
	dur := f.End.Sub(f.Start)
	ctxJSON, _ := json.Marshal(map[string]any{"job_id": f.JobID, "scheduled_job_id": f.ScheduledJobID,
		"job_class": f.JobClass, "attempt": f.Attempt, "queue": f.Queue, "status": f.Status})
	ms := math.Min(float64(dur.Microseconds())/1000, 99_999_999)
	batch.Queue(`INSERT INTO performance_metrics (metric_type, name, value, unit, context, instance_id)
		VALUES ('job', left($1, 100), $2, 'ms', $3, $4)`, f.JobClass, ms, ctxJSON, f.InstanceID)
	failed := f.Status != StatusCompleted
	if failed {
		batch.Queue(`INSERT INTO system_errors (error_code, error_type, message, stack_trace, context, severity)
			VALUES ('job_failed', 'scheduled_job_failed', $1, nullif($2, ''), $3, 'error')`,
			fmt.Sprintf("%s run %d %s after %d attempt(s): %s", f.JobClass, f.JobID, f.Status, f.Attempt, f.Message),
			f.Trace, ctxJSON)
	}
	if f.ScheduledJobID == 0 {
		return
	}
	lastStatus := map[string]string{StatusCompleted: "success", StatusFailed: "failed", StatusCancelled: "cancelled"}[f.Status]
	// Our own bookkeeping wakes no scheduler.
	batch.Queue(`SELECT set_config('atis.scheduler', 'on', true)`)
	batch.Queue(`UPDATE scheduled_jobs SET
			is_running = EXISTS (SELECT 1 FROM job_logs WHERE scheduled_job_id = $1 AND river_job_id <> $2
				AND status IN ('queued', 'processing')),
			last_run_at = $3, last_run_status = $4, last_run_message = nullif($5, ''), last_run_duration = $6,
			run_count = coalesce(run_count, 0) + 1,
			failure_count = coalesce(failure_count, 0) + CASE WHEN $7 THEN 1 ELSE 0 END,
			consecutive_failures = CASE WHEN $7 THEN consecutive_failures + 1 ELSE 0 END,
			updated_at = $8
		WHERE id = $1`,
		f.ScheduledJobID, f.JobID, f.Start.UTC(), lastStatus, f.Message, durationSeconds(dur), failed, f.End.UTC())
	if failed {
		batch.Queue(`INSERT INTO system_notifications (type, title, message, level, start_at, target_roles, target_institutions)
			SELECT 'scheduled_job_failing', left(format('Scheduled job "%s" has failed %s times in a row', name, consecutive_failures), 200),
				format('Scheduled job %s (%s, class %s) has failed %s runs in a row. Last error: %s',
					id, name, $3::text, consecutive_failures, $4::text),
				'danger', $5, '[]', '[]'
			FROM scheduled_jobs WHERE id = $1 AND consecutive_failures = $2`,
			f.ScheduledJobID, f.AlertThreshold, f.JobClass, f.Message, f.End.UTC())
	}
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
	var meta runqueue.Metadata
	if json.Unmarshal(job.Metadata, &meta) == nil && meta.RetryDelaySeconds != nil {
		return time.Now().Add(time.Duration(*meta.RetryDelaySeconds) * time.Second)
	}
	return (&river.DefaultClientRetryPolicy{}).NextRetry(job)
}
