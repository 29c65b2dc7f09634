package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

// readyRow is what checking a schedule's runs needs of its row.
type readyRow struct {
	ID         int64
	Name       string
	Class      string
	Active     bool
	Parameters json.RawMessage
}

// checkRuns adds to problems what a run of each schedule would lack now,
// beyond what the scheduler checks: a from_config key missing or not
// decryptable, an integration gone or disabled (the class's own Resolve,
// which every attempt starts with, says so), and pause switches that keep
// a class from being enqueued. A row the scheduler already rejects is not
// checked again. The result is sorted by id.
func checkRuns(ctx context.Context, pool *pgxpool.Pool, registry *workers.Registry, problems []admin.Problem) ([]admin.Problem, error) {
	rows, err := pool.Query(ctx, `SELECT id, name, job_class, is_active, coalesce(parameters, '{}'::jsonb)
		FROM scheduled_jobs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[readyRow])
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	paused, err := pausedClasses(ctx, pool, registry)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]int, len(problems))
	for i, p := range problems {
		byID[p.ID] = i
	}
	for _, r := range all {
		i, ok := byID[r.ID]
		if !ok {
			problems = append(problems, admin.Problem{ID: r.ID, Name: r.Name})
			i = len(problems) - 1
			byID[r.ID] = i
		}
		p := &problems[i]
		if len(p.Errors) == 0 {
			err := registry.Ready(ctx, r.Class, workers.Args{ScheduledJobID: r.ID, Parameters: r.Parameters})
			if reason, permanent := workers.PermanentReason(err); permanent {
				p.Errors = append(p.Errors, "a run would fail: "+reason)
			} else if err != nil {
				return nil, fmt.Errorf("check what scheduled job %d (%s) needs to run: %w", r.ID, r.Name, err)
			}
		}
		if why, ok := paused(r.Class); ok && r.Active {
			p.Warnings = append(p.Warnings, why)
		}
	}
	problems = slices.DeleteFunc(problems, func(p admin.Problem) bool { return len(p.Errors)+len(p.Warnings) == 0 })
	slices.SortStableFunc(problems, func(a, b admin.Problem) int { return cmp.Compare(a.ID, b.ID) })
	return problems, nil
}

// pausedClasses reads the pause switches in effect and returns a function
// that says why a job_class is not enqueued, if it is not.
func pausedClasses(ctx context.Context, pool *pgxpool.Pool, registry *workers.Registry) (func(class string) (string, bool), error) {
	keys, err := scheduler.PauseSwitches(ctx, pool)
	if err != nil {
		return nil, err
	}
	return func(class string) (string, bool) {
		for _, k := range keys {
			if k == scheduler.PauseAll {
				return fmt.Sprintf("every class is paused (platform.feature_flags %s is enabled): no run is enqueued until it is turned off", k), true
			}
			if slices.Contains(registry.NamesFor(strings.TrimPrefix(k, scheduler.PausePrefix)), class) {
				return fmt.Sprintf("class %s is paused (platform.feature_flags %s is enabled): no run is enqueued until it is turned off", class, k), true
			}
		}
		return "", false
	}, nil
}
