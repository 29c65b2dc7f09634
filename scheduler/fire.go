package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Misfire policies (scheduled_jobs.misfire_policy): what a row that missed
// ticks (the daemon was down) runs.
const (
	MisfireRunOnce = "run_once"
	MisfireSkip    = "skip"
	MisfireRunAll  = "run_all"
)

// enqueueDue enqueues the due rows, a batch per transaction: claimed with
// FOR UPDATE SKIP LOCKED, then enqueued with set-based statements (River's
// InsertManyTx, one job_logs insert, one bookkeeping update). If the batch
// fails, its rows are enqueued one by one, each in a savepoint of its own,
// so that one bad row still cannot hold up the others.
func (s *Scheduler) enqueueDue(ctx context.Context, paused []string, backoff []int64) (fired, enqueued int, more bool, err error) {
	now := s.cfg.Now().UTC()
	var done []firing
	err = inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		var due []row
		due, more, err = s.claim(ctx, tx, fireable+` AND next_run_at <= $2 ORDER BY next_run_at`, now, paused, backoff)
		if err != nil {
			return err
		}
		if err := s.fault("claimed"); err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		if fired, enqueued, done, err = s.inBatch(ctx, tx, due, now, "enqueue", s.fire); err != nil {
			return err
		}
		return s.fault("before_commit")
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("enqueue due schedules: %w", err)
	}
	s.committed(ctx, done, enqueued)
	return fired, enqueued, more, nil
}

// committed tells metrics, the log and the freshener what a committed
// transaction's rows did.
func (s *Scheduler) committed(ctx context.Context, done []firing, enqueued int) {
	s.observe(ctx, done)
	s.count(func(st *Stats) { st.Enqueued += int64(enqueued) })
	s.freshen.enqueued(ctx, enqueued)
}

// fireable is the claim condition (see claim) of a row the scheduler may
// fire: active, planned, its class not paused ($3), not set aside ($4).
const fireable = `is_active AND NOT needs_plan AND NOT (job_class = ANY($3)) AND NOT (id = ANY($4))`

// batchFunc handles rows in tx: it returns how many runs it enqueued and
// what each row did, to observe once committed.
type batchFunc func(ctx context.Context, tx pgx.Tx, rows []row, now time.Time) (int, []firing, error)

// inBatch applies do to rows as one batch in a savepoint. If the batch
// fails (but not by a stop, which leaves every row for the next cycle), it
// applies do to each row in a savepoint of its own, so that one bad row
// cannot hold up the others; a row that fails alone is put aside for a
// while (step names what failed). It returns how many rows were handled,
// how many runs do enqueued, and what the rows did, for the caller to
// observe once its transaction has committed.
func (s *Scheduler) inBatch(ctx context.Context, tx pgx.Tx, rows []row, now time.Time, step string, do batchFunc) (handled, enqueued int, done []firing, err error) {
	n, done, err := s.inSavepoint(ctx, tx, rows, now, do)
	switch {
	case err == nil:
		return len(rows), n, done, nil
	case ctx.Err() != nil:
		return 0, 0, nil, ctx.Err()
	case len(rows) > 1:
		s.logger.WarnContext(ctx, "batch "+step+" failed; its rows go one by one",
			slog.Int("rows", len(rows)), slog.String("error", err.Error()))
	}
	for _, r := range rows {
		if ctx.Err() != nil {
			return 0, 0, nil, ctx.Err()
		}
		n, one, err := s.inSavepoint(ctx, tx, []row{r}, now, do)
		var p *panicError
		switch {
		case err == nil:
			handled++
			enqueued += n
			done = append(done, one...)
		case errors.As(err, &p) && s.setAside(ctx, tx, r, step, p):
			handled++
		default:
			s.failed(ctx, r, step, err)
		}
	}
	return handled, enqueued, done, nil
}

// inSavepoint applies do to rows in a savepoint of tx. A panic in do (a bug
// that some row's content reaches) rolls the savepoint back and comes back
// as a *panicError, so that inBatch can find the row and set it aside.
func (s *Scheduler) inSavepoint(ctx context.Context, tx pgx.Tx, rows []row, now time.Time, do batchFunc) (int, []firing, error) {
	var n int
	var done []firing
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) (err error) {
		defer recovered(&err)
		n, done, err = do(ctx, sp, rows, now)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return n, done, nil
}

// setAside puts a row whose planning or firing panicked aside for
// setAsideFor, saying why where admins look (schedule_error and
// last_run_message), and logs the panic with its stack once (not again
// while the reason stays the same). Its next_run_at is kept: the panic may
// be the daemon's own bug rather than the row's, and every row of a
// batch would then be set aside; tried again later, a row that no longer
// panics fires under its misfire policy and its reason is cleared. It
// says whether the row could be written; if not, the caller backs off.
func (s *Scheduler) setAside(ctx context.Context, tx pgx.Tx, r row, step string, p *panicError) bool {
	msg := fmt.Sprintf("not scheduled: internal error while trying to %s this row (%v); tried again in %s; report the daemon's log",
		step, p.value, setAsideFor)
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := sp.Exec(ctx, `UPDATE scheduled_jobs SET schedule_error = $2, last_run_message = $2 WHERE id = $1`, r.ID, msg)
		return err
	})
	if r.ScheduleError == nil || *r.ScheduleError != msg {
		s.logger.ErrorContext(ctx, step+" panicked on a row; the row is set aside", slog.Int64("scheduled_job_id", r.ID),
			slog.String("name", r.Name), slog.String("panic", fmt.Sprint(p.value)), slog.String("stack", string(p.stack)))
	}
	if err != nil {
		return false
	}
	s.mu.Lock()
	s.backoff[r.ID] = s.cfg.Now().Add(setAsideFor)
	s.mu.Unlock()
	s.count(func(st *Stats) { st.Invalid++ })
	return true
}

// setAsideFor is how long a row whose handling panicked waits before it
// is tried again.
const setAsideFor = 10 * time.Minute

// firing is what one due row does in a cycle.
type firing struct {
	row     row
	class   workers.Class
	invalid string // why the row cannot be scheduled, if it cannot
	runs    []time.Time
	lags    []time.Duration
	plan    firePlan
}

// fire handles due rows together: it explains the invalid ones, works out
// for each valid one which missed ticks to run (misfire_policy) and which
// to skip (overlap_policy), enqueues the runs with their queued job_logs
// rows, and advances the rows: a few statements whatever the number of rows.
func (s *Scheduler) fire(ctx context.Context, tx pgx.Tx, due []row, now time.Time) (int, []firing, error) {
	firings := make([]firing, len(due))
	var ids []int64
	for i, r := range due {
		firings[i].row = r
		sched, class, err := s.compile(r)
		if err != nil {
			firings[i].invalid = "not scheduled: " + err.Error()
			continue
		}
		ticks, lastDue, next, missed := dueTicks(sched, *r.NextRunAt, r.Misfire, now, s.cfg.RunAllCap, s.cfg.MisfireGrace)
		firings[i].class, firings[i].plan = class, firePlan{ticks: ticks, lastDue: lastDue, next: next, missed: missed}
		ids = append(ids, r.ID)
	}
	if err := s.fault("validated"); err != nil {
		return 0, nil, err
	}
	if err := explainInvalid(ctx, tx, firings); err != nil {
		return 0, nil, err
	}
	unfinished, err := countUnfinished(ctx, tx, ids)
	if err != nil {
		return 0, nil, err
	}
	var runs []runqueue.Run
	for i := range firings {
		f := &firings[i]
		if f.invalid != "" {
			continue
		}
		u := unfinished[f.row.ID]
		f.runs, f.plan.overlapped = overlapFilter(f.row.Overlap, f.plan.ticks, u.running, u.waiting)
		for _, tick := range f.runs {
			runs = append(runs, s.newRun(f.row, f.class, tick, nil))
			f.lags = append(f.lags, now.Sub(tick))
		}
	}
	if _, err := runqueue.EnqueueMany(ctx, tx, s.river, runs, runqueue.Hooks{AfterInsert: func() error { return s.fault("river_inserted") }}); err != nil {
		return 0, nil, err
	}
	if err := s.fault("job_log_inserted"); err != nil {
		return 0, nil, err
	}
	if err := advance(ctx, tx, firings, now); err != nil {
		return 0, nil, err
	}
	if err := s.fault("row_updated"); err != nil {
		return 0, nil, err
	}
	return len(runs), firings, nil
}

// explainInvalid stops scheduling the invalid rows and says why, where admins
// look, in one statement.
func explainInvalid(ctx context.Context, tx pgx.Tx, firings []firing) error {
	var ids []int64
	var msgs []string
	for _, f := range firings {
		if f.invalid != "" {
			ids, msgs = append(ids, f.row.ID), append(msgs, f.invalid)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE scheduled_jobs s SET next_run_at = NULL, needs_plan = false,
			schedule_error = x.msg, last_run_message = x.msg, updated_at = now()
		FROM unnest($1::bigint[], $2::text[]) AS x(id, msg) WHERE s.id = x.id`, ids, msgs)
	if err != nil {
		return fmt.Errorf("explain invalid rows: %w", err)
	}
	return nil
}

// advance moves each valid row past its handled ticks, in one statement. A
// row whose schedule fires no more is left without next_run_at, saying so.
func advance(ctx context.Context, tx pgx.Tx, firings []firing, now time.Time) error {
	var (
		ids           []int64
		next, lastDue []*time.Time
		enqueued      []bool
		skipped       []int32
		ended         []*string
	)
	for _, f := range firings {
		if f.invalid != "" {
			continue
		}
		var n, d *time.Time
		var end *string
		if !f.plan.next.IsZero() {
			n = new(f.plan.next.UTC())
		} else {
			end = new(fmt.Sprintf("not scheduled: the schedule has no fire time after %s", now.UTC().Format(time.RFC3339)))
		}
		if !f.plan.lastDue.IsZero() {
			d = new(f.plan.lastDue.UTC())
		}
		ids, next, lastDue, ended = append(ids, f.row.ID), append(next, n), append(lastDue, d), append(ended, end)
		enqueued, skipped = append(enqueued, len(f.runs) > 0), append(skipped, int32(min(f.skipped(), math.MaxInt32)))
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE scheduled_jobs s SET next_run_at = x.next, last_due_at = coalesce(x.last_due, s.last_due_at),
			is_running = coalesce(s.is_running, false) OR x.enqueued,
			skipped_count = least(coalesce(s.skipped_count, 0)::bigint + x.skipped, 2147483647)::int,
			last_skipped_at = CASE WHEN x.skipped > 0 THEN $7 ELSE s.last_skipped_at END, updated_at = $7,
			schedule_error = x.ended,
			last_run_message = CASE WHEN x.ended IS NOT NULL THEN x.ended
				WHEN s.last_run_message = s.schedule_error THEN NULL ELSE s.last_run_message END
		FROM unnest($1::bigint[], $2::timestamp[], $3::timestamp[], $4::bool[], $5::int[], $6::text[])
			AS x(id, next, last_due, enqueued, skipped, ended)
		WHERE s.id = x.id`, ids, next, lastDue, enqueued, skipped, ended, now)
	if err != nil {
		return fmt.Errorf("advance next_run_at: %w", err)
	}
	return nil
}

func (f firing) skipped() int { return f.plan.overlapped + f.plan.missed }

// observe tells metrics and the log what committed rows did.
func (s *Scheduler) observe(ctx context.Context, firings []firing) {
	defer s.logPanic(ctx, "observe committed rows") // they are committed: a panic here must not undo the cycle
	var skipped, invalid int64
	for _, f := range firings {
		if f.invalid != "" {
			invalid++
			if f.row.ScheduleError == nil || *f.row.ScheduleError != f.invalid {
				s.logger.WarnContext(ctx, "scheduled job cannot be scheduled", slog.Int64("scheduled_job_id", f.row.ID),
					slog.String("name", f.row.Name), slog.String("error", f.invalid))
			}
			continue
		}
		class := f.class.Name()
		for _, lag := range f.lags {
			s.cfg.Observer.RunEnqueued(class, lag)
		}
		if f.plan.overlapped > 0 {
			s.cfg.Observer.TicksSkipped(class, "overlap", f.plan.overlapped)
		}
		if f.plan.missed > 0 {
			s.cfg.Observer.TicksSkipped(class, "misfire", f.plan.missed)
		}
		if n := f.skipped(); n > 0 {
			skipped += int64(n)
			s.logger.InfoContext(ctx, "ticks skipped", slog.Int64("scheduled_job_id", f.row.ID), slog.String("name", f.row.Name),
				slog.Int("skipped", n), slog.String("overlap_policy", f.row.Overlap), slog.String("misfire_policy", f.row.Misfire))
		}
	}
	s.count(func(st *Stats) { st.Skipped += skipped; st.Invalid += invalid })
}

// dueTicks lists the ticks of sched from first (a due row's next_run_at) up
// to now (schedule.Due: bounded whatever first is), and returns those to run
// under misfire policy misfire (run_all keeps the latest runAllCap; skip
// runs the latest only if it is at most grace late), the latest tick (zero
// when none is within reach: then nothing runs), the first tick after now
// (zero: the schedule fires no more), and how many missed ticks the policy
// drops.
func dueTicks(sched schedule.Schedule, first time.Time, misfire string, now time.Time, runAllCap int, grace time.Duration) (run []time.Time, lastDue, next time.Time, dropped int) {
	recent, total, next := schedule.Due(sched, first, now, runAllCap)
	if len(recent) == 0 {
		return nil, time.Time{}, next, 0
	}
	lastDue = recent[len(recent)-1]
	switch misfire {
	case MisfireRunAll:
		run = recent
	case MisfireSkip:
		if now.Sub(lastDue) <= grace {
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
	case runqueue.OverlapAllow:
		return true
	case runqueue.OverlapQueueOne:
		return waiting == 0 // one may wait behind the running one
	default:
		return running+waiting == 0
	}
}

// firePlan is what a due row's misfire policy makes of its ticks.
type firePlan struct {
	ticks      []time.Time // to run, before the overlap policy
	lastDue    time.Time   // the latest tick handled
	next       time.Time   // the first tick after now (zero: none)
	missed     int         // ticks the misfire policy drops
	overlapped int         // ticks the overlap policy drops
}

// overlapFilter keeps the ticks that the overlap policy lets run beside
// running and waiting unfinished runs, and counts the others.
func overlapFilter(policy string, ticks []time.Time, running, waiting int) (run []time.Time, dropped int) {
	for _, tick := range ticks {
		if !overlapAllows(policy, running, waiting) {
			dropped++
			continue
		}
		run = append(run, tick)
		waiting++
	}
	return run, dropped
}

// unfinishedRuns counts a schedule's runs not yet over.
type unfinishedRuns struct{ running, waiting int }

// countUnfinished counts, in one query, the unfinished runs of schedules.
//
// A run is unfinished while its latest job_logs row is queued or
// processing: the Recorder keeps that true within its flush interval (a
// retry's next attempt is queued as the failed one closes), and the
// Reconciler repairs it against River after a crash. A skip or queue_one
// run has started once it holds its schedule's claim, written at once,
// though its row may still say queued until the next flush: it counts as
// running, not waiting. Counting from job_logs, through a partial
// index of the few unfinished rows, costs the same however long River's job
// table grows; River's own args lookup scanned it.
func countUnfinished(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]unfinishedRuns, error) {
	out := map[int64]unfinishedRuns{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT l.scheduled_job_id,
			count(*) FILTER (WHERE l.status = 'processing' OR c.river_job_id IS NOT NULL),
			count(*) FILTER (WHERE l.status = 'queued' AND c.river_job_id IS NULL)
		FROM job_logs l LEFT JOIN scheduler_run_claims c
			ON c.scheduled_job_id = l.scheduled_job_id AND c.river_job_id = l.river_job_id AND c.attempt = l.attempt
		WHERE l.scheduled_job_id = ANY($1) AND l.status IN ('queued', 'processing') GROUP BY l.scheduled_job_id`, ids)
	if err != nil {
		return nil, fmt.Errorf("count unfinished runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var u unfinishedRuns
		if err := rows.Scan(&id, &u.running, &u.waiting); err != nil {
			return nil, fmt.Errorf("count unfinished runs: %w", err)
		}
		out[id] = u
	}
	return out, rows.Err()
}

// newRun is the run of row r for tick scheduledFor.
func (s *Scheduler) newRun(r row, class workers.Class, scheduledFor time.Time, executedBy *int64) runqueue.Run {
	maxAttempts := runqueue.DefaultMaxAttempts
	if r.MaxAttempts != nil {
		maxAttempts = int(*r.MaxAttempts)
	}
	delay := runqueue.DefaultRetryDelay
	if r.RetryDelay != nil {
		delay = time.Duration(*r.RetryDelay) * time.Minute
	}
	return runqueue.Run{
		Args:             workers.Args{ExecutedBy: executedBy, Parameters: r.Parameters, ScheduledFor: scheduledFor.UTC(), ScheduledJobID: r.ID},
		Class:            class.Name(),
		JobClass:         r.JobClass,
		MaxAttempts:      maxAttempts,
		OverlapPolicy:    r.Overlap,
		Queue:            s.cfg.Queue,
		Redacted:         s.registry.Redact(r.JobClass, r.Parameters),
		RetryDelay:       delay,
		ScheduledJobName: r.Name,
	}
}
