package runqueue

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/atis-edu/atis-scheduler/internal/redact"
)

// The seed's column defaults of scheduled_jobs, which a run of a row that
// leaves them NULL takes too.
const (
	DefaultMaxAttempts = 1               // max_attempts
	DefaultRetryDelay  = 5 * time.Minute // retry_delay_minutes
)

// Run is a run to enqueue.
type Run struct {
	// Args are the run's arguments (ScheduledJobID 0 for a run of no schedule).
	Args Args
	// Class is the River kind: the canonical class name.
	Class string
	// JobClass is the class as the schedule names it (an alias, maybe), for
	// job_logs. Defaults to Class.
	JobClass string
	// MaxAttempts defaults to DefaultMaxAttempts.
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
}

// Hooks let tests fail an enqueue between its two inserts. Optional.
type Hooks struct {
	// AfterInsert runs after River's insert, before the job_logs insert.
	AfterInsert func() error
}

// Enqueue inserts, in tx, one River job and its queued attempt-1 job_logs
// row, and returns the job's id. Neither row holds secrets (see
// Run.Redacted); a run with secrets and no schedule is refused
// (ErrSecretsWithoutSchedule).
func Enqueue(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], run Run) (int64, error) {
	ids, err := EnqueueMany(ctx, tx, client, []Run{run}, Hooks{})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// EnqueueMany is Enqueue for many runs in two statements: River's
// InsertManyTx and one multi-row job_logs insert. It returns the jobs' ids
// in the order of runs. On error nothing is left of the batch only once tx
// (or the savepoint it is) rolls back, which the caller must do.
func EnqueueMany(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], runs []Run, hooks Hooks) ([]int64, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	params := make([]river.InsertManyParams, len(runs))
	queued := make([]Args, len(runs))
	for i, run := range runs {
		delay := int64(run.RetryDelay / time.Second)
		meta, err := json.Marshal(Metadata{JobClass: cmp.Or(run.JobClass, run.Class), OverlapPolicy: run.OverlapPolicy,
			RetryDelaySeconds: &delay, ScheduledJobName: run.ScheduledJobName})
		if err != nil {
			return nil, err
		}
		if queued[i], err = run.Args.WithRedacted(run.Redacted); err != nil {
			return nil, fmt.Errorf("enqueue %s: %w", run.Class, err)
		}
		params[i] = river.InsertManyParams{Args: InsertArgs(run.Class, queued[i]), InsertOpts: &river.InsertOpts{
			MaxAttempts: cmp.Or(max(run.MaxAttempts, 0), DefaultMaxAttempts), Metadata: meta, Queue: cmp.Or(run.Queue, river.QueueDefault),
		}}
	}
	res, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("insert river jobs: %w", err)
	}
	if len(res) != len(runs) {
		return nil, fmt.Errorf("insert river jobs: %d results for %d jobs", len(res), len(runs))
	}
	if hooks.AfterInsert != nil {
		if err := hooks.AfterInsert(); err != nil {
			return nil, err
		}
	}
	n := len(runs)
	var (
		ids       = make([]int64, n)
		jobIDs    = make([]string, n)
		classes   = make([]string, n)
		queues    = make([]string, n)
		payloads  = make([]string, n)
		schedules = make([]*int64, n)
		users     = make([]*int64, n)
	)
	for i, r := range res {
		// River returns rows in the order given; a mismatch would attach a
		// job_logs row to the wrong run: refuse rather than guess.
		if r.Job.Kind != runs[i].Class {
			return nil, fmt.Errorf("insert river jobs: result %d is a %s, not a %s", i, r.Job.Kind, runs[i].Class)
		}
		payload, err := json.Marshal(queued[i])
		if err != nil {
			return nil, err
		}
		payload = redact.JSON(payload) // job_logs shows no field named secret, whatever the class
		ids[i], jobIDs[i], classes[i], queues[i], payloads[i] = r.Job.ID, fmt.Sprint(r.Job.ID),
			cmp.Or(runs[i].JobClass, runs[i].Class), r.Job.Queue, string(payload)
		if id := queued[i].ScheduledJobID; id != 0 {
			schedules[i] = &id
		}
		users[i] = queued[i].ExecutedBy
	}
	if _, err := tx.Exec(ctx, `INSERT INTO job_logs (job_id, river_job_id, job_class, queue, attempt, status, payload, scheduled_job_id, executed_by)
		SELECT j, r, c, q, 1, 'queued', p::jsonb, s, u
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) AS t(j, r, c, q, p, s, u)`,
		jobIDs, ids, classes, queues, payloads, schedules, users); err != nil {
		return nil, fmt.Errorf("insert job_logs rows: %w", err)
	}
	return ids, nil
}
