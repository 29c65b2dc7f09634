package joblog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler/joblog"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// staleWaiting returns a pool on a database whose job_logs statistics say
// what they say between bursts (a few finished rows, nothing unfinished)
// while waiting runs (river job ids 1..waiting, 100 schedules)
// are queued: what a burst meets before autovacuum's next analyze.
func staleWaiting(t *testing.T, waiting int) (*pgxpool.Pool, *dbtest.Explained) {
	t.Helper()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	dbtest.WaitingBehindStaleStatistics(t, pool, waiting, 100, 0)
	return pool, dbtest.NewExplained(t, url)
}

// TestStaleStatisticsDoNotJoinRowByRow: with 20,000 runs waiting and
// statistics that say none is, starting, requeueing and ending 200
// attempts handles each waiting run a few times at most, never each waiting run
// for each attempt. The statements once chose, on such statistics, to
// scan the partial index of unfinished rows (or the whole table) and
// compare each of its rows with each attempt of the flush: a second a
// flush in a burst (issue 18).
func TestStaleStatisticsDoNotJoinRowByRow(t *testing.T) {
	t.Parallel()
	const waiting, n = 20_000, 200
	_, explained := staleWaiting(t, waiting)
	ctx := context.Background()
	attempts := make([]joblog.Attempt, n)
	starts := make([]joblog.Start, n)
	ends := make([]joblog.End, n)
	now := time.Now()
	for i := range attempts {
		sid := int64(100001 + (i+1)%100)
		attempts[i] = joblog.Attempt{RiverJobID: int64(i + 1), Attempt: 1, Class: "noop", Queue: "default", Payload: []byte(`{}`), ScheduledJobID: &sid}
		starts[i] = joblog.Start{Attempt: attempts[i], At: now}
		ends[i] = joblog.End{Attempt: attempts[i], Status: joblog.StatusCompleted, Result: []byte(`{}`), Start: now, End: now}
	}
	steps := []struct {
		name string
		do   func(tx pgx.Tx) error
	}{
		{"begin", func(tx pgx.Tx) error { return joblog.Begin(ctx, tx, starts) }},
		{"requeue", func(tx pgx.Tx) error { return joblog.Requeue(ctx, tx, ends) }},
		{"begin again", func(tx pgx.Tx) error { return joblog.Begin(ctx, tx, starts) }},
		{"close", func(tx pgx.Tx) error {
			closed, err := joblog.Close(ctx, tx, ends)
			if err == nil && len(closed) != n {
				err = fmt.Errorf("closed %d attempts, want %d", len(closed), n)
			}
			return err
		}},
	}
	tx, err := explained.Conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	explained.Work(t)
	for _, step := range steps {
		require.NoError(t, step.do(tx), step.name)
		work := explained.Work(t)
		assert.LessOrEqual(t, work, int64(3*waiting+10*n), "%s of %d attempts handled %d rows with %d runs waiting", step.name, n, work, waiting)
	}
	var status string
	require.NoError(t, tx.QueryRow(ctx, `SELECT string_agg(DISTINCT status, ',') FROM job_logs WHERE river_job_id <= $1`, n).Scan(&status))
	require.Equal(t, joblog.StatusCompleted, status)
}
