package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A burst bulk-loads river_job and job_logs. When those tables were nearly
// empty at their last ANALYZE (River's cleaner and our retention empty them
// between bursts, and autovacuum leaves the freed pages in place to refill),
// the planner keeps believing them nearly empty while ten thousand runs
// arrive, and River's own statements, which we cannot change, then join
// them row by row: on one such database River's completer spent 200 ms a
// batch comparing 760,000 row pairs (issue 18). Autovacuum's analyze comes
// a minute later at best. PostgreSQL's advice after a bulk load is to run
// ANALYZE; the scheduler knows when it has made one, so it does that: when
// the runs it enqueued since the last refresh reach half the rows the
// planner believes river_job holds (and at least freshenAtLeast), it
// analyzes river_job and job_logs in the background, at most once per
// freshenEvery. On a database with a day of history the threshold is never
// reached by one burst and this costs nothing.
const (
	freshenAtLeast = 1000
	freshenEvery   = 10 * time.Second
	freshenTimeout = 30 * time.Second
)

// freshenTables are the tables a burst grows, analyzed in this order.
var freshenTables = []string{"river_job", "job_logs"}

// freshener refreshes the planner's statistics of the tables a burst grows.
type freshener struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time

	refreshing sync.WaitGroup // the refresh under way, for the scheduler's stop

	mu      sync.Mutex
	pending int       // runs enqueued since the last refresh
	running bool      // a refresh is under way
	last    time.Time // when the last refresh started
}

// enqueued tells the freshener that n runs were committed. At most once
// per freshenEvery, once they reach freshenAtLeast, it checks in the
// background (not on the scheduling cycle) whether they make the
// statistics stale, and if so refreshes them.
func (f *freshener) enqueued(ctx context.Context, n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending += n
	if f.running || f.pending < freshenAtLeast || f.now().Sub(f.last) < freshenEvery {
		return
	}
	f.running, f.last = true, f.now()
	pending := f.pending
	f.refreshing.Go(func() { f.refresh(ctx, pending) }) // a stop cancels it
}

// believedRows is how many rows the planner believes river_job holds (0
// when it was never analyzed).
func (f *freshener) believedRows(ctx context.Context) (float64, error) {
	var n float64
	err := f.pool.QueryRow(ctx, `SELECT greatest(reltuples, 0)::float8 FROM pg_class WHERE oid = 'river_job'::regclass`).Scan(&n)
	return n, err
}

// refresh analyzes freshenTables when the pending runs reach half the rows
// the planner believes river_job holds, each table in a short transaction
// that gives up rather than wait behind a lock (a VACUUM FULL, say).
func (f *freshener) refresh(ctx context.Context, pending int) {
	defer func() {
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, freshenTimeout)
	defer cancel()
	believed, err := f.believedRows(ctx)
	if err != nil || float64(pending) < believed/2 {
		return // not stale (or not known): the runs keep counting
	}
	f.mu.Lock()
	f.pending -= pending
	f.mu.Unlock()
	start := time.Now()
	err = analyze(ctx, f.pool, freshenTables)
	attrs := []any{slog.Int("runs_enqueued", pending), slog.Float64("rows_believed", believed),
		slog.Duration("took", time.Since(start))}
	switch {
	case errors.Is(err, context.Canceled): // the scheduler stopped
		f.logger.Debug("statistics refresh stopped", attrs...)
	case err != nil: // autovacuum will do it later; a role that may not ANALYZE gets a warning from the server, not an error
		f.logger.Warn("statistics not refreshed after a burst", append(attrs, slog.String("error", err.Error()))...)
	default:
		f.logger.Debug("statistics refreshed after a burst", attrs...)
	}
}

// analyze runs ANALYZE on each table with a lock timeout.
func analyze(ctx context.Context, pool *pgxpool.Pool, tables []string) error {
	for _, t := range tables {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `ANALYZE `+pgx.Identifier{t}.Sanitize())
			return err
		})
		if err != nil {
			return fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return nil
}
