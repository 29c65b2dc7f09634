package scheduler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

const benchRuns = 20000

// benchQueues is the River configuration of both sides: enough workers and a
// short fetch cooldown that River's fetch pacing (MaxWorkers per cooldown)
// is not what gets measured.
var benchQueues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 500}}

const benchCooldown = 10 * time.Millisecond

// benchPool opens a pool sized as the daemon sizes its own (workers + 10,
// here with 20 connections for 2 cores), for both sides.
func benchPool(b *testing.B, url string) *pgxpool.Pool {
	pool, err := database.Connect(context.Background(), url, database.Options{MaxConns: 20})
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	return pool
}

// BenchmarkScheduledRuns measures the scheduled path in its two halves on
// benchRuns due schedules (already planned, as in steady state):
//
//   - enqueue: the cycles that claim the due rows, insert the River jobs and
//     their job_logs rows and advance next_run_at;
//
//   - work: River working those runs (noop) with the Recorder writing every
//     attempt and the bookkeeping, against a bare River client working the
//     same number of pre-inserted noop jobs with the same configuration, in
//     the same run; the ratio is ours to River's.
//
//     make bench   (or: go test ./scheduler -run '^$' -bench ScheduledRuns -benchtime 1x)
func BenchmarkScheduledRuns(b *testing.B) {
	for b.Loop() {
		baseline := bareRiver(b)
		enqueue, work := fullPath(b)
		b.ReportMetric(enqueue, "enqueued/s")
		b.ReportMetric(work, "worked/s")
		b.ReportMetric(baseline, "bare_river/s")
		b.ReportMetric(work/baseline, "ratio")
		fmt.Printf("scheduled runs (%d): enqueue %.0f runs/s; work+record %.0f runs/s vs bare River %.0f jobs/s (same config, same run): ratio %.2f\n",
			benchRuns, enqueue, work, baseline, work/baseline)
	}
}

// fullPath enqueues benchRuns due runs through the scheduler, then works them
// with the Recorder, timing each half.
func fullPath(b *testing.B) (enqueuePerSec, workPerSec float64) {
	pool := benchPool(b, dbtest.NewURL(b))
	ctx := context.Background()
	due := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, overlap_policy, next_run_at)
		SELECT 'bench-' || i, 'noop', 60, 'allow', $2 FROM generate_series(1, $1) i`, benchRuns, due)
	require.NoError(b, err)
	registry, err := workers.NewRegistry(workers.NoopClass{})
	require.NoError(b, err)
	riverWorkers, err := registry.RiverWorkers()
	require.NoError(b, err)
	recorder := scheduler.NewRecorder(pool, registry, dbtest.Logger(), scheduler.RecorderConfig{InstanceID: "bench"})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown: benchCooldown, Logger: dbtest.Logger(), Middleware: []rivertype.Middleware{recorder},
		Queues: benchQueues, RetryPolicy: scheduler.RetryPolicy{}, Workers: riverWorkers,
	})
	require.NoError(b, err)
	clock := newClock(due.Add(-time.Minute))
	sched := scheduler.New(pool, client, registry, dbtest.Logger(), scheduler.Config{Now: clock.Now})
	cycle := func() {
		for {
			res, err := sched.Tick(ctx)
			require.NoError(b, err)
			if !res.More {
				return
			}
		}
	}
	cycle() // plan: steady state has planned rows
	clock.Set(due)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE scheduled_jobs")
	require.NoError(b, err)

	start := time.Now()
	cycle()
	enqueuePerSec = benchRuns / time.Since(start).Seconds()
	require.Equal(b, benchRuns, dbtest.Scalar[int](b, pool, "SELECT count(*) FROM river_job"))

	start = time.Now()
	require.NoError(b, client.Start(ctx))
	defer func() { _ = client.Stop(ctx) }()
	waitDone(b, pool, `SELECT count(*) FROM job_logs WHERE status = 'completed'`)
	return enqueuePerSec, benchRuns / time.Since(start).Seconds()
}

// bareRiver inserts benchRuns noop jobs and times a River client working
// them, with no middleware.
func bareRiver(b *testing.B) float64 {
	pool := benchPool(b, dbtest.NewURL(b))
	ctx := context.Background()
	riverWorkers := river.NewWorkers()
	require.NoError(b, workers.NoopClass{}.AddWorker(riverWorkers))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown: benchCooldown, Logger: dbtest.Logger(), Queues: benchQueues, Workers: riverWorkers,
	})
	require.NoError(b, err)
	params := make([]river.InsertManyParams, benchRuns)
	for i := range params {
		params[i] = river.InsertManyParams{Args: workers.NoopArgs{}}
	}
	_, err = client.InsertManyFast(ctx, params)
	require.NoError(b, err)
	start := time.Now()
	require.NoError(b, client.Start(ctx))
	defer func() { _ = client.Stop(ctx) }()
	waitDone(b, pool, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	return benchRuns / time.Since(start).Seconds()
}

func waitDone(b *testing.B, pool *pgxpool.Pool, countSQL string) {
	deadline := time.Now().Add(5 * time.Minute)
	for dbtest.Scalar[int](b, pool, countSQL) < benchRuns {
		require.True(b, time.Now().Before(deadline), "timed out")
		time.Sleep(5 * time.Millisecond)
	}
}
