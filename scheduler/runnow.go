package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
)

// ErrNotFound is returned by RunNow for an unknown schedule.
var ErrNotFound = errors.New("scheduler: no such scheduled job")

// RunNow enqueues a run of the schedule with id now, as executedBy (nil for
// the system), whatever its next_run_at. Overlap is not checked at enqueue:
// an admin asked for this run; under 'skip' and 'queue_one' it waits for a
// running one to finish before it starts.
func (s *Scheduler) RunNow(ctx context.Context, id int64, executedBy *int64) (int64, error) {
	var jobID int64
	err := inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+rowColumns+` FROM scheduled_jobs WHERE id = $1 FOR UPDATE`, id)
		if err != nil {
			return err
		}
		r, err := pgx.CollectExactlyOneRow(rows, scanRow)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		_, class, err := s.compile(r)
		if err != nil {
			return fmt.Errorf("scheduled job %d (%s) cannot run: %w", r.ID, r.Name, err)
		}
		if jobID, err = runqueue.Enqueue(ctx, tx, s.river, s.newRun(r, class, s.cfg.Now(), executedBy)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE scheduled_jobs SET is_running = true, updated_at = now() WHERE id = $1`, id)
		return err
	})
	return jobID, err
}
