package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivershared/startstop"

	"github.com/atis-edu/atis-scheduler/scheduler/instance"
	"github.com/atis-edu/atis-scheduler/scheduler/joblog"
)

// Defaults of ReconcilerConfig.
const (
	DefaultHeartbeat         = instance.DefaultHeartbeat
	DefaultDeadAfter         = instance.DefaultDeadAfter
	DefaultReconcileInterval = time.Minute
)

// ReconcilerConfig tunes the Reconciler.
type ReconcilerConfig struct {
	// InstanceID identifies this process; it is also its River client ID, so
	// that a running job names the process working it. Required.
	InstanceID string

	// Version is recorded with the instance.
	Version string

	// Heartbeat is how often this process says it is alive, on a database
	// connection of its own. Defaults to 10 seconds.
	Heartbeat time.Duration

	// DeadAfter is how long without a heartbeat makes a process dead.
	// Defaults to 1 minute. A process with the same HostKey (same boot, same
	// pid namespace) whose pid is gone is dead at once.
	DeadAfter time.Duration

	// Interval is how often reconciliation runs. Defaults to 1 minute.
	Interval time.Duration

	// PassTimeout bounds one reconciliation pass; what it did not reach is
	// done by the next. Defaults to Interval.
	PassTimeout time.Duration

	// AlertThreshold is passed on to the bookkeeping of runs it finishes.
	AlertThreshold int

	// HostKey says which processes share this one's pid space; defaults to
	// HostKey(). Tests set it to pose as another host.
	HostKey string

	// Now is the clock of the ends it records. Defaults to time.Now.
	Now func() time.Time
}

// validate reports the first field out of range, naming it.
func (c ReconcilerConfig) validate() error {
	switch {
	case c.InstanceID == "":
		return errors.New("reconciler: InstanceID is required")
	case c.Interval <= 0 || c.PassTimeout <= 0:
		return fmt.Errorf("reconciler: Interval %s and PassTimeout %s must be positive", c.Interval, c.PassTimeout)
	case c.AlertThreshold < 1:
		return fmt.Errorf("reconciler: AlertThreshold %d must be at least 1", c.AlertThreshold)
	}
	return nil
}

// Reconciler keeps River's job states, job_logs and scheduled_jobs
// bookkeeping in agreement after crashes: it hands the runs of a dead
// process back to the queue, closes job_logs rows that River has moved past,
// and recomputes is_running. It also keeps this process's registration and
// heartbeat (instance.Registry).
type Reconciler struct {
	startstop.BaseStartStop

	cfg      ReconcilerConfig
	logger   *slog.Logger
	pool     *pgxpool.Pool
	registry *instance.Registry
	err      error // a configuration error, returned by Register and Start
}

// NewReconciler returns a Reconciler for this process.
func NewReconciler(pool *pgxpool.Pool, logger *slog.Logger, cfg ReconcilerConfig) *Reconciler {
	cfg.Interval = cmp.Or(cfg.Interval, DefaultReconcileInterval)
	cfg.PassTimeout = cmp.Or(cfg.PassTimeout, cfg.Interval)
	cfg.AlertThreshold = cmp.Or(cfg.AlertThreshold, DefaultFailureAlertThreshold)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger = logger.With(slog.String("component", "reconciler"))
	registry, err := instance.New(pool, logger, instance.Config{ID: cfg.InstanceID, Version: cfg.Version,
		Heartbeat: cfg.Heartbeat, DeadAfter: cfg.DeadAfter, HostKey: cfg.HostKey})
	if err == nil {
		ic := registry.Config()
		cfg.Heartbeat, cfg.DeadAfter, cfg.HostKey = ic.Heartbeat, ic.DeadAfter, ic.HostKey
	}
	if err == nil {
		err = cfg.validate()
	}
	return &Reconciler{cfg: cfg, logger: logger, pool: pool, registry: registry, err: err}
}

// HostKey names the pid space this process lives in (instance.HostKey).
func HostKey() string { return instance.HostKey() }

// Register records this process as alive. Call it before River starts, so
// that no job is ever attributed to an unknown process.
func (r *Reconciler) Register(ctx context.Context) error {
	if r.err != nil {
		return r.err
	}
	return r.registry.Register(ctx)
}

// Start reconciles once, then keeps the heartbeat and reconciles
// periodically, each in a goroutine of its own, until Stop, which also
// removes this process's registration. The heartbeat must outlive the
// daemon's work (a draining job is still ours): give Start a context that
// ends with the process, not with the signal to stop. Starting twice is a
// no-op.
func (r *Reconciler) Start(ctx context.Context) error {
	if r.err != nil {
		return r.err
	}
	ctx, shouldStart, started, stopped := r.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	if _, err := r.pass(ctx); err != nil {
		stopped()
		return err
	}
	go func() {
		defer stopped()
		started()
		var wg sync.WaitGroup
		wg.Go(func() { r.registry.Beat(ctx) })
		wg.Go(func() { r.reconcileLoop(ctx) })
		wg.Wait()
		r.registry.Deregister(ctx)
	}()
	return nil
}

func (r *Reconciler) reconcileLoop(ctx context.Context) {
	instance.Every(ctx, r.cfg.Interval, func() {
		if _, err := r.pass(ctx); err != nil && ctx.Err() == nil {
			r.logger.ErrorContext(ctx, "reconciliation failed", slog.String("error", err.Error()))
		}
	})
}

// pass is one Reconcile bounded by PassTimeout.
func (r *Reconciler) pass(ctx context.Context) (ReconcileReport, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PassTimeout)
	defer cancel()
	return r.Reconcile(ctx)
}

// ReconcileReport counts what one reconciliation repaired.
type ReconcileReport struct {
	// Rescued runs of dead processes went back to the queue (or were
	// discarded when out of attempts).
	Rescued int
	// Closed job_logs rows were still queued or processing for attempts
	// that River had finished or moved past.
	Closed int
	// Reopened runs were cancelled while they waited and have since been
	// put back in line (River UI's retry): queued again.
	Reopened int
	// Flags is how many is_running flags were corrected.
	Flags int
}

// Reconcile runs one reconciliation.
func (r *Reconciler) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	var err error
	if rep.Rescued, err = r.rescueDead(ctx); err != nil {
		return rep, err
	}
	if err := r.followQueue(ctx, &rep); err != nil {
		return rep, err
	}
	if err := r.dropStaleClaims(ctx); err != nil {
		return rep, err
	}
	r.report(ctx, rep)
	return rep, nil
}

// FollowQueue is the part of a reconciliation that makes job_logs and the
// schedules' bookkeeping follow what River's queue now says: after a
// cancel, retry or delete made outside our workers (River UI), without the
// rescue of dead processes and the claims clean-up a periodic pass does.
func (r *Reconciler) FollowQueue(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	err := r.followQueue(ctx, &rep)
	r.report(ctx, rep)
	return rep, err
}

func (r *Reconciler) followQueue(ctx context.Context, rep *ReconcileReport) error {
	var err error
	if rep.Closed, err = r.closeLogs(ctx); err != nil {
		return err
	}
	if rep.Reopened, err = r.reopenRetried(ctx); err != nil {
		return err
	}
	rep.Flags, err = r.fixRunningFlags(ctx)
	return err
}

// report logs what a reconciliation changed, if anything.
func (r *Reconciler) report(ctx context.Context, rep ReconcileReport) {
	if rep != (ReconcileReport{}) {
		r.logger.InfoContext(ctx, "reconciled", slog.Int("rescued_runs", rep.Rescued),
			slog.Int("closed_job_logs", rep.Closed), slog.Int("reopened_job_logs", rep.Reopened), slog.Int("fixed_is_running", rep.Flags))
	}
}

// rescueDead hands the running jobs of dead processes back to River, as
// River's own rescuer would (it waits an hour): retry when attempts remain,
// discard otherwise. A job whose process is not registered at all (a
// process that died before our registration existed) counts as dead once it
// has run DeadAfter, when silence can be judged.
func (r *Reconciler) rescueDead(ctx context.Context) (int, error) {
	dead, judgeSilence, err := r.registry.Dead(ctx)
	if err != nil {
		return 0, err
	}
	var n int
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE river_job SET
				state = CASE WHEN attempt < max_attempts THEN 'available' ELSE 'discarded' END::river_job_state,
				scheduled_at = CASE WHEN attempt < max_attempts THEN now() ELSE scheduled_at END,
				finalized_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,
				errors = array_append(errors, jsonb_build_object('at', now(), 'attempt', attempt,
					'error', 'the process working this attempt (' || coalesce(attempted_by[array_upper(attempted_by, 1)], 'unknown') || ') died', 'trace', ''))
			WHERE state = 'running' AND (
				attempted_by[array_upper(attempted_by, 1)] = ANY($1)
				OR ($2 AND attempted_at < now() - make_interval(secs => $3)
					AND NOT EXISTS (SELECT 1 FROM scheduler_instances i WHERE i.id = attempted_by[array_upper(attempted_by, 1)])))`,
			dead, judgeSilence, r.cfg.DeadAfter.Seconds())
		if err != nil {
			return fmt.Errorf("rescue runs of dead processes: %w", err)
		}
		n = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `DELETE FROM scheduler_instances WHERE id = ANY($1)`, dead)
		return err
	})
	return n, err
}

// closeLogs closes job_logs rows left queued or processing for attempts
// that River has finished or moved past, and finalizes runs that ended
// without the Recorder seeing them end.
func (r *Reconciler) closeLogs(ctx context.Context) (int, error) {
	rows, err := r.pool.Query(ctx, `SELECT l.id, l.river_job_id, l.attempt, l.status, coalesce(l.scheduled_job_id, 0),
			l.job_class, coalesce(l.queue, ''), l.start_time, j.state::text, j.attempt, j.finalized_at,
			j.errors[array_upper(j.errors, 1)]->>'error'
		FROM job_logs l LEFT JOIN river_job j ON j.id = l.river_job_id
		WHERE l.status IN ('queued', 'processing') AND l.river_job_id IS NOT NULL
		  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded') OR j.attempt > l.attempt
		       OR (l.status = 'processing' AND j.state <> 'running'))`)
	if err != nil {
		return 0, fmt.Errorf("find unfinished job_logs rows: %w", err)
	}
	type stale struct {
		logID, jobID    int64
		attempt         int
		status          string
		scheduledJobID  int64
		jobClass, queue string
		start           *time.Time
		state           *string
		riverAttempt    *int
		finalizedAt     *time.Time
		lastError       *string
	}
	var todo []stale
	for rows.Next() {
		var s stale
		if err := rows.Scan(&s.logID, &s.jobID, &s.attempt, &s.status, &s.scheduledJobID, &s.jobClass, &s.queue,
			&s.start, &s.state, &s.riverAttempt, &s.finalizedAt, &s.lastError); err != nil {
			rows.Close()
			return 0, err
		}
		todo = append(todo, s)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, s := range todo {
		err := inDaemonTx(ctx, r.pool, func(tx pgx.Tx) error {
			now := r.cfg.Now()
			status, msg, final := StatusFailed, "", false
			switch {
			case s.state == nil:
				msg = "the queue no longer holds this job (deleted or cleaned up) and its result was never recorded"
			case *s.state == "completed" && *s.riverAttempt == s.attempt:
				status, final = StatusCompleted, true
			case *s.state == "cancelled" && *s.riverAttempt == s.attempt:
				status, msg, final = StatusCancelled, deref(s.lastError, "cancelled"), true
			case *s.state == "cancelled" && *s.riverAttempt < s.attempt && s.status == StatusQueued:
				// Cancelled while it waited (River UI, JobCancel): this
				// attempt never started, and the run is over.
				status, msg, final = StatusCancelled, "cancelled in the queue before this attempt started", true
			case *s.state == "discarded" && *s.riverAttempt == s.attempt:
				msg, final = deref(s.lastError, "discarded by the queue"), true
			default:
				msg = fmt.Sprintf("attempt ended without a recorded result: the process working it stopped (queue state %s, attempt %d)",
					*s.state, *s.riverAttempt)
			}
			end := now
			if s.finalizedAt != nil && final {
				end = *s.finalizedAt
			}
			closed, err := joblog.CloseRow(ctx, tx, s.logID, status, msg, end)
			if err != nil || !closed {
				return err
			}
			if !final {
				if s.state != nil && *s.state != "running" {
					// River will run it again: the next attempt waits in line,
					// as after any retryable failure.
					return joblog.QueueAfterRow(ctx, tx, s.logID, *s.riverAttempt+1)
				}
				return nil
			}
			start := end
			if s.start != nil {
				start = *s.start
			}
			return joblog.Finalize(ctx, tx, []joblog.Final{{JobID: s.jobID, ScheduledJobID: s.scheduledJobID, JobClass: s.jobClass,
				Queue: s.queue, Attempt: s.attempt, Status: status, Message: msg, Start: start, End: end}},
				r.cfg.InstanceID, r.cfg.AlertThreshold)
		})
		if err != nil {
			return 0, fmt.Errorf("close job_logs row %d: %w", s.logID, err)
		}
	}
	return len(todo), nil
}

// reopenRetried queues again the runs that were cancelled while they
// waited and that River has been told to retry since (River UI's retry).
func (r *Reconciler) reopenRetried(ctx context.Context) (int, error) {
	var n int
	err := inDaemonTx(ctx, r.pool, func(tx pgx.Tx) error {
		var err error
		n, err = joblog.ReopenRetried(ctx, tx)
		return err
	})
	return n, err
}

// fixRunningFlags makes is_running say whether the schedule has an
// unfinished run.
func (r *Reconciler) fixRunningFlags(ctx context.Context) (int, error) {
	var n int
	err := inDaemonTx(ctx, r.pool, func(tx pgx.Tx) error {
		// closeLogs has just made job_logs agree with River.
		var err error
		n, err = joblog.FixRunning(ctx, tx)
		return err
	})
	return n, err
}

// dropStaleClaims deletes schedule claims whose River job stopped running
// (a crash between a run's end and the recorder's flush). They are free to
// take over already; this only keeps the table small. Only claims older than
// staleClaimAge go: a claim taken over meanwhile has a fresh claimed_at, and
// PostgreSQL re-checks the condition on the row it locks.
func (r *Reconciler) dropStaleClaims(ctx context.Context) error {
	// Rows are locked in schedule order, as claim batches write them (no
	// deadlock), skipping any a claim is writing now (not stale, then).
	if _, err := r.pool.Exec(ctx, `DELETE FROM scheduler_run_claims WHERE scheduled_job_id IN (
			SELECT c.scheduled_job_id FROM scheduler_run_claims c
			WHERE c.claimed_at < now() - make_interval(secs => $1)
			  AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = c.river_job_id AND j.state = 'running')
			ORDER BY c.scheduled_job_id FOR UPDATE OF c SKIP LOCKED)`,
		staleClaimAge.Seconds()); err != nil {
		return fmt.Errorf("drop stale schedule claims: %w", err)
	}
	return nil
}

// staleClaimAge is how old a claim must be before the reconciler drops it.
const staleClaimAge = 10 * time.Minute

func deref(s *string, fallback string) string {
	if s == nil || *s == "" {
		return fallback
	}
	return *s
}
