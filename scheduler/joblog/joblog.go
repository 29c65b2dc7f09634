// Package joblog is the one writer of job_logs and of the bookkeeping that
// finished runs leave: the statuses, an attempt's start, end and return to
// the line, the queued row of a retry's next attempt, and Finalize (the
// schedule's counters, failures, metrics and alerts). The Recorder writes
// through it as runs happen; the Reconciler, after a crash, with what River
// says happened. Every function writes a batch of attempts with a fixed
// number of statements, in the caller's transaction.
package joblog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Job log statuses (job_logs.status) and run statuses (last_run_status).
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// Statuses lists the job_logs statuses.
var Statuses = []string{StatusQueued, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled}

// Attempt identifies one attempt of a run and what its job_logs row
// carries.
type Attempt struct {
	RiverJobID     int64
	Attempt        int
	Class, Queue   string
	Payload        []byte // JSON, secrets redacted
	ScheduledJobID *int64
	ExecutedBy     *int64
}

// Key names one attempt of one River job.
type Key struct {
	RiverJobID int64
	Attempt    int
}

// Key returns a's key.
func (a Attempt) Key() Key { return Key{a.RiverJobID, a.Attempt} }

// Start is an attempt that started at At.
type Start struct {
	Attempt
	At time.Time
}

// End is how an attempt ended.
type End struct {
	Attempt
	Status         string // a job_logs status
	Result         []byte // JSON
	Message, Trace string
	Start, End     time.Time
}

// columns are the columns, as arrays, that identify and describe attempts
// for the statements below.
type columns struct {
	jobIDs    []string
	riverIDs  []int64
	attempts  []int32
	classes   []string
	queues    []string
	payloads  []string
	schedules []*int64
	users     []*int64
}

func columnsOf(attempts []Attempt) columns {
	var c columns
	for _, a := range attempts {
		c.jobIDs = append(c.jobIDs, fmt.Sprint(a.RiverJobID))
		c.riverIDs = append(c.riverIDs, a.RiverJobID)
		c.attempts = append(c.attempts, int32(a.Attempt))
		c.classes, c.queues = append(c.classes, a.Class), append(c.queues, a.Queue)
		c.payloads = append(c.payloads, string(a.Payload))
		c.schedules, c.users = append(c.schedules, a.ScheduledJobID), append(c.users, a.ExecutedBy)
	}
	return c
}

func attemptsOf[T interface{ attempt() Attempt }](items []T) []Attempt {
	out := make([]Attempt, len(items))
	for i, it := range items {
		out[i] = it.attempt()
	}
	return out
}

func (s Start) attempt() Attempt { return s.Attempt }
func (e End) attempt() Attempt   { return e.Attempt }

// Finding attempts. The statements below find the rows of given attempts
// by key and must not cost a comparison of every waiting run with every
// attempt, whatever job_logs' statistics say. Those statistics are taken
// between bursts: they say that almost nothing is unfinished while ten
// thousand runs are, so any plain test of status makes the planner expect
// no row to pass it and join row by row. So:
//   - the unfinished test is written as a CASE, which the planner cannot
//     estimate from the statistics (it assumes half the rows pass) and the
//     partial indexes of unfinished rows cannot serve; it is still
//     re-checked on the latest row version when another transaction (the
//     Reconciler) closed the attempt first;
//   - the key is also given as "job_id = ANY($1)", so that a scan of the
//     table costs the planner what it costs us, and idx_job_logs_job_id
//     serves it once the table is large.
// With "status IN ('queued', 'processing')", the planner scanned the whole
// partial index of unfinished rows against every attempt of a flush: 2.3
// million comparisons and a second for 400 attempts while 5,700 runs waited
// (issue 18); with "status NOT IN (…)", the whole table instead.

// Close writes the ends of attempts (inserting a row that is missing, as
// after a crash) and returns those it closed: an attempt already closed
// (by the Reconciler, say) is not closed twice.
//
// The update comes first and the insert runs only for the attempts it did
// not find (after a crash; almost never): an insert-if-missing beside every
// update once made the planner, on statistics taken while job_logs was
// small, hash the whole table at each flush (issue 18).
func Close(ctx context.Context, tx pgx.Tx, ends []End) (map[Key]bool, error) {
	closed := map[Key]bool{}
	if len(ends) == 0 {
		return closed, nil
	}
	if err := closeEnds(ctx, tx, ends, closed, `UPDATE job_logs l SET status = x.status, result = x.result::jsonb,
			error_message = nullif(x.msg, ''), error_trace = nullif(x.trace, ''), end_time = x.end_at, duration = x.dur,
			start_time = coalesce(l.start_time, x.start_at)
		FROM x WHERE l.job_id = ANY($1) AND l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att
			AND CASE l.status WHEN 'queued' THEN true WHEN 'processing' THEN true ELSE false END
		RETURNING l.river_job_id, l.attempt`); err != nil {
		return nil, err
	}
	missing := notIn(ends, closed)
	if len(missing) == 0 {
		return closed, nil
	}
	if err := closeEnds(ctx, tx, missing, closed, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status,
			payload, start_time, scheduled_job_id, executed_by, result, error_message, error_trace, end_time, duration)
		SELECT x.jid, x.rj, x.class, x.queue, x.att, x.status, x.payload::jsonb, x.start_at, x.sj, x.by, x.result::jsonb,
			nullif(x.msg, ''), nullif(x.trace, ''), x.end_at, x.dur
		FROM x WHERE NOT EXISTS (SELECT 1 FROM job_logs l WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att)
		RETURNING river_job_id, attempt`); err != nil {
		return nil, err
	}
	return closed, nil
}

// closeEnds runs stmt, which reads the ends as x and returns the keys of
// the attempts it wrote, and adds those to closed.
func closeEnds(ctx context.Context, tx pgx.Tx, ends []End, closed map[Key]bool, stmt string) error {
	c := columnsOf(attemptsOf(ends))
	var statuses, results, messages, traces []string
	var startsAt, endsAt []time.Time
	var durations []int32
	for _, o := range ends {
		statuses, results = append(statuses, o.Status), append(results, string(o.Result))
		messages, traces = append(messages, o.Message), append(traces, o.Trace)
		startsAt, endsAt = append(startsAt, o.Start.UTC()), append(endsAt, o.End.UTC())
		durations = append(durations, DurationSeconds(o.End.Sub(o.Start)))
	}
	rows, err := tx.Query(ctx, `WITH x AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[],
				$9::text[], $10::text[], $11::text[], $12::text[], $13::timestamp[], $14::timestamp[], $15::int[])
				AS x(jid, rj, att, class, queue, payload, sj, by, status, result, msg, trace, start_at, end_at, dur)
		) `+stmt,
		c.jobIDs, c.riverIDs, c.attempts, c.classes, c.queues, c.payloads, c.schedules, c.users,
		statuses, results, messages, traces, startsAt, endsAt, durations)
	if err := addKeys(rows, err, closed); err != nil {
		return fmt.Errorf("record attempt ends: %w", err)
	}
	return nil
}

// notIn returns the items whose keys are not in found: the attempts an
// update did not find, for the insert that follows it.
func notIn[T interface{ Key() Key }](items []T, found map[Key]bool) []T {
	var out []T
	for _, it := range items {
		if !found[it.Key()] {
			out = append(out, it)
		}
	}
	return out
}

// addKeys adds the keys that rows (a query's result and error) return to m.
func addKeys(rows pgx.Rows, err error, m map[Key]bool) error {
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) {
		var k Key
		return k, row.Scan(&k.RiverJobID, &k.Attempt)
	})
	for _, k := range keys {
		m[k] = true
	}
	return err
}

// Requeue puts attempts that were no attempt after all (snoozed,
// interrupted by a shutdown) back in line, saying why (End.Message).
func Requeue(ctx context.Context, tx pgx.Tx, requeues []End) error {
	if len(requeues) == 0 {
		return nil
	}
	c := columnsOf(attemptsOf(requeues))
	var messages []string
	for _, r := range requeues {
		messages = append(messages, r.Message)
	}
	_, err := tx.Exec(ctx, `UPDATE job_logs l SET status = 'queued', start_time = NULL, error_message = x.msg
		FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[]) AS x(jid, rj, att, msg)
		WHERE l.job_id = ANY($1) AND l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att
			AND CASE l.status WHEN 'queued' THEN true WHEN 'processing' THEN true ELSE false END`,
		c.jobIDs, c.riverIDs, c.attempts, messages)
	if err != nil {
		return fmt.Errorf("put attempts back in line: %w", err)
	}
	return nil
}

// QueueNext writes the queued row of each attempt River runs next after a
// retried failure (next holds those next attempts), unless that attempt has
// already written one.
func QueueNext(ctx context.Context, tx pgx.Tx, next []Attempt) error {
	if len(next) == 0 {
		return nil
	}
	c := columnsOf(next)
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

// Begin marks attempts processing, inserting their rows when missing (as
// after a crash): an update, then an insert of those it did not find (see
// Close).
func Begin(ctx context.Context, tx pgx.Tx, starts []Start) error {
	if len(starts) == 0 {
		return nil
	}
	found := map[Key]bool{}
	// A row cancelled before its attempt started is River's to run again
	// when it works that attempt after all (River UI's retry).
	if err := beginStarts(ctx, tx, starts, found, `UPDATE job_logs l SET status = 'processing', start_time = x.start_at, error_message = NULL,
			end_time = NULL, duration = NULL
		FROM x WHERE l.job_id = ANY($1) AND l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att
			AND CASE l.status WHEN 'queued' THEN true WHEN 'processing' THEN true WHEN 'cancelled' THEN l.start_time IS NULL ELSE false END
		RETURNING l.river_job_id, l.attempt`); err != nil {
		return err
	}
	missing := notIn(starts, found)
	if len(missing) == 0 {
		return nil
	}
	return beginStarts(ctx, tx, missing, found, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status,
			payload, start_time, scheduled_job_id, executed_by)
		SELECT x.jid, x.rj, x.class, x.queue, x.att, 'processing', x.payload::jsonb, x.start_at, x.sj, x.by
		FROM x WHERE NOT EXISTS (SELECT 1 FROM job_logs l WHERE l.job_id = x.jid AND l.river_job_id = x.rj AND l.attempt = x.att)
		RETURNING river_job_id, attempt`)
}

// beginStarts runs stmt, which reads the starts as x and returns the keys
// of the attempts it wrote, and adds those to found.
func beginStarts(ctx context.Context, tx pgx.Tx, starts []Start, found map[Key]bool, stmt string) error {
	c := columnsOf(attemptsOf(starts))
	var at []time.Time
	for _, s := range starts {
		at = append(at, s.At.UTC())
	}
	rows, err := tx.Query(ctx, `WITH x AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::timestamp[])
				AS x(jid, rj, att, class, queue, payload, sj, by, start_at)
		) `+stmt,
		c.jobIDs, c.riverIDs, c.attempts, c.classes, c.queues, c.payloads, c.schedules, c.users, at)
	if err := addKeys(rows, err, found); err != nil {
		return fmt.Errorf("record attempt starts: %w", err)
	}
	return nil
}

// CloseRow closes job_logs row id, if it is still queued or processing,
// with status and message at end (the Reconciler's repair of an attempt
// whose end was never recorded). It says whether it closed the row.
func CloseRow(ctx context.Context, tx pgx.Tx, id int64, status, message string, end time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE job_logs SET status = $2, error_message = nullif($3, ''), end_time = $4,
			duration = CASE WHEN start_time IS NULL THEN NULL ELSE round(extract(epoch FROM $4 - start_time))::int END
		WHERE id = $1 AND status IN ('queued', 'processing')`, id, status, message, end.UTC())
	if err != nil {
		return false, fmt.Errorf("close job_logs row %d: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// QueueAfterRow writes the queued row of attempt next of the run of
// job_logs row id, unless it has one: River runs the run again.
func QueueAfterRow(ctx context.Context, tx pgx.Tx, id int64, next int) error {
	_, err := tx.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id, executed_by)
		SELECT job_id, river_job_id, job_class, queue, $2, 'queued', payload, scheduled_job_id, executed_by FROM job_logs l
		WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM job_logs WHERE river_job_id = l.river_job_id AND attempt = $2)`, id, next)
	if err != nil {
		return fmt.Errorf("queue attempt %d after job_logs row %d: %w", next, id, err)
	}
	return nil
}

// ReopenRetried queues again the attempts that were cancelled before they
// started and that River holds in line again (River UI's retry of a run
// cancelled while it waited: River runs the same attempt), and returns how
// many. River's waiting jobs are few: the join starts from them.
func ReopenRetried(ctx context.Context, tx pgx.Tx) (int, error) {
	tag, err := tx.Exec(ctx, `UPDATE job_logs l SET status = 'queued', end_time = NULL, duration = NULL,
			error_message = 'retried from the queue after: ' || coalesce(l.error_message, 'cancelled')
		FROM river_job j
		WHERE j.state IN ('available', 'scheduled', 'pending', 'retryable') AND l.job_id = j.id::text AND l.river_job_id = j.id
			AND l.attempt = j.attempt + 1 AND l.status = 'cancelled' AND l.start_time IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("queue again runs retried after a cancel: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// FixRunning makes every schedule's is_running say whether it has an
// unfinished run (a queued or processing job_logs row), and returns how
// many flags it changed.
func FixRunning(ctx context.Context, tx pgx.Tx) (int, error) {
	tag, err := tx.Exec(ctx, `UPDATE scheduled_jobs s SET is_running = x.running
		FROM (SELECT id, EXISTS (SELECT 1 FROM job_logs l WHERE l.scheduled_job_id = s2.id
				AND l.status IN ('queued', 'processing')) AS running
			FROM scheduled_jobs s2) x
		WHERE s.id = x.id AND s.is_running IS DISTINCT FROM x.running`)
	if err != nil {
		return 0, fmt.Errorf("fix is_running: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
