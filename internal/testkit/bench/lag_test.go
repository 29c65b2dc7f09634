package bench_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Due instants of a run, as SQL over river_job: ours is the fire time the
// scheduler put in the run's args; River's periodic enqueuer sets
// scheduled_at to the tick it inserts for (and inserts up to 100 ms early).
const (
	dueOurs = `(args->>'scheduled_for')::timestamptz`
	duePeer = `scheduled_at`
)

// lags are the delays, in milliseconds, from each run's due instant to
// River's created_at (queued), attempted_at (started: River sets it when a
// worker fetches the job) and finalized_at (finished), all read from
// river_job and so taken on the database's clock on both sides. A run not
// yet started or finished counts as +Inf.
type lags struct {
	queued, started, finished []float64
}

// measureLags reads the lags of the noop runs whose due instant (dueSQL) is
// in [from, to), among the jobs after river_job id afterID (on a database
// with a history, the scenario's own: found by the primary key, not by a
// scan of the history).
func measureLags(b *testing.B, pool *pgxpool.Pool, dueSQL string, from, to time.Time, afterID int64) lags {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT extract(epoch FROM created_at - due) * 1000,
			extract(epoch FROM attempted_at - due) * 1000, extract(epoch FROM finalized_at - due) * 1000
		FROM (SELECT created_at, attempted_at, finalized_at, `+dueSQL+` AS due FROM river_job WHERE id > $3 AND kind = 'noop') j
		WHERE due >= $1 AND due < $2`, from, to, afterID)
	require.NoError(b, err)
	defer rows.Close()
	var l lags
	for rows.Next() {
		var q, s, f *float64
		require.NoError(b, rows.Scan(&q, &s, &f))
		l.queued = append(l.queued, orInf(q))
		l.started = append(l.started, orInf(s))
		l.finished = append(l.finished, orInf(f))
	}
	require.NoError(b, rows.Err())
	slices.Sort(l.queued)
	slices.Sort(l.started)
	slices.Sort(l.finished)
	return l
}

func orInf(v *float64) float64 {
	if v == nil {
		return math.Inf(1)
	}
	return *v
}

// waitRuns waits until want noop runs due in [from, to), after river_job id
// afterID, are finalized, or the deadline; it returns how many were.
func waitRuns(b *testing.B, pool *pgxpool.Pool, dueSQL string, from, to time.Time, afterID int64, want int, deadline time.Time) int {
	b.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var done int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job
			WHERE id > $3 AND kind = 'noop' AND finalized_at IS NOT NULL AND `+dueSQL+` >= $1 AND `+dueSQL+` < $2`, from, to, afterID).Scan(&done)
		cancel()
		require.NoError(b, err)
		if done >= want || time.Now().After(deadline) {
			return done
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// watchQueued polls river_job every 10 ms, from now on, for the noop runs
// after river_job id afterID (in a burst, the burst's runs only), and
// returns a function that waits until all want of them were first seen
// (committed, so fetchable) and says when, in milliseconds after due: +Inf
// when they never were within a minute. The poll counts through the
// primary key and reads no args, so that it stays quick while the burst
// keeps both cores busy. It is the "queued" of the bursts: River's created_at is the start
// of the inserting transaction, which for our prepared runs (committed at
// their instant) is up to ATIS_PREPARE_AHEAD before it.
func watchQueued(b *testing.B, pool *pgxpool.Pool, due time.Time, afterID int64, want int) func() float64 {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan float64, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id > $1 AND kind = 'noop'`, afterID).Scan(&n)
			if err == nil && n >= want {
				seen <- float64(time.Since(due)) / float64(time.Millisecond)
				return
			}
			select {
			case <-ctx.Done():
				seen <- math.Inf(1)
				return
			case <-tick.C:
			}
		}
	}()
	return func() float64 {
		select {
		case v := <-seen:
			cancel()
			return v
		case <-time.After(time.Minute):
			cancel()
			return <-seen
		}
	}
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// pct returns the q-quantile (0 < q ≤ 1) of sorted, nearest rank; NaN when
// empty.
func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// msText prints a figure in milliseconds.
func msText(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "never"
	case math.IsNaN(v):
		return "n/a"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

// nextSecond returns the first whole second at least d after now.
func nextSecond(d time.Duration) time.Time {
	return time.Now().Add(d).Truncate(time.Second).Add(time.Second)
}

// requireTickAligned checks what duePeer relies on: River's periodic
// enqueuer set every noop job's scheduled_at to its tick, a whole second
// of the cron expressions the benchmarks use.
func requireTickAligned(b *testing.B, pool *pgxpool.Pool, afterID int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var off int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM river_job
		WHERE id > $1 AND kind = 'noop' AND date_trunc('second', scheduled_at) <> scheduled_at`, afterID).Scan(&off))
	require.Zero(b, off, "River periodic jobs whose scheduled_at is not their tick")
}
