package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/atis-edu/atis-scheduler/scheduler/joblog"
)

// record is one thing the Recorder writes about an attempt: its start, its
// end, or both (an attempt that starts and ends within one flush goes
// straight from queued to its final row, its start_time set).
type record struct {
	run   run
	start time.Time // set: the attempt started (unguarded runs)
	end   *outcome  // set: the attempt ended
}

func (r record) key() joblog.Key { return r.run.attempt().Key() }

// Start begins writing buffered records every FlushInterval or FlushSize
// records until ctx ends or Stop, which writes what is left. Start it
// before River works jobs and stop it after River has stopped. Starting
// twice is a no-op.
func (rec *Recorder) Start(ctx context.Context) error {
	if err := rec.cfg.validate(); err != nil {
		return err
	}
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
	index := map[joblog.Key]int{}
	flush := func() {
		if len(pending) > 0 {
			rec.flush(ctx, pending)
			pending, index = nil, map[joblog.Key]int{}
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
	var ends, requeues []record
	var starts []joblog.Start
	for _, r := range records {
		switch {
		case r.end == nil:
			starts = append(starts, joblog.Start{Attempt: r.run.attempt(), At: r.start})
		case r.end.status == StatusQueued:
			requeues = append(requeues, r)
		default:
			ends = append(ends, r)
		}
	}
	closed, err := joblog.Close(ctx, tx, endsOf(ends))
	if err != nil {
		return err
	}
	if err := joblog.Requeue(ctx, tx, endsOf(requeues)); err != nil {
		return err
	}
	if err := releaseClaims(ctx, tx, ends, requeues); err != nil {
		return err
	}
	var next []joblog.Attempt
	var finals []joblog.Final
	for _, r := range ends {
		if !closed[r.key()] {
			continue
		}
		if !r.end.final {
			a := r.run.attempt()
			a.Attempt++
			next = append(next, a)
			continue
		}
		finals = append(finals, joblog.Final{
			JobID: r.run.job.ID, ScheduledJobID: r.run.args.ScheduledJobID, JobClass: r.run.meta.JobClass, Queue: r.run.job.Queue,
			Attempt: r.run.job.Attempt, Status: r.end.status, Message: r.end.message, Trace: r.end.trace, Start: r.end.start, End: r.end.end,
		})
	}
	if err := joblog.QueueNext(ctx, tx, next); err != nil {
		return err
	}
	if err := joblog.Begin(ctx, tx, starts); err != nil {
		return err
	}
	return joblog.Finalize(ctx, tx, finals, rec.cfg.InstanceID, rec.cfg.FailureAlertThreshold)
}

// endsOf is what job_logs records of ended attempts.
func endsOf(records []record) []joblog.End {
	out := make([]joblog.End, len(records))
	for i, r := range records {
		o := r.end
		out[i] = joblog.End{Attempt: r.run.attempt(), Status: o.status, Result: o.result, Message: o.message, Trace: o.trace,
			Start: o.start, End: o.end}
	}
	return out
}

// releaseClaims frees the schedule claims of guarded attempts that ended or
// went back in line: each attempt its own claim only, since the next
// attempt of the same job may already have claimed the schedule. Rows are
// locked in schedule order, as the claim batches write them, so the two
// never deadlock. A claim left behind (a crash) is free anyway once its
// River job stops running; this keeps the table at the runs being worked.
//
// Each claim is found through the primary key (its schedule), probed once
// per attempt (the LATERAL keeps that plan whatever the statistics say):
// joined on river_job_id, which has no index, the statement read every
// claim for each attempt when the table's statistics said it was empty,
// and a burst of 10,000 runs started together spent ~20 s there on a
// database that had lived (issue 18).
func releaseClaims(ctx context.Context, tx pgx.Tx, lists ...[]record) error {
	type claim struct {
		schedule, job int64
		attempt       int32
	}
	var claims []claim
	for _, list := range lists {
		for _, r := range list {
			if r.run.guarded() {
				claims = append(claims, claim{r.run.args.ScheduledJobID, r.run.job.ID, int32(r.run.job.Attempt)})
			}
		}
	}
	if len(claims) == 0 {
		return nil
	}
	slices.SortFunc(claims, func(a, b claim) int { return cmp.Compare(a.schedule, b.schedule) })
	schedules, jobs, attempts := make([]int64, len(claims)), make([]int64, len(claims)), make([]int32, len(claims))
	for i, c := range claims {
		schedules[i], jobs[i], attempts[i] = c.schedule, c.job, c.attempt
	}
	// The LIMIT keeps each probe a probe (unflattened, the planner hashed
	// every claim of the table instead); the probes lock in the arrays'
	// order, which is the schedules'.
	if _, err := tx.Exec(ctx, `DELETE FROM scheduler_run_claims WHERE scheduled_job_id = ANY (ARRAY(
			SELECT c.scheduled_job_id FROM unnest($1::bigint[], $2::bigint[], $3::int[]) AS x(sid, jid, att)
				CROSS JOIN LATERAL (SELECT scheduled_job_id FROM scheduler_run_claims c
					WHERE c.scheduled_job_id = x.sid AND c.river_job_id = x.jid AND c.attempt = x.att LIMIT 1 FOR UPDATE) c))`,
		schedules, jobs, attempts); err != nil {
		return fmt.Errorf("release schedule claims: %w", err)
	}
	return nil
}
