package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Summary is one schedule as admins see it.
type Summary struct {
	ID             int64      `json:"id"`
	Name           string     `json:"name"`
	JobClass       string     `json:"job_class"`
	Schedule       string     `json:"schedule"`
	Timezone       string     `json:"timezone"`
	Active         bool       `json:"is_active"`
	Running        bool       `json:"is_running"`
	NextRunAt      *time.Time `json:"next_run_at"`
	LastRunAt      *time.Time `json:"last_run_at"`
	LastRunStatus  *string    `json:"last_run_status"`
	LastRunMessage *string    `json:"last_run_message"`
	RunCount       int        `json:"run_count"`
	FailureCount   int        `json:"failure_count"`
	SkippedCount   int        `json:"skipped_count"`
	MisfirePolicy  string     `json:"misfire_policy"`
	OverlapPolicy  string     `json:"overlap_policy"`
}

// List returns every schedule, ordered by id.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Summary, error) {
	rows, err := pool.Query(ctx, `SELECT id, name, job_class, cron_expression, interval_minutes, coalesce(timezone, 'UTC'),
			coalesce(is_active, false), coalesce(is_running, false), next_run_at, last_run_at, last_run_status,
			last_run_message, coalesce(run_count, 0), coalesce(failure_count, 0), skipped_count, misfire_policy, overlap_policy
		FROM scheduled_jobs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Summary, error) {
		var s Summary
		var cron *string
		var interval *int32
		err := row.Scan(&s.ID, &s.Name, &s.JobClass, &cron, &interval, &s.Timezone, &s.Active, &s.Running, &s.NextRunAt,
			&s.LastRunAt, &s.LastRunStatus, &s.LastRunMessage, &s.RunCount, &s.FailureCount, &s.SkippedCount,
			&s.MisfirePolicy, &s.OverlapPolicy)
		switch {
		case schedule.CronOf(cron) != "":
			s.Schedule = schedule.CronOf(cron)
		case interval != nil:
			s.Schedule = fmt.Sprintf("every %d min", *interval)
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// Problem is what is wrong, or doubtful, with one schedule.
type Problem struct {
	ID       int64    `json:"id"`
	Name     string   `json:"name"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Validate checks every schedule as the daemon would, without changing
// anything: an error keeps a row from running; a warning does not.
func Validate(ctx context.Context, pool *pgxpool.Pool, registry *workers.Registry) ([]Problem, error) {
	rows, err := pool.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	all, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	s := &Scheduler{registry: registry}
	var problems []Problem
	for _, r := range all {
		p := Problem{ID: r.ID, Name: r.Name}
		if _, _, err := s.compile(r); err != nil {
			p.Errors = append(p.Errors, err.Error())
		}
		if schedule.CronOf(r.Cron) != "" && r.Interval != nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("both cron_expression %q and interval_minutes %d are set: the cron expression wins", *r.Cron, *r.Interval))
		}
		if !r.IsActive {
			p.Warnings = append(p.Warnings, "paused (is_active is false)")
		}
		if len(p.Errors)+len(p.Warnings) > 0 {
			problems = append(problems, p)
		}
	}
	return problems, nil
}

// ErrAmbiguous is returned by Resolve when a name matches several schedules.
var ErrAmbiguous = errors.New("scheduler: several scheduled jobs have this name")

// Resolve turns an id or a name into a schedule's id and name.
func Resolve(ctx context.Context, pool *pgxpool.Pool, idOrName string) (int64, string, error) {
	if id, err := strconv.ParseInt(idOrName, 10, 64); err == nil {
		var name string
		err := pool.QueryRow(ctx, "SELECT name FROM scheduled_jobs WHERE id = $1", id).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, "", fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		return id, name, err
	}
	rows, err := pool.Query(ctx, "SELECT id FROM scheduled_jobs WHERE name = $1 ORDER BY id", idOrName)
	if err != nil {
		return 0, "", err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	switch {
	case err != nil:
		return 0, "", err
	case len(ids) == 0:
		return 0, "", fmt.Errorf("%w: %q", ErrNotFound, idOrName)
	case len(ids) > 1:
		return 0, "", fmt.Errorf("%w %q (ids %v): use an id", ErrAmbiguous, idOrName, ids)
	}
	return ids[0], idOrName, nil
}

// SetActive pauses (false) or resumes (true) a schedule. Running daemons
// pick the change up at once.
func SetActive(ctx context.Context, pool *pgxpool.Pool, id int64, active bool) error {
	_, err := pool.Exec(ctx, "UPDATE scheduled_jobs SET is_active = $2 WHERE id = $1", id, active)
	return err
}
