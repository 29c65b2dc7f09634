package scheduler

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/procstat"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivershared/startstop"
)

// Defaults of ReconcilerConfig.
const (
	DefaultHeartbeat         = 10 * time.Second
	DefaultDeadAfter         = time.Minute
	DefaultReconcileInterval = time.Minute
	deregisterTimeout        = 5 * time.Second
	beatTimeout              = 5 * time.Second
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
}

// Reconciler keeps River's job states, job_logs and scheduled_jobs
// bookkeeping in agreement after crashes: it hands the runs of a dead
// process back to the queue, closes job_logs rows that River has moved past,
// and recomputes is_running. It also keeps this process's heartbeat.
type Reconciler struct {
	startstop.BaseStartStop

	cfg      ReconcilerConfig
	hostname string
	logger   *slog.Logger
	pool     *pgxpool.Pool

	mu          sync.Mutex
	lastBeatErr time.Time // when a heartbeat of ours last failed
}

// NewReconciler returns a Reconciler for this process.
func NewReconciler(pool *pgxpool.Pool, logger *slog.Logger, cfg ReconcilerConfig) *Reconciler {
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.DeadAfter = cmp.Or(cfg.DeadAfter, DefaultDeadAfter)
	cfg.Interval = cmp.Or(cfg.Interval, DefaultReconcileInterval)
	cfg.PassTimeout = cmp.Or(cfg.PassTimeout, cfg.Interval)
	cfg.AlertThreshold = cmp.Or(cfg.AlertThreshold, DefaultFailureAlertThreshold)
	cfg.HostKey = cmp.Or(cfg.HostKey, HostKey())
	host, _ := os.Hostname()
	return &Reconciler{cfg: cfg, hostname: host, logger: logger.With(slog.String("component", "reconciler")), pool: pool}
}

// HostKey names the pid space this process lives in: which kernel boot,
// and which pid namespace. Two processes with the same key can look each
// other up by pid; a hostname cannot tell that (containers with host
// networking, cloned VMs share one). Empty where /proc does not say, and
// then no process is judged by its pid, only by a silent heartbeat.
func HostKey() string { return hostKey("/proc") }

// hostKey reads the key from the proc file system at proc. The boot is the
// kernel's boot id (a random UUID per boot); without it there is no key. The
// pid namespace is the inode of /proc/self/ns/pid, else the start time of
// the namespace's init (pid 1), which every process of one namespace sees;
// two namespaces of one boot whose inits started in the same clock tick
// would share it, a risk taken only where the inode cannot be read. The
// first forms are what wave 1's replicas recorded.
func hostKey(proc string) string {
	boot, space := bootID(proc), pidSpace(proc)
	if boot == "" || space == "" {
		return ""
	}
	return boot + "/" + space
}

func bootID(proc string) string {
	b, err := os.ReadFile(proc + "/sys/kernel/random/boot_id")
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return "boot:" + string(bytes.TrimSpace(b))
}

func pidSpace(proc string) string {
	if ns, err := os.Readlink(proc + "/self/ns/pid"); err == nil && ns != "" {
		return strings.ReplaceAll(ns, ":", "")
	}
	stat, err := os.ReadFile(proc + "/1/stat")
	if err != nil {
		return ""
	}
	fields := procstat.StatFields(stat) // [19] is starttime, field 22
	if len(fields) < 20 {
		return ""
	}
	return "init:" + fields[19]
}

// Register records this process as alive. Call it before River starts, so
// that no job is ever attributed to an unknown process.
func (r *Reconciler) Register(ctx context.Context) error {
	if r.cfg.HostKey == "" {
		r.logger.WarnContext(ctx, "cannot tell this host's pid space from /proc: the runs of a killed process "+
			"are handed back only after its heartbeat has been silent for dead_after", slog.Duration("dead_after", r.cfg.DeadAfter))
	}
	return r.register(ctx, r.pool)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (r *Reconciler) register(ctx context.Context, db execer) error {
	_, err := db.Exec(ctx, `INSERT INTO scheduler_instances (id, hostname, pid, version, host_key) VALUES ($1, $2, $3, $4, nullif($5, ''))
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, r.cfg.InstanceID, r.hostname, os.Getpid(), r.cfg.Version, r.cfg.HostKey)
	if err != nil {
		return fmt.Errorf("register instance: %w", err)
	}
	return nil
}

// Start reconciles once, then keeps the heartbeat and reconciles
// periodically, each in a goroutine of its own, until Stop, which also
// removes this process's registration. The heartbeat must outlive the
// daemon's work (a draining job is still ours): give Start a context that
// ends with the process, not with the signal to stop. Starting twice is a
// no-op.
func (r *Reconciler) Start(ctx context.Context) error {
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
		wg.Go(func() { r.heartbeatLoop(ctx) })
		wg.Go(func() { r.reconcileLoop(ctx) })
		wg.Wait()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
		defer cancel()
		if _, err := r.pool.Exec(dctx, "DELETE FROM scheduler_instances WHERE id = $1", r.cfg.InstanceID); err != nil {
			r.logger.WarnContext(dctx, "could not deregister instance", slog.String("error", err.Error()))
		}
	}()
	return nil
}

// heartbeatLoop says this process is alive every Heartbeat, on a connection
// of its own: neither a busy pool nor a long reconciliation pass can delay
// it.
func (r *Reconciler) heartbeatLoop(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	// A beat may take longer than the interval (a reconnect on a busy
	// machine); the ticker then skips, it never queues beats up.
	every(ctx, r.cfg.Heartbeat, func() {
		beatCtx, cancel := context.WithTimeout(ctx, max(r.cfg.Heartbeat, beatTimeout))
		err := r.beat(beatCtx, &conn)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.mu.Lock()
			r.lastBeatErr = time.Now()
			r.mu.Unlock()
			r.logger.WarnContext(ctx, "heartbeat failed", slog.String("error", err.Error()))
		}
	})
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	ticker := time.NewTicker(d)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			fn()
		}
	}
}

func (r *Reconciler) beat(ctx context.Context, conn **pgx.Conn) error {
	if *conn == nil || (*conn).IsClosed() {
		c, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
		if err != nil {
			return err
		}
		*conn = c
	}
	tag, err := (*conn).Exec(ctx, "UPDATE scheduler_instances SET heartbeat_at = now() WHERE id = $1", r.cfg.InstanceID)
	if err != nil {
		_ = (*conn).Close(context.WithoutCancel(ctx))
		*conn = nil
		return err
	}
	if tag.RowsAffected() == 0 {
		r.logger.ErrorContext(ctx, "this process was declared dead by another replica while alive; registering again "+
			"(its running jobs may have been handed back to the queue: was the database unreachable from here for a minute?)",
			slog.String("instance_id", r.cfg.InstanceID))
		return r.register(ctx, *conn)
	}
	return nil
}

func (r *Reconciler) reconcileLoop(ctx context.Context) {
	every(ctx, r.cfg.Interval, func() {
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
	if rep.Closed, err = r.closeLogs(ctx); err != nil {
		return rep, err
	}
	if rep.Flags, err = r.fixRunningFlags(ctx); err != nil {
		return rep, err
	}
	if err := r.dropStaleClaims(ctx); err != nil {
		return rep, err
	}
	if rep != (ReconcileReport{}) {
		r.logger.InfoContext(ctx, "reconciled", slog.Int("rescued_runs", rep.Rescued),
			slog.Int("closed_job_logs", rep.Closed), slog.Int("fixed_is_running", rep.Flags))
	}
	return rep, nil
}

// deadInstances lists the registered processes proven gone: one in this
// pid space (same HostKey) whose pid no longer runs, or is ours (a
// previous life of this process's pid); or any whose heartbeat stopped for
// DeadAfter, judged only while silence proves something: not while our own
// heartbeat has been failing within DeadAfter, nor within DeadAfter of the
// database server's start (after an outage nobody's heartbeat could land).
func (r *Reconciler) deadInstances(ctx context.Context) (dead []string, judgeSilence bool, err error) {
	r.mu.Lock()
	judgeSilence = r.lastBeatErr.IsZero() || time.Since(r.lastBeatErr) > r.cfg.DeadAfter
	r.mu.Unlock()
	var serverYoung bool
	if err := r.pool.QueryRow(ctx, `SELECT pg_postmaster_start_time() > now() - make_interval(secs => $1)`,
		r.cfg.DeadAfter.Seconds()).Scan(&serverYoung); err != nil {
		return nil, false, fmt.Errorf("read server start: %w", err)
	}
	judgeSilence = judgeSilence && !serverYoung
	rows, err := r.pool.Query(ctx, `SELECT id, pid, coalesce(host_key, ''), heartbeat_at < now() - make_interval(secs => $1)
		FROM scheduler_instances WHERE id <> $2`, r.cfg.DeadAfter.Seconds(), r.cfg.InstanceID)
	if err != nil {
		return nil, false, fmt.Errorf("read instances: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		var pid int
		var silent bool
		if err := rows.Scan(&id, &pid, &key, &silent); err != nil {
			return nil, false, err
		}
		gone := r.cfg.HostKey != "" && key == r.cfg.HostKey && (pid == os.Getpid() || !pidAlive(pid))
		if gone || (silent && judgeSilence) {
			dead = append(dead, id)
		}
	}
	return dead, judgeSilence, rows.Err()
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// rescueDead hands the running jobs of dead processes back to River, as
// River's own rescuer would (it waits an hour): retry when attempts remain,
// discard otherwise. A job whose process is not registered at all (a
// process that died before our registration existed) counts as dead once it
// has run DeadAfter, when silence can be judged.
func (r *Reconciler) rescueDead(ctx context.Context) (int, error) {
	dead, judgeSilence, err := r.deadInstances(ctx)
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
			now := time.Now()
			status, msg, final := StatusFailed, "", false
			switch {
			case s.state == nil:
				msg = "the queue no longer holds this job (deleted or cleaned up) and its result was never recorded"
			case *s.state == "completed" && *s.riverAttempt == s.attempt:
				status, final = StatusCompleted, true
			case *s.state == "cancelled" && *s.riverAttempt == s.attempt:
				status, msg, final = StatusCancelled, deref(s.lastError, "cancelled"), true
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
			tag, err := tx.Exec(ctx, `UPDATE job_logs SET status = $2, error_message = nullif($3, ''), end_time = $4,
					duration = CASE WHEN start_time IS NULL THEN NULL ELSE round(extract(epoch FROM $4 - start_time))::int END
				WHERE id = $1 AND status IN ('queued', 'processing')`, s.logID, status, msg, end.UTC())
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			if !final {
				if s.state != nil && *s.state != "running" {
					// River will run it again: the next attempt waits in line,
					// as after any retryable failure.
					_, err = tx.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id, executed_by)
						SELECT job_id, river_job_id, job_class, queue, $2, 'queued', payload, scheduled_job_id, executed_by FROM job_logs l
						WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM job_logs WHERE river_job_id = l.river_job_id AND attempt = $2)`,
						s.logID, *s.riverAttempt+1)
				}
				return err
			}
			start := end
			if s.start != nil {
				start = *s.start
			}
			return finalize(ctx, tx, []finalRun{{JobID: s.jobID, ScheduledJobID: s.scheduledJobID, JobClass: s.jobClass,
				Queue: s.queue, Attempt: s.attempt, Status: status, Message: msg, Start: start, End: end}},
				r.cfg.InstanceID, r.cfg.AlertThreshold)
		})
		if err != nil {
			return 0, fmt.Errorf("close job_logs row %d: %w", s.logID, err)
		}
	}
	return len(todo), nil
}

// fixRunningFlags makes is_running say whether the schedule has an
// unfinished run.
func (r *Reconciler) fixRunningFlags(ctx context.Context) (int, error) {
	var n int
	err := inDaemonTx(ctx, r.pool, func(tx pgx.Tx) error {
		// closeLogs has just made job_logs agree with River.
		tag, err := tx.Exec(ctx, `UPDATE scheduled_jobs s SET is_running = x.running
			FROM (SELECT id, EXISTS (SELECT 1 FROM job_logs l WHERE l.scheduled_job_id = s2.id
					AND l.status IN ('queued', 'processing')) AS running
				FROM scheduled_jobs s2) x
			WHERE s.id = x.id AND s.is_running IS DISTINCT FROM x.running`)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("fix is_running: %w", err)
	}
	return n, nil
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
