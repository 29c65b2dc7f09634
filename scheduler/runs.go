package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
var Statuses = []string{StatusQueued, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled}

const runColumns = `l.river_job_id, l.scheduled_job_id, s.name, l.job_class, l.status, l.attempt,
	(l.payload->>'scheduled_for')::timestamptz, l.start_time, l.end_time, l.duration, l.error_message, l.executed_by`

// ListRuns lists runs, newest first.
func ListRuns(ctx context.Context, pool *pgxpool.Pool, f RunFilter) ([]Run, error) {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return nil, fmt.Errorf("status %q is not one of %v", f.Status, Statuses)
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = new(f.Since.UTC())
	}
	rows, err := pool.Query(ctx, `SELECT * FROM (
			SELECT DISTINCT ON (l.river_job_id) `+runColumns+`
			FROM job_logs l LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
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
	return runs, nil
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

// ErrRunNotFound is returned by ShowRun for an unknown run.
var ErrRunNotFound = errors.New("scheduler: no such run")

// ShowRun returns a run with all its attempts. Rows are found through the
// seed's index on job_id (the River id as text): river_job_id is indexed
// only while a run is unfinished.
func ShowRun(ctx context.Context, pool *pgxpool.Pool, id int64) (RunDetail, error) {
	var d RunDetail
	rows, err := pool.Query(ctx, `SELECT `+runColumns+`, l.queue, l.payload FROM job_logs l
		LEFT JOIN scheduled_jobs s ON s.id = l.scheduled_job_id
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
	rows, err = pool.Query(ctx, `SELECT attempt, status, start_time, end_time, duration, error_message, error_trace, result
		FROM job_logs WHERE job_id = $2 AND river_job_id = $1 ORDER BY attempt, id`, id, fmt.Sprint(id))
	if err != nil {
		return d, err
	}
	d.History, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Attempt])
	return d, err
}
