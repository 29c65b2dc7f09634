package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Querier runs a query: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
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
func Validate(ctx context.Context, db Querier, registry *workers.Registry) ([]Problem, error) {
	rows, err := db.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs ORDER BY id`)
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
		if expr := schedule.CronOf(r.Cron); expr != "" {
			loc := time.UTC
			if r.Timezone != nil {
				if l, err := time.LoadLocation(*r.Timezone); err == nil {
					loc = l
				}
			}
			if w := schedule.SixFieldWarning(expr, loc); w != "" {
				p.Warnings = append(p.Warnings, w)
			}
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
