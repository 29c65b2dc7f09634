package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivershared/startstop"
	"github.com/riverqueue/river/rivertype"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/scheduler/joblog"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Defaults of RecorderConfig.
const (
	DefaultFailureAlertThreshold = 3
	DefaultRecordFlushInterval   = 50 * time.Millisecond
	DefaultRecordFlushSize       = 500
	// queueOneWait is how long a run waits before looking again whether the
	// run ahead of it has finished.
	queueOneWait  = time.Second
	recordTimeout = 15 * time.Second
)

// Job log statuses (job_logs.status) and run statuses (last_run_status):
// joblog's.
const (
	StatusQueued     = joblog.StatusQueued
	StatusProcessing = joblog.StatusProcessing
	StatusCompleted  = joblog.StatusCompleted
	StatusFailed     = joblog.StatusFailed
	StatusCancelled  = joblog.StatusCancelled
)

// RecorderConfig tunes the Recorder.
type RecorderConfig struct {
	// FailureAlertThreshold is how many finished runs of one schedule must
	// fail in a row before one system_notifications row tells admins.
	// Defaults to 3.
	FailureAlertThreshold int

	// FlushInterval is the longest a record waits in memory before it is
	// written (with the others of its flush, in a few set-based
	// statements). Defaults to 50 ms.
	FlushInterval time.Duration

	// FlushSize is the most records one flush writes; a full buffer is
	// written at once. Defaults to 500.
	FlushSize int

	// InstanceID names this process in performance_metrics.
	InstanceID string

	// Observer is told of starts, retries and finished runs (metrics). Optional.
	Observer Observer

	// Stopping reports whether the daemon is shutting down, so that a run it
	// cancels is recorded as interrupted (River runs it again), not failed.
	Stopping func() bool

	// Now is the clock of attempts' starts and ends. Defaults to time.Now.
	Now func() time.Time
}

// validate reports the first field out of range, naming it.
func (c RecorderConfig) validate() error {
	switch {
	case c.FailureAlertThreshold < 1:
		return fmt.Errorf("recorder: FailureAlertThreshold %d must be at least 1", c.FailureAlertThreshold)
	case c.FlushInterval <= 0:
		return fmt.Errorf("recorder: FlushInterval %s must be positive", c.FlushInterval)
	case c.FlushSize < 1 || c.FlushSize > 10_000:
		return fmt.Errorf("recorder: FlushSize %d must be between 1 and 10000", c.FlushSize)
	}
	return nil
}

// Recorder is a River worker middleware that writes one job_logs row per
// attempt and, when a run is over, the schedule's bookkeeping, a
// system_errors row for a failure, a performance_metrics row, and an alert
// after repeated failures.
//
// While started, it buffers what it records and writes it every
// FlushInterval or FlushSize records, the way River's completer batches
// completions: a run's work never waits for its bookkeeping. What a crash
// loses from the buffer, the Reconciler rebuilds from River's job states.
// Unstarted, it writes each record at once.
type Recorder struct {
	river.MiddlewareDefaults
	startstop.BaseStartStop

	cfg      RecorderConfig
	logger   *slog.Logger
	pool     *pgxpool.Pool
	registry *workers.Registry

	records chan record
	claims  chan claimRequest
	mu      sync.RWMutex // held to read open; Stop takes it to close
	open    bool         // records and claims go through the loops
}

// NewRecorder returns a Recorder writing through pool.
func NewRecorder(pool *pgxpool.Pool, registry *workers.Registry, logger *slog.Logger, cfg RecorderConfig) *Recorder {
	cfg.FailureAlertThreshold = cmp.Or(cfg.FailureAlertThreshold, DefaultFailureAlertThreshold)
	cfg.FlushInterval = cmp.Or(cfg.FlushInterval, DefaultRecordFlushInterval)
	cfg.FlushSize = cmp.Or(cfg.FlushSize, DefaultRecordFlushSize)
	if cfg.Stopping == nil {
		cfg.Stopping = func() bool { return false }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Recorder{cfg: cfg, logger: logger.With(slog.String("component", "recorder")), pool: pool, registry: registry,
		records: make(chan record, cfg.FlushSize), claims: make(chan claimRequest, maxClaimBatch)}
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
	r.payload = redact.JSON(r.payload) // job_logs shows no field named secret, whatever the class
	return r
}

// attempt is the attempt being worked, as job_logs records it.
func (r run) attempt() joblog.Attempt {
	return joblog.Attempt{RiverJobID: r.job.ID, Attempt: r.job.Attempt, Class: r.meta.JobClass, Queue: r.job.Queue,
		Payload: r.payload, ScheduledJobID: r.scheduledJobID(), ExecutedBy: r.args.ExecutedBy}
}

// outcome is how an attempt ended.
type outcome struct {
	status  string // job_logs status of the attempt
	final   bool   // the run is over
	message string
	trace   string
	result  []byte // JSON
	start   time.Time
	end     time.Time
}

// Work implements rivertype.WorkerMiddleware.
func (rec *Recorder) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	r := rec.newRun(job)
	start := rec.cfg.Now()
	if r.guarded() {
		// The overlap check needs the truth now: the claim is written at once.
		busy, err := rec.begin(ctx, r)
		switch {
		case err != nil:
			// Unsure whether another run holds the schedule: wait rather than
			// risk two at once (a deadlock, a lost connection, a shutdown),
			// spending no attempt.
			rec.logger.WarnContext(ctx, "could not claim the schedule for this run; it waits and tries again",
				slog.Int64("job_id", job.ID), slog.String("error", err.Error()))
			return river.JobSnooze(queueOneWait)
		case busy: // another run of this schedule is being worked: wait, spending no attempt
			return river.JobSnooze(queueOneWait)
		}
	}
	rec.submit(ctx, record{run: r, start: start})
	if job.Attempt == 1 && !r.args.ScheduledFor.IsZero() {
		rec.cfg.Observer.RunStarted(job.Kind, start.Sub(r.args.ScheduledFor))
	}

	var result any
	err, trace := callRecovering(workers.WithResult(ctx, &result), doInner)
	o := rec.classify(ctx, job, err)
	// What a class reports may quote a URL or a provider's echo: job_logs,
	// system_errors and last_run_message get it redacted.
	o.message, o.trace = redact.Text(o.message), redact.Text(trace)
	o.start, o.end = start, rec.cfg.Now()
	o.result = []byte("{}")
	if result != nil {
		if b, merr := json.Marshal(result); merr == nil {
			o.result = b
		} else {
			rec.logger.WarnContext(ctx, "could not encode a run's result", slog.Int64("job_id", job.ID), slog.String("error", merr.Error()))
		}
	}
	rec.submit(ctx, record{run: r, end: &o})
	rec.logOutcome(ctx, r, o)
	switch {
	case o.final:
		rec.cfg.Observer.RunFinished(job.Kind, o.status, o.end.Sub(o.start))
	case o.status == StatusFailed:
		rec.cfg.Observer.AttemptRetried(job.Kind)
	}
	return hideSecrets(err)
}

// hideSecrets returns err as River may record it (river_job.errors, its
// log lines): its text redacted. errors.Is and As still see the original
// (River's cancel and snooze, a shutdown's context error).
func hideSecrets(err error) error {
	if err == nil {
		return nil
	}
	if shown := redact.Text(err.Error()); shown != err.Error() {
		return redactedError{err: err, msg: shown}
	}
	return err
}

type redactedError struct {
	err error
	msg string
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

// logOutcome logs a failed or cancelled attempt once, where operators look:
// at WARN when it is retried, at ERROR when the run is over (River's own
// line is an INFO "Job errored" without the schedule).
func (rec *Recorder) logOutcome(ctx context.Context, r run, o outcome) {
	level, msg := slog.LevelWarn, "run attempt failed; it is retried"
	switch {
	case o.status == StatusFailed && o.final:
		level, msg = slog.LevelError, "run failed"
	case o.status == StatusCancelled:
		level, msg = slog.LevelError, "run cancelled"
	case o.status != StatusFailed:
		return
	}
	attrs := []slog.Attr{slog.String("job_class", r.meta.JobClass), slog.Int64("run_id", r.job.ID),
		slog.Int("attempt", r.job.Attempt), slog.Int("max_attempts", r.job.MaxAttempts), slog.String("error", o.message)}
	if id := r.scheduledJobID(); id != nil {
		attrs = append(attrs, slog.Int64("scheduled_job_id", *id), slog.String("schedule", r.meta.ScheduledJobName))
	}
	rec.logger.LogAttrs(ctx, level, msg, attrs...)
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
	var snooze *rivertype.JobSnoozeError
	cancelled, isCancel := workers.PermanentReason(err) // River's JobCancel, as workers.Permanent makes it
	switch {
	case err == nil:
		return outcome{status: StatusCompleted, final: true}
	case errors.As(err, &snooze):
		return outcome{status: StatusQueued, message: "snoozed by the worker; runs again later"}
	case errors.Is(context.Cause(ctx), rivertype.ErrJobCancelledRemotely):
		// River UI's cancel (or JobCancel) of a running job: River records
		// it cancelled, not failed, and does not retry it.
		return outcome{status: StatusCancelled, final: true, message: "cancelled from the queue (River UI or JobCancel) while it ran"}
	case rec.cfg.Stopping() && errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return outcome{status: StatusQueued, message: "interrupted by a daemon shutdown; runs again"}
	case isCancel:
		return outcome{status: StatusCancelled, final: true, message: cancelled}
	default:
		return outcome{status: StatusFailed, final: job.Attempt >= job.MaxAttempts, message: err.Error()}
	}
}

// guarded says whether the run's start must check for another run of its
// schedule being worked (overlap_policy skip or queue_one).
func (r run) guarded() bool {
	return r.args.ScheduledJobID != 0 && r.meta.OverlapPolicy != runqueue.OverlapAllow
}

func (r run) scheduledJobID() *int64 {
	if r.args.ScheduledJobID == 0 {
		return nil
	}
	return &r.args.ScheduledJobID
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
