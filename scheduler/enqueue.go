package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/atis-edu/atis-scheduler/workers"
)

// Misfire and overlap policies (scheduled_jobs.misfire_policy, overlap_policy).
const (
	MisfireRunOnce = "run_once"
	MisfireSkip    = "skip"
	MisfireRunAll  = "run_all"

	OverlapSkip     = "skip"
	OverlapAllow    = "allow"
	OverlapQueueOne = "queue_one"
)

// A run is unfinished while its latest job_logs row is queued or processing:
// the Recorder keeps that true synchronously (a retry's next attempt is
// queued as the failed one closes), and the Reconciler repairs it against
// River after a crash. Counting from job_logs, through a partial index of
// the few unfinished rows, costs the same however long River's job table
// grows; River's own args lookup scanned it.

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
	next_run_at, last_due_at, timezone, misfire_policy, overlap_policy, max_attempts, retry_delay_minutes,
	coalesce(is_active, false), last_run_message, schedule_error`

func scanRow(rows pgx.CollectableRow) (row, error) {
	var r row
	err := rows.Scan(&r.ID, &r.Name, &r.JobClass, &r.Parameters, &r.Cron, &r.Interval, &r.NextRunAt, &r.LastDueAt,
		&r.Timezone, &r.Misfire, &r.Overlap, &r.MaxAttempts, &r.RetryDelay, &r.IsActive, &r.LastRunMessage, &r.ScheduleError)
	return r, err
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
	var next *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(next_run_at) FROM scheduled_jobs
		WHERE is_active AND NOT needs_plan AND NOT (job_class = ANY($1)) AND NOT (id = ANY($2))`,
		paused, backoff).Scan(&next); err != nil {
		return res, fmt.Errorf("find next due time: %w", err)
	}
	if next != nil {
		res.NextDue = *next
	}
	if t := s.nextBackoff(); !t.IsZero() && (res.NextDue.IsZero() || t.Before(res.NextDue)) {
		res.NextDue = t
	}
	return res, nil
}

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
func firstFire(sched Schedule, r row, now time.Time) time.Time {
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
func (s *Scheduler) compile(r row) (Schedule, workers.Class, error) {
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
	if !slices.Contains([]string{OverlapSkip, OverlapAllow, OverlapQueueOne}, r.Overlap) {
		return nil, nil, fmt.Errorf("overlap_policy %q is not one of skip, allow, queue_one", r.Overlap)
	}
	if r.MaxAttempts != nil && *r.MaxAttempts < 1 {
		return nil, nil, fmt.Errorf("max_attempts %d must be at least 1", *r.MaxAttempts)
	}
	if r.RetryDelay != nil && *r.RetryDelay < 0 {
		return nil, nil, fmt.Errorf("retry_delay_minutes %d must not be negative", *r.RetryDelay)
	}
	sched, err := ParseRow(r.Cron, r.Interval, r.Timezone)
	return sched, class, err
}

// ParseRow returns the schedule of a row: its cron expression in its time
// zone when set (cron wins over interval_minutes), else its interval.
func ParseRow(cron *string, intervalMinutes *int32, timezone *string) (Schedule, error) {
	tz := "UTC"
	if timezone != nil && *timezone != "" {
		tz = *timezone
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || strings.EqualFold(tz, "local") {
		return nil, fmt.Errorf("unknown time zone %q (use an IANA name such as Asia/Baku or UTC)", tz)
	}
	switch {
	case cron != nil && strings.TrimSpace(*cron) != "":
		return ParseCron(*cron, loc)
	case intervalMinutes != nil && *intervalMinutes > 0:
		return Every(time.Duration(*intervalMinutes) * time.Minute), nil
	case intervalMinutes != nil:
		return nil, fmt.Errorf("interval_minutes %d must be greater than 0", *intervalMinutes)
	default:
		return nil, errors.New("neither cron_expression nor interval_minutes is set")
	}
}

// enqueueDue enqueues every due row, in batches of one transaction, each row
// in a savepoint of its own so that one failure leaves the others alone.
func (s *Scheduler) enqueueDue(ctx context.Context, paused []string, backoff []int64) (fired, enqueued int, more bool, err error) {
	now := s.cfg.Now().UTC()
	err = inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs
			WHERE is_active AND NOT needs_plan AND next_run_at <= $1
			  AND NOT (job_class = ANY($2)) AND NOT (id = ANY($3))
			ORDER BY next_run_at LIMIT $4 FOR UPDATE SKIP LOCKED`, now, paused, backoff, s.cfg.BatchSize)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, scanRow)
		if err != nil {
			return err
		}
		more = len(due) == s.cfg.BatchSize
		if err := s.fault("claimed"); err != nil {
			return err
		}
		for _, r := range due {
			if ctx.Err() != nil {
				return ctx.Err() // a stop: nothing of the batch is enqueued, all of it waits
			}
			n, err := s.fireInSavepoint(ctx, tx, r, now)
			if err != nil {
				s.failed(ctx, r, "enqueue", err)
				continue
			}
			fired++
			enqueued += n
		}
		return s.fault("before_commit")
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("enqueue due schedules: %w", err)
	}
	s.count(func(st *Stats) { st.Enqueued += int64(enqueued) })
	return fired, enqueued, more, nil
}

func (s *Scheduler) fireInSavepoint(ctx context.Context, tx pgx.Tx, r row, now time.Time) (int, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, err
	}
	n, err := s.fire(ctx, sp, r, now)
	if err != nil {
		_ = sp.Rollback(ctx)
		return 0, err
	}
	return n, sp.Commit(ctx)
}

// fire handles one due row: it works out which missed ticks to run
// (misfire_policy) and which to skip (overlap_policy), enqueues the runs with
// their queued job_logs rows, and advances the row.
func (s *Scheduler) fire(ctx context.Context, tx pgx.Tx, r row, now time.Time) (int, error) {
	sched, class, err := s.compile(r)
	if err != nil {
		return 0, s.markInvalid(ctx, tx, r, err)
	}
	if err := s.fault("validated"); err != nil {
		return 0, err
	}
	ticks, lastDue, next, missedSkipped := s.dueTicks(sched, r, now)
	running, waiting, err := countUnfinished(ctx, tx, r.ID)
	if err != nil {
		return 0, err
	}
	enqueued, overlapped := 0, 0
	var lags []time.Duration
	for _, tick := range ticks {
		if !overlapAllows(r.Overlap, running, waiting) {
			overlapped++
			continue
		}
		if _, err := s.enqueueRun(ctx, tx, r, class, tick, nil); err != nil {
			return 0, err
		}
		lags = append(lags, now.Sub(tick))
		waiting++
		enqueued++
	}
	skipped := overlapped + missedSkipped
	var nextArg *time.Time
	if !next.IsZero() {
		nextArg = new(next.UTC())
	}
	_, err = tx.Exec(ctx, `UPDATE scheduled_jobs SET next_run_at = $2, last_due_at = $3,
			is_running = is_running OR $4, skipped_count = skipped_count + $5,
			last_skipped_at = CASE WHEN $5 > 0 THEN $6 ELSE last_skipped_at END, updated_at = $6
		WHERE id = $1`, r.ID, nextArg, lastDue.UTC(), enqueued > 0, skipped, now)
	if err != nil {
		return 0, fmt.Errorf("advance next_run_at: %w", err)
	}
	if err := s.fault("row_updated"); err != nil {
		return 0, err
	}
	// Observed only now that nothing of the row can fail (the transaction
	// may still, rarely: the metrics then over-count).
	for _, lag := range lags {
		s.cfg.Observer.RunEnqueued(class.Name(), lag)
	}
	if overlapped > 0 {
		s.cfg.Observer.TicksSkipped(class.Name(), "overlap", overlapped)
	}
	if missedSkipped > 0 {
		s.cfg.Observer.TicksSkipped(class.Name(), "misfire", missedSkipped)
	}
	if skipped > 0 {
		s.count(func(st *Stats) { st.Skipped += int64(skipped) })
		s.logger.InfoContext(ctx, "ticks skipped", slog.Int64("scheduled_job_id", r.ID), slog.String("name", r.Name),
			slog.Int("skipped", skipped), slog.String("overlap_policy", r.Overlap), slog.String("misfire_policy", r.Misfire))
	}
	return enqueued, nil
}

// dueTicks lists the ticks of a due row up to now, and returns those to run
// under its misfire policy, the latest tick, the first tick after now, and
// how many missed ticks the policy drops.
func (s *Scheduler) dueTicks(sched Schedule, r row, now time.Time) (run []time.Time, lastDue, next time.Time, dropped int) {
	const maxWalk = 1_000_000
	var recent []time.Time // the latest RunAllCap ticks
	total := 0
	t := *r.NextRunAt
	for ; !t.IsZero() && !t.After(now) && total < maxWalk; t = sched.Next(t) {
		if len(recent) == s.cfg.RunAllCap {
			recent = recent[1:]
		}
		recent = append(recent, t)
		total++
	}
	if total == maxWalk { // a very long outage of a very frequent schedule
		t = sched.Next(now)
	}
	lastDue, next = recent[len(recent)-1], t
	switch r.Misfire {
	case MisfireRunAll:
		run = recent
	case MisfireSkip:
		if now.Sub(lastDue) <= s.cfg.MisfireGrace {
			run = recent[len(recent)-1:]
		}
	default: // run_once: one run stands for every missed tick
		run = recent[len(recent)-1:]
		return run, lastDue, next, 0
	}
	return run, lastDue, next, total - len(run)
}

// overlapAllows says whether a new run may be enqueued beside running and
// waiting unfinished ones.
func overlapAllows(policy string, running, waiting int) bool {
	switch policy {
	case OverlapAllow:
		return true
	case OverlapQueueOne:
		return waiting == 0 // one may wait behind the running one
	default:
		return running+waiting == 0
	}
}

func countUnfinished(ctx context.Context, tx pgx.Tx, scheduledJobID int64) (running, waiting int, err error) {
	err = tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'processing'), count(*) FILTER (WHERE status = 'queued')
		FROM job_logs WHERE scheduled_job_id = $1 AND status IN ('queued', 'processing')`, scheduledJobID).Scan(&running, &waiting)
	if err != nil {
		err = fmt.Errorf("count unfinished runs: %w", err)
	}
	return running, waiting, err
}

// runMetadata is what the Recorder needs about a run, stored in River's
// job metadata at enqueue time.
type runMetadata struct {
	JobClass          string `json:"job_class"`
	OverlapPolicy     string `json:"overlap_policy,omitempty"`
	RetryDelaySeconds *int64 `json:"retry_delay_seconds,omitempty"`
	ScheduledJobName  string `json:"scheduled_job_name,omitempty"`
}

// enqueueRun enqueues one run of row r.
func (s *Scheduler) enqueueRun(ctx context.Context, tx pgx.Tx, r row, class workers.Class, scheduledFor time.Time, executedBy *int64) (int64, error) {
	maxAttempts := 1 // the seed's default max_attempts
	if r.MaxAttempts != nil {
		maxAttempts = int(*r.MaxAttempts)
	}
	delay := 5 * time.Minute // the seed's default retry_delay_minutes
	if r.RetryDelay != nil {
		delay = time.Duration(*r.RetryDelay) * time.Minute
	}
	id, err := Enqueue(ctx, tx, s.river, NewRun{
		Args:             workers.Args{ExecutedBy: executedBy, Parameters: r.Parameters, ScheduledFor: scheduledFor.UTC(), ScheduledJobID: r.ID},
		Class:            class.Name(),
		JobClass:         r.JobClass,
		MaxAttempts:      maxAttempts,
		OverlapPolicy:    r.Overlap,
		Queue:            s.cfg.Queue,
		Redacted:         s.registry.Redact(r.JobClass, r.Parameters),
		RetryDelay:       delay,
		ScheduledJobName: r.Name,
		afterInsert:      func() error { return s.fault("river_inserted") },
	})
	if err != nil {
		return 0, err
	}
	return id, s.fault("job_log_inserted")
}

// NewRun is a run to enqueue with Enqueue.
type NewRun struct {
	// Args are the run's arguments (ScheduledJobID 0 for a run of no schedule).
	Args workers.Args
	// Class is the River kind: the canonical class name.
	Class string
	// JobClass is the class as the schedule names it (an alias, maybe), for
	// job_logs. Defaults to Class.
	JobClass string
	// MaxAttempts defaults to 1.
	MaxAttempts int
	// OverlapPolicy governs whether the run waits for another of its
	// schedule (skip, queue_one) or not (allow, the default without one).
	OverlapPolicy string
	// Queue defaults to River's default queue.
	Queue string
	// Redacted are the parameters as job_logs and River's queue may show
	// them. Where they differ from Args.Parameters (secrets hidden), the
	// queue carries them, marked, and the worker reads the real ones from
	// the schedule at run time: a run with secrets needs a ScheduledJobID.
	// Defaults to Args.Parameters.
	Redacted json.RawMessage
	// RetryDelay is the wait before a retry.
	RetryDelay time.Duration
	// ScheduledJobName names the schedule, if any.
	ScheduledJobName string

	afterInsert func() error // tests: a failure between the two inserts
}

// Enqueue inserts, in tx, one River job and its queued attempt-1 job_logs
// row, and returns the job's id. Every run, scheduled, manual or dispatched,
// goes through it. Neither row holds secrets (see NewRun.Redacted); a run
// with secrets and no schedule is refused (workers.ErrSecretsWithoutSchedule).
func Enqueue(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], run NewRun) (int64, error) {
	delay := int64(run.RetryDelay / time.Second)
	meta, err := json.Marshal(runMetadata{JobClass: cmp.Or(run.JobClass, run.Class), OverlapPolicy: run.OverlapPolicy,
		RetryDelaySeconds: &delay, ScheduledJobName: run.ScheduledJobName})
	if err != nil {
		return 0, err
	}
	queued, err := run.Args.WithRedacted(run.Redacted)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", run.Class, err)
	}
	res, err := client.InsertTx(ctx, tx, workers.InsertArgs(run.Class, queued), &river.InsertOpts{
		MaxAttempts: max(run.MaxAttempts, 1), Metadata: meta, Queue: cmp.Or(run.Queue, river.QueueDefault),
	})
	if err != nil {
		return 0, fmt.Errorf("insert river job: %w", err)
	}
	if run.afterInsert != nil {
		if err := run.afterInsert(); err != nil {
			return 0, err
		}
	}
	payload, err := json.Marshal(queued)
	if err != nil {
		return 0, err
	}
	var scheduledJobID *int64
	if run.Args.ScheduledJobID != 0 {
		scheduledJobID = &run.Args.ScheduledJobID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id, executed_by)
		VALUES ($1, $2, $3, $4, 1, 'queued', $5, $6, $7)`,
		fmt.Sprint(res.Job.ID), res.Job.ID, cmp.Or(run.JobClass, run.Class), res.Job.Queue, payload, scheduledJobID, run.Args.ExecutedBy); err != nil {
		return 0, fmt.Errorf("insert job_logs row: %w", err)
	}
	return res.Job.ID, nil
}

// ErrNotFound is returned by RunNow for an unknown schedule.
var ErrNotFound = errors.New("scheduler: no such scheduled job")

// RunNow enqueues a run of the schedule with id now, as executedBy (nil for
// the system), whatever its next_run_at. Overlap is not checked at enqueue:
// an admin asked for this run; under 'skip' and 'queue_one' it waits for a
// running one to finish before it starts.
func (s *Scheduler) RunNow(ctx context.Context, id int64, executedBy *int64) (int64, error) {
	var jobID int64
	err := inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs WHERE id = $1 FOR UPDATE`, id)
		if err != nil {
			return err
		}
		r, err := pgx.CollectExactlyOneRow(rows, scanRow)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		_, class, err := s.compile(r)
		if err != nil {
			return fmt.Errorf("scheduled job %d (%s) cannot run: %w", r.ID, r.Name, err)
		}
		if jobID, err = s.enqueueRun(ctx, tx, r, class, s.cfg.Now(), executedBy); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE scheduled_jobs SET is_running = true, updated_at = now() WHERE id = $1`, id)
		return err
	})
	return jobID, err
}

// pausedClasses reads the pause switches in platform.feature_flags: the
// job_class values paused (with their aliases), or all.
func (s *Scheduler) pausedClasses(ctx context.Context) (names []string, all bool, err error) {
	rows, err := s.pool.Query(ctx, `SELECT key FROM platform.feature_flags
		WHERE is_enabled AND deleted_at IS NULL AND (key = 'scheduler.paused' OR key LIKE 'scheduler.paused.%')`)
	if err != nil {
		return nil, false, fmt.Errorf("read pause switches: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, false, fmt.Errorf("read pause switches: %w", err)
	}
	names = []string{}
	for _, k := range keys {
		if k == "scheduler.paused" {
			all = true
			continue
		}
		names = append(names, s.registry.NamesFor(strings.TrimPrefix(k, "scheduler.paused."))...)
	}
	return names, all, nil
}

// failed puts a row whose plan or enqueue failed (a database error: nothing
// an admin can fix on the row) aside for a while, so that the other rows go
// on. A failure caused by the daemon's own stop is no failure: the row is
// left as it was and nothing is logged.
func (s *Scheduler) failed(ctx context.Context, r row, step string, err error) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	s.backoff[r.ID] = s.cfg.Now().Add(failureBackoff)
	s.stats.Failed++
	s.mu.Unlock()
	s.logger.ErrorContext(ctx, step+" failed; retrying later", slog.Int64("scheduled_job_id", r.ID),
		slog.String("name", r.Name), slog.String("error", err.Error()), slog.Duration("retry_in", failureBackoff))
}

func (s *Scheduler) backoffIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	ids := []int64{}
	for id, until := range s.backoff {
		if now.Before(until) {
			ids = append(ids, id)
		} else {
			delete(s.backoff, id)
		}
	}
	return ids
}

func (s *Scheduler) nextBackoff() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, until := range s.backoff {
		if first.IsZero() || until.Before(first) {
			first = until
		}
	}
	return first
}

func (s *Scheduler) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Scheduler) fault(step string) error {
	if s.cfg.fault == nil {
		return nil
	}
	return s.cfg.fault(step)
}
