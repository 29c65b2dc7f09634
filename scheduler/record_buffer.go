package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// record is one thing the Recorder writes about an attempt: its start, its
// end, or both (an attempt that starts and ends within one flush goes
// straight from queued to its final row, its start_time set).
type record struct {
	run   run
	start time.Time // set: the attempt started (unguarded runs)
	end   *outcome  // set: the attempt ended
}

// attemptKey names one attempt of one River job.
type attemptKey struct {
	jobID   int64
	attempt int
}

func (r record) key() attemptKey { return attemptKey{r.run.job.ID, r.run.job.Attempt} }

// Start begins writing buffered records every FlushInterval or FlushSize
// records until ctx ends or Stop, which writes what is left. Start it
// before River works jobs and stop it after River has stopped. Starting
// twice is a no-op.
func (rec *Recorder) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := rec.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	rec.mu.Lock()
	rec.open = true
	rec.mu.Unlock()
	go func() {
		defer stopped()
		started()
		var wg sync.WaitGroup
		wg.Go(func() { rec.claimLoop(ctx) })
		rec.loop(ctx)
		wg.Wait()
	}()
	return nil
}

// Stop writes what is buffered and returns; records submitted afterwards
// are written at once. Safe before Start and twice.
func (rec *Recorder) Stop() {
	rec.mu.Lock() // waits for submitters in flight: the loop still drains
	rec.open = false
	rec.mu.Unlock()
	rec.BaseStartStop.Stop()
}

// submit hands a record to the buffer, or writes it at once when the
// buffer is not running. A full buffer makes the worker wait: the queue
// slows down to what the database can record.
func (rec *Recorder) submit(ctx context.Context, r record) {
	rec.mu.RLock()
	if rec.open {
		rec.records <- r
		rec.mu.RUnlock()
		return
	}
	rec.mu.RUnlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := rec.writeNow(wctx, []record{r}); err != nil {
		rec.logger.ErrorContext(ctx, "could not record attempt", slog.Int64("job_id", r.run.job.ID), slog.String("error", err.Error()))
	}
}

// loop gathers records into flushes. Records of one attempt merge (start,
// then end); a record for an attempt whose end is already pending (a
// snoozed run starting again) closes the flush first, so that order holds.
func (rec *Recorder) loop(ctx context.Context) {
	ticker := time.NewTicker(rec.cfg.FlushInterval)
	defer ticker.Stop()
	var pending []record
	index := map[attemptKey]int{}
	flush := func() {
		if len(pending) > 0 {
			rec.flush(ctx, pending)
			pending, index = nil, map[attemptKey]int{}
		}
	}
	add := func(r record) {
		i, ok := index[r.key()]
		switch {
		case ok && pending[i].end == nil && r.end != nil:
			pending[i].end = r.end // the start and end of one attempt: one write
			return
		case ok:
			flush()
		}
		index[r.key()] = len(pending)
		pending = append(pending, r)
		if len(pending) >= rec.cfg.FlushSize {
			flush()
		}
	}
	for {
		select {
		case r := <-rec.records:
			add(r)
		case <-ticker.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case r := <-rec.records:
					add(r)
					continue
				default:
				}
				break
			}
			flush()
			return
		}
	}
}

// flush writes records in one transaction. A connection failure is retried
// (the buffer waits, and with it the workers) until the write succeeds or
// the Recorder stops; a record the database refuses is written alone, and
// dropped, loudly, if it is refused again: the Reconciler then closes its
// attempt from River's state.
func (rec *Recorder) flush(ctx context.Context, records []record) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		err := rec.writeNow(wctx, records)
		cancel()
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			return
		case errors.As(err, &pgErr) && len(records) > 1:
			for _, r := range records {
				rec.flush(ctx, []record{r})
			}
			return
		case errors.As(err, &pgErr) || ctx.Err() != nil:
			rec.logger.Error("could not record attempts; the reconciler will close them from the queue's state",
				slog.Int("records", len(records)), slog.Int64("first_job_id", records[0].run.job.ID), slog.String("error", err.Error()))
			return
		}
		rec.logger.Warn("could not record attempts; retrying", slog.Int("records", len(records)),
			slog.Duration("retry_in", wait), slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// writeNow writes records in one transaction.
func (rec *Recorder) writeNow(ctx context.Context, records []record) error {
	return pgx.BeginFunc(ctx, rec.pool, func(tx pgx.Tx) error { return rec.write(ctx, tx, records) })
}

// write applies records with a fixed number of statements: attempt ends
// (closing the job_logs row, or inserting it when missing), runs put back
// in line, next attempts queued behind retried failures, attempt starts,
// and the finished runs' bookkeeping. Only attempts that this write closed
// get bookkeeping: one the Reconciler closed first is not counted twice.
func (rec *Recorder) write(ctx context.Context, tx pgx.Tx, records []record) error {
	var ends, requeues, starts []record
	for _, r := range records {
		switch {
		case r.end == nil:
			starts = append(starts, r)
		case r.end.status == StatusQueued:
			requeues = append(requeues, r)
		default:
			ends = append(ends, r)
		}
	}
	closed, err := closeAttempts(ctx, tx, ends)
	if err != nil {
		return err
	}
	if err := requeueAttempts(ctx, tx, requeues); err != nil {
		return err
	}
	if err := releaseClaims(ctx, tx, ends, requeues); err != nil {
		return err
	}
	var retried []record
	var finals []finalRun
	for _, r := range ends {
		if !closed[r.key()] {
			continue
		}
		if !r.end.final {
			retried = append(retried, r)
			continue
		}
		finals = append(finals, finalRun{
			JobID: r.run.job.ID, ScheduledJobID: r.run.args.ScheduledJobID, JobClass: r.run.meta.JobClass, Queue: r.run.job.Queue,
			Attempt: r.run.job.Attempt, Status: r.end.status, Message: r.end.message, Trace: r.end.trace, Start: r.end.start, End: r.end.end,
		})
	}
	if err := queueNextAttempts(ctx, tx, retried); err != nil {
		return err
	}
	if err := startAttempts(ctx, tx, starts); err != nil {
		return err
	}
	return finalize(ctx, tx, finals, rec.cfg.InstanceID, rec.cfg.FailureAlertThreshold)
}

// attemptColumns are the columns, as arrays, that identify and describe
// attempts for the statements below.
type attemptColumns struct {
	jobIDs    []string
	riverIDs  []int64
	attempts  []int32
	classes   []string
	queues    []string
	payloads  []string
	schedules []*int64
	users     []*int64
}

func columnsOf(records []record, attempt func(record) int) attemptColumns {
	var c attemptColumns
	for _, r := range records {
		c.jobIDs = append(c.jobIDs, fmt.Sprint(r.run.job.ID))
		c.riverIDs = append(c.riverIDs, r.run.job.ID)
		c.attempts = append(c.attempts, int32(attempt(r)))
		c.classes, c.queues = append(c.classes, r.run.meta.JobClass), append(c.queues, r.run.job.Queue)
		c.payloads = append(c.payloads, string(r.run.payload))
		c.schedules, c.users = append(c.schedules, r.run.scheduledJobID()), append(c.users, r.run.args.ExecutedBy)
	}
	return c
}

func thisAttempt(r record) int { return r.run.job.Attempt }

// closeAttempts writes the ends of attempts and returns those it closed.
func closeAttempts(ctx context.Context, tx pgx.Tx, ends []record) (map[attemptKey]bool, error) {
	closed := map[attemptKey]bool{}
	if len(ends) == 0 {
		return closed, nil
	}
	c := columnsOf(ends, thisAttempt)
	var statuses, results, messages, traces []string
	var startsAt, endsAt []time.Time
	var durations []int32
	for _, r := range ends {
		o := r.end
		statuses, results = append(statuses, o.status), append(results, string(o.result))
		messages, traces = append(messages, o.message), append(traces, o.trace)
		startsAt, endsAt = append(startsAt, o.start.UTC()), append(endsAt, o.end.UTC())
		durations = append(durations, durationSeconds(o.end.Sub(o.start)))
	}
	rows, err := tx.Query(ctx, `WITH x AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::timestamp[], $14::timestamp[], $15::int[])
				AS x(jid, rj, att, class, queue, payload, sj, by, status, result, msg, trace, start_at, end_at, dur)
		), upd AS (
			UPDATE job_logs l SET status = x.status, result = x.result::jsonb, error_message = nullif(x.msg, ''),
				error_trace = nullif(x.trace, ''), end_time = x.end_at, duration = x.dur, start_time = coalesce(l.start_time, x.start_at)
			FROM x WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att AND l.status IN ('queued', 'processing')
			RETURNING l.river_job_id, l.attempt
		), ins AS (
			INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, start_time, scheduled_job_id,
				executed_by, result, error_message, error_trace, end_time, duration)
			SELECT x.jid, x.rj, x.class, x.queue, x.att, x.status, x.payload::jsonb, x.start_at, x.sj, x.by, x.result::jsonb,
				nullif(x.msg, ''), nullif(x.trace, ''), x.end_at, x.dur
			FROM x WHERE NOT EXISTS (SELECT 1 FROM job_logs l WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att)
			RETURNING river_job_id, attempt
		)
		SELECT river_job_id, attempt FROM upd UNION ALL SELECT river_job_id, attempt FROM ins`,
		c.jobIDs, c.riverIDs, c.attempts, c.classes, c.queues, c.payloads, c.schedules, c.users,
		statuses, results, messages, traces, startsAt, endsAt, durations)
	if err != nil {
		return nil, fmt.Errorf("record attempt ends: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k attemptKey
		if err := rows.Scan(&k.jobID, &k.attempt); err != nil {
			return nil, fmt.Errorf("record attempt ends: %w", err)
		}
		closed[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("record attempt ends: %w", err)
	}
	return closed, nil
}

// requeueAttempts puts attempts that were no attempt after all (snoozed,
// interrupted by a shutdown) back in line.
func requeueAttempts(ctx context.Context, tx pgx.Tx, requeues []record) error {
	if len(requeues) == 0 {
		return nil
	}
	c := columnsOf(requeues, thisAttempt)
	var messages []string
	for _, r := range requeues {
		messages = append(messages, r.end.message)
	}
	_, err := tx.Exec(ctx, `UPDATE job_logs l SET status = 'queued', start_time = NULL, error_message = x.msg
		FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[]) AS x(jid, rj, att, msg)
		WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att AND l.status IN ('queued', 'processing')`,
		c.jobIDs, c.riverIDs, c.attempts, messages)
	if err != nil {
		return fmt.Errorf("put attempts back in line: %w", err)
	}
	return nil
}

// queueNextAttempts writes the queued row of the attempt River runs next
// after a retried failure, unless that attempt has already written one.
func queueNextAttempts(ctx context.Context, tx pgx.Tx, retried []record) error {
	if len(retried) == 0 {
		return nil
	}
	c := columnsOf(retried, func(r record) int { return r.run.job.Attempt + 1 })
	_, err := tx.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id, executed_by)
		SELECT x.jid, x.rj, x.class, x.queue, x.att, 'queued', x.payload::jsonb, x.sj, x.by
		FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
			AS x(jid, rj, att, class, queue, payload, sj, by)
		WHERE NOT EXISTS (SELECT 1 FROM job_logs l WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att)`,
		c.jobIDs, c.riverIDs, c.attempts, c.classes, c.queues, c.payloads, c.schedules, c.users)
	if err != nil {
		return fmt.Errorf("queue next attempts: %w", err)
	}
	return nil
}

// startAttempts marks attempts processing, inserting their rows when
// missing (as after a crash).
func startAttempts(ctx context.Context, tx pgx.Tx, starts []record) error {
	if len(starts) == 0 {
		return nil
	}
	c := columnsOf(starts, thisAttempt)
	var at []time.Time
	for _, r := range starts {
		at = append(at, r.start.UTC())
	}
	_, err := tx.Exec(ctx, `WITH x AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::timestamp[])
				AS x(jid, rj, att, class, queue, payload, sj, by, start_at)
		), upd AS (
			UPDATE job_logs l SET status = 'processing', start_time = x.start_at, error_message = NULL
			FROM x WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att AND l.status IN ('queued', 'processing')
			RETURNING 1
		)
		INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, start_time, scheduled_job_id, executed_by)
		SELECT x.jid, x.rj, x.class, x.queue, x.att, 'processing', x.payload::jsonb, x.start_at, x.sj, x.by
		FROM x WHERE NOT EXISTS (SELECT 1 FROM job_logs l WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att)`,
		c.jobIDs, c.riverIDs, c.attempts, c.classes, c.queues, c.payloads, c.schedules, c.users, at)
	if err != nil {
		return fmt.Errorf("record attempt starts: %w", err)
	}
	return nil
}

// releaseClaims frees the schedule claims of guarded attempts that ended or
// went back in line: each attempt its own claim only, since the next
// attempt of the same job may already have claimed the schedule. Rows are
// locked in schedule order, as the claim batches write them, so the two
// never deadlock. A claim left behind (a crash) is free anyway once its
// River job stops running; this keeps the table at the runs being worked.
func releaseClaims(ctx context.Context, tx pgx.Tx, lists ...[]record) error {
	var jobs []int64
	var attempts []int32
	for _, list := range lists {
		for _, r := range list {
			if r.run.guarded() {
				jobs, attempts = append(jobs, r.run.job.ID), append(attempts, int32(r.run.job.Attempt))
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM scheduler_run_claims WHERE scheduled_job_id IN (
			SELECT c.scheduled_job_id FROM scheduler_run_claims c JOIN unnest($1::bigint[], $2::int[]) AS x(jid, att)
				ON c.river_job_id = x.jid AND c.attempt = x.att
			ORDER BY c.scheduled_job_id FOR UPDATE OF c)`, jobs, attempts); err != nil {
		return fmt.Errorf("release schedule claims: %w", err)
	}
	return nil
}
