package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/scheduler/joblog"
)

// Run is one run (a River job and its attempts) as admins see it: its
// latest attempt's state.
type Run struct {
	ID             int64      `json:"id"` // the River job id
	ScheduledJobID *int64     `json:"scheduled_job_id"`
	ScheduledJob   *string    `json:"scheduled_job"`
	JobClass       string     `json:"job_class"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	ScheduledFor   *time.Time `json:"scheduled_for"`
	StartTime      *time.Time `json:"start_time"`
	EndTime        *time.Time `json:"end_time"`
	Duration       *int       `json:"duration_seconds"`
	Error          *string    `json:"error_message"`
	ExecutedBy     *int64     `json:"executed_by"`
}

// RunFilter narrows ListRuns. Zero fields do not filter.
type RunFilter struct {
	ScheduledJobID int64
	Status         string
	Since          time.Time
	Limit          int
}

// Statuses are the job_logs statuses a run can be in.
var Statuses = joblog.Statuses

const runColumns = `l.river_job_id, l.scheduled_job_id, coalesce(s.name, d.name), l.job_class, l.status, l.attempt,
	(l.payload->>'scheduled_for')::timestamptz, l.start_time, l.end_time, l.duration, l.error_message, l.executed_by`

// ListRuns lists runs, newest first.
func ListRuns(ctx context.Context, db DB, f RunFilter) ([]Run, error) {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return nil, fmt.Errorf("status %q is not one of %v", f.Status, Statuses)
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = new(f.Since.UTC())
	}
	rows, err := db.Query(ctx, `SELECT * FROM (
			SELECT DISTINCT ON (l.river_job_id) `+runColumns+`
			FROM job_logs l LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		LEFT JOIN scheduler_deleted_schedules d ON d.id = l.scheduled_job_id
			WHERE l.river_job_id IS NOT NULL AND ($1 = 0 OR l.scheduled_job_id = $1)
			  AND ($2::timestamp IS NULL OR l.created_at >= $2)
			ORDER BY l.river_job_id DESC, l.attempt DESC) runs
		WHERE ($3 = '' OR status = $3)
		ORDER BY 1 DESC LIMIT $4`, f.ScheduledJobID, since, f.Status, max(f.Limit, 1))
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Run])
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	for i := range runs {
		runs[i].Error = text(runs[i].Error)
	}
	return runs, nil
}

// What job_logs holds is shown redacted, by the CLI and the dashboard
// alike: rows written before redaction grew (or by another program) may
// hold more than today's writers let through.
func text(s *string) *string {
	if s == nil {
		return nil
	}
	return new(redact.Text(*s))
}

// Attempt is one job_logs row of a run.
type Attempt struct {
	Attempt   int             `json:"attempt"`
	Status    string          `json:"status"`
	StartTime *time.Time      `json:"start_time"`
	EndTime   *time.Time      `json:"end_time"`
	Duration  *int            `json:"duration_seconds"`
	Error     *string         `json:"error_message"`
	Trace     *string         `json:"error_trace"`
	Result    json.RawMessage `json:"result"`
}

// RunDetail is a run with every attempt and its arguments.
type RunDetail struct {
	Run
	Queue   *string         `json:"queue"`
	Payload json.RawMessage `json:"payload"`
	History []Attempt       `json:"attempts_detail" db:"-"`
}

// ShowRun returns a run with all its attempts. Rows are found through the
// seed's index on job_id (the River id as text): river_job_id is indexed
// only while a run is unfinished.
func ShowRun(ctx context.Context, db DB, id int64) (RunDetail, error) {
	var d RunDetail
	rows, err := db.Query(ctx, `SELECT `+runColumns+`, l.queue, l.payload FROM job_logs l
		LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
		LEFT JOIN scheduler_deleted_schedules d ON d.id = l.scheduled_job_id
		WHERE l.job_id = $2 AND l.river_job_id = $1 ORDER BY l.attempt DESC LIMIT 1`, id, fmt.Sprint(id))
	if err != nil {
		return d, err
	}
	d, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[RunDetail])
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("%w: %d", ErrRunNotFound, id)
	}
	if err != nil {
		return d, err
	}
	rows, err = db.Query(ctx, `SELECT attempt, status, start_time, end_time, duration, error_message, error_trace, result
		FROM job_logs WHERE job_id = $2 AND river_job_id = $1 ORDER BY attempt, id`, id, fmt.Sprint(id))
	if err != nil {
		return d, err
	}
	d.History, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Attempt])
	d.Error, d.Payload = text(d.Error), redact.JSON(d.Payload)
	for i := range d.History {
		h := &d.History[i]
		h.Error, h.Trace, h.Result = text(h.Error), text(h.Trace), redact.JSON(h.Result)
	}
	return d, err
}

// AttemptRow is one job_logs row: one attempt of a run.
type AttemptRow struct {
	ID         int64
	RunID      *int64
	ScheduleID *int64
	Schedule   *string
	Class      string
	Attempt    int32
	Status     string
	Start      *time.Time
	End        *time.Time
	Duration   *int32
	Error      *string
	CreatedAt  *time.Time
	// DurationMS is the attempt's duration in milliseconds (duration holds
	// whole seconds): nil while it runs.
	DurationMS *int64
	// IntegrationID and Integration name the integration a run syncs
	// (its parameters' integration_id), when it names one that exists.
	IntegrationID *int64
	Integration   *string
}

// AttemptFilter narrows Attempts. Zero fields do not filter.
type AttemptFilter struct {
	ScheduleIDs []int64
	Class       string
	// ExcludeClasses leaves these classes out (the every-minute dispatch
	// classes, on request).
	ExcludeClasses []string
	Status         string
	From, To       time.Time // start_time
	Before         int64     // keyset: job_logs.id below this
}

// attemptColumns are AttemptRow's, read from job_logs l joined with
// attemptJoins.
const attemptColumns = `l.id, l.river_job_id, l.scheduled_job_id, coalesce(s.name, d.name), l.job_class, l.attempt, l.status,
	l.start_time, l.end_time, l.duration, l.error_message, l.created_at,
	(extract(epoch FROM l.end_time - l.start_time) * 1000)::bigint, i.id, i.name`

// attemptJoins name a run's schedule (deleted ones too) and the integration
// its parameters name: a sync run has no schedule when integration_dispatch
// started it.
const attemptJoins = `LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
	LEFT JOIN scheduler_deleted_schedules d ON d.id = l.scheduled_job_id
	` + RunIntegrationJoin

// RunIntegrationJoin joins, as i, the integration that the parameters of
// job_logs row l name (a sync run's). The CASE keeps a non-numeric value
// from being cast.
const RunIntegrationJoin = `LEFT JOIN integrations i ON i.id = CASE WHEN l.payload->'parameters'->>'integration_id' ~ '^[0-9]{1,18}$'
		THEN (l.payload->'parameters'->>'integration_id')::bigint END`

// Attempts lists job_logs rows newest first, at most limit. The WHERE
// clause holds only the filters given, so that each shape gets its own plan
// (and index).
func Attempts(ctx context.Context, db DB, f AttemptFilter, limit int) ([]AttemptRow, error) {
	var w filter
	switch {
	case len(f.ScheduleIDs) == 1: // the index on (scheduled_job_id, id) gives the order
		w.add("l.scheduled_job_id = " + w.arg(f.ScheduleIDs[0]))
	case f.ScheduleIDs != nil:
		w.add("l.scheduled_job_id = ANY(" + w.arg(f.ScheduleIDs) + ")")
	}
	if f.Class != "" {
		w.add("l.job_class = " + w.arg(f.Class))
	}
	if len(f.ExcludeClasses) > 0 {
		w.add("l.job_class <> ALL(" + w.arg(f.ExcludeClasses) + ")")
	}
	if f.Status != "" {
		w.add("l.status = " + w.arg(f.Status))
	}
	if !f.From.IsZero() {
		w.add("l.start_time >= " + w.arg(f.From.UTC()))
	}
	if !f.To.IsZero() {
		w.add("l.start_time < " + w.arg(f.To.UTC()))
	}
	if f.Before > 0 {
		w.add("l.id < " + w.arg(f.Before))
	}
	rows, err := db.Query(ctx, `SELECT `+attemptColumns+` FROM job_logs l `+attemptJoins+` `+w.where()+`
		ORDER BY l.id DESC LIMIT `+strconv.Itoa(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AttemptRow])
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// AttemptDetail is an attempt with everything its run's page shows,
// redacted as ShowRun's.
type AttemptDetail struct {
	AttemptRow
	Trace   *string
	Result  []byte
	Payload []byte
	Queue   *string
}

// RunAttempts returns every attempt of run id, in order; none for a run
// that does not exist. job_id holds the River job id as text: its index
// finds the run.
func RunAttempts(ctx context.Context, db DB, id int64) ([]AttemptDetail, error) {
	rows, err := db.Query(ctx, `SELECT `+attemptColumns+`, l.error_trace, coalesce(l.result, '{}'::jsonb),
			coalesce(l.payload, '{}'::jsonb), l.queue
		FROM job_logs l `+attemptJoins+`
		WHERE l.job_id = $1 AND l.river_job_id = $2 ORDER BY l.attempt, l.id`, strconv.FormatInt(id, 10), id)
	if err != nil {
		return nil, fmt.Errorf("read run %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AttemptDetail, error) {
		var a AttemptDetail
		err := row.Scan(&a.ID, &a.RunID, &a.ScheduleID, &a.Schedule, &a.Class, &a.Attempt, &a.Status, &a.Start, &a.End,
			&a.Duration, &a.Error, &a.CreatedAt, &a.DurationMS, &a.IntegrationID, &a.Integration, &a.Trace, &a.Result, &a.Payload, &a.Queue)
		a.Error, a.Trace, a.Result, a.Payload = text(a.Error), text(a.Trace), redact.JSON(a.Result), redact.JSON(a.Payload)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read run %d: %w", id, err)
	}
	return out, nil
}

// QueueState is what River's queue still holds of a run (river_job): gone
// once River has cleaned the finished job away.
type QueueState struct {
	State       string
	Attempt     int32
	MaxAttempts int32
	// ScheduledAt is when River runs it next: a retry's time when State is
	// retryable.
	ScheduledAt time.Time
}

// RunQueueState reads run id's river_job row; nil when River no longer
// holds it.
func RunQueueState(ctx context.Context, db DB, id int64) (*QueueState, error) {
	var q QueueState
	err := db.QueryRow(ctx, `SELECT state::text, attempt, max_attempts, scheduled_at FROM river_job WHERE id = $1`, id).
		Scan(&q.State, &q.Attempt, &q.MaxAttempts, &q.ScheduledAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read run %d in the queue: %w", id, err)
	}
	return &q, nil
}
