package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Runs are prepared ahead of their due instant (issue 18). Enqueueing ten
// thousand runs due at one second took ~1.4 s of statements (River's
// insert, the job_logs rows, the rows' bookkeeping), a thousand at a time,
// while the first runs' workers already competed for the database; the
// last of them were queued 1.4-1.9 s late. Now, when the next due instant
// is at most PrepareAhead away, the loop claims the rows due at that
// instant, writes their runs and advances them in one transaction, waits
// for the instant, and commits then: nothing of it is visible before the
// instant, and everything at once at it.
//
// What keeps each guarantee:
//   - exactly once: the rows are claimed FOR UPDATE SKIP LOCKED, as by the
//     normal path, and advanced in the transaction that holds their runs;
//     a crash or a stop before the commit leaves them as they were, due,
//     for the next cycle (here or in another replica);
//   - overlap policies: only rows with no unfinished run are prepared.
//     While the transaction holds such a row nothing can start one: the
//     scheduler's claims skip it, RunNow waits for its lock. A row with a
//     run in flight is left to the normal path at the instant, where its
//     overlap policy sees the run as it is then. That holds for
//     overlap_policy 'allow' too, which needs no such care, because the
//     Recorder and the Reconciler update the row of a run in flight: held
//     by a prepared transaction, every-second 'allow' rows stalled the
//     Recorder's flushes and kept a starting replica's first
//     reconciliation waiting past its 30 s (TestChaosReplicasKill9);
//   - next_run_at: it is advanced in the same transaction, visible with the
//     runs at the instant, as before;
//   - a run never starts early: it is committed at its instant, not before.
//
// The cost: a prepared row stays locked for up to PrepareAhead before its
// instant, so an admin's UPDATE of it then (an edit, a pause) waits for
// the instant and applies after the fire, as if made just after it; the
// loop handles nothing else meanwhile, so a row made due during that wait
// is enqueued at most PrepareAhead late. River's created_at and job_logs'
// created_at of a prepared run say when it was prepared, at most
// PrepareAhead before its instant; it could not be fetched before it.

// prepare enqueues the runs due at the instant at (the next due time, in
// the future) in one transaction that it commits at that instant, and
// returns how many rows it handled and runs it enqueued. It claims rows
// until the instant comes or none is left; the rows it did not reach are
// left to the normal path. paused are the classes the cycle that found the
// instant read as paused.
func (s *Scheduler) prepare(ctx context.Context, at time.Time, paused []string) (fired, enqueued int, err error) {
	backoff := s.backoffIDs()
	var done []firing
	began, prepared := s.cfg.Now(), time.Time{}
	err = inDaemonTx(ctx, s.pool, func(tx pgx.Tx) error {
		for s.cfg.Now().Before(at) {
			rows, more, err := s.claim(ctx, tx, fireable+` AND next_run_at = $2
				AND NOT coalesce(is_running, false) AND NOT EXISTS (
					SELECT 1 FROM job_logs l WHERE l.scheduled_job_id = scheduled_jobs.id AND l.status IN ('queued', 'processing'))
				ORDER BY id`, at, paused, backoff)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				break
			}
			n, e, d, err := s.inBatch(ctx, tx, rows, at, "enqueue", s.fire)
			if err != nil {
				return err
			}
			fired, enqueued, done = fired+n, enqueued+e, append(done, d...)
			if !more {
				break
			}
		}
		if fired == 0 {
			return nil
		}
		prepared = s.cfg.Now()
		if err := s.fault("prepared"); err != nil {
			return err
		}
		return sleepUntil(ctx, s.cfg.Now, at)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("prepare the runs due at %s: %w", at.UTC().Format(time.RFC3339Nano), err)
	}
	late := s.cfg.Now().Sub(at)
	s.logger.DebugContext(ctx, "runs prepared", slog.Int("rows", fired), slog.Int("runs", enqueued),
		slog.Time("due", at), slog.Duration("prepared_in", prepared.Sub(began)), slog.Duration("committed_late", late))
	for i := range done { // fire measured each lag from the instant; the runs were queued late after it
		for j := range done[i].lags {
			done[i].lags[j] += late
		}
	}
	s.committed(ctx, done, enqueued)
	return fired, enqueued, nil
}

// sleepUntil waits until now() reaches at, or ctx ends.
func sleepUntil(ctx context.Context, now func() time.Time, at time.Time) error {
	d := at.Sub(now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
