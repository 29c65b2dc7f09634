package scheduler

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Pause switches: platform.feature_flags keys that, while enabled, stop
// every class (PauseAll) or one (PausePrefix + its name).
const (
	PauseAll    = "scheduler.paused"
	PausePrefix = PauseAll + "."
)

// PauseSwitches lists the pause switches in effect, sorted.
func PauseSwitches(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT key FROM platform.feature_flags
		WHERE is_enabled AND deleted_at IS NULL AND (key = $1 OR key LIKE $2) ORDER BY key`, PauseAll, PausePrefix+"%")
	if err != nil {
		return nil, fmt.Errorf("read pause switches: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read pause switches: %w", err)
	}
	return keys, nil
}

// pausedClasses reads the pause switches: the job_class values paused
// (with their aliases), or all.
func (s *Scheduler) pausedClasses(ctx context.Context) (names []string, all bool, err error) {
	keys, err := PauseSwitches(ctx, s.pool)
	if err != nil {
		return nil, false, err
	}
	names = []string{}
	for _, k := range keys {
		if k == PauseAll {
			all = true
			continue
		}
		names = append(names, s.registry.NamesFor(strings.TrimPrefix(k, PausePrefix))...)
	}
	return names, all, nil
}
