package scheduler

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// pausedClasses reads the pause switches in platform.feature_flags: the
// job_class values paused (with their aliases), or all.
func (s *Scheduler) pausedClasses(ctx context.Context) (names []string, all bool, err error) {
	rows, err := s.pool.Query(ctx, `SELECT key FROM platform.feature_flags
		WHERE is_enabled AND deleted_at IS NULL AND (key = 'scheduler.paused' OR key LIKE 'scheduler.paused.%')`)
	if err != nil {
		return nil, false, fmt.Errorf("read pause switches: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, false, fmt.Errorf("read pause switches: %w", err)
	}
	names = []string{}
	for _, k := range keys {
		if k == "scheduler.paused" {
			all = true
			continue
		}
		names = append(names, s.registry.NamesFor(strings.TrimPrefix(k, "scheduler.paused."))...)
	}
	return names, all, nil
}
