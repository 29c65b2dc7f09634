// Package schedtest runs job classes end to end in tests: a River client
// with the job_logs Recorder, and manual runs of scheduled_jobs rows whose
// recorded outcome the test then reads.
package schedtest

import (
	"cmp"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

// Harness works jobs of its classes until the test ends.
type Harness struct {
	Pool      *pgxpool.Pool
	Scheduler *scheduler.Scheduler
}

// NewClient returns an unstarted River client working registry's classes
// with the Recorder (configured by rec), polling fast as tests want.
func NewClient(tb testing.TB, pool *pgxpool.Pool, registry *workers.Registry, rec scheduler.RecorderConfig) *river.Client[pgx.Tx] {
	tb.Helper()
	return newClient(tb, pool, registry, rec, nil)
}

// newClient is NewClient with middleware put before the Recorder, as the
// daemon puts its tracing middleware.
func newClient(tb testing.TB, pool *pgxpool.Pool, registry *workers.Registry, rec scheduler.RecorderConfig,
	middleware []rivertype.Middleware) *river.Client[pgx.Tx] {
	tb.Helper()
	riverWorkers, err := registry.RiverWorkers()
	if err != nil {
		tb.Fatal(err)
	}
	rec.InstanceID = cmp.Or(rec.InstanceID, "test")
	// The Recorder buffers as in the daemon; it is stopped (and flushed)
	// after the test's own cleanups, which stop River, have run.
	recorder := scheduler.NewRecorder(pool, registry, dbtest.Logger(), rec)
	if err := recorder.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(recorder.Stop)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, Logger: dbtest.Logger(),
		Middleware: append(middleware, recorder),
		Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}}, RetryPolicy: scheduler.RetryPolicy{},
		TestOnly: true, Workers: riverWorkers,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return client
}

// Start starts a River client working classes, with the Recorder.
func Start(tb testing.TB, pool *pgxpool.Pool, classes ...workers.Class) *Harness {
	tb.Helper()
	return StartWithMiddleware(tb, pool, nil, classes...)
}

// StartWithMiddleware is Start with middleware before the Recorder (the
// daemon's tracing middleware, say).
func StartWithMiddleware(tb testing.TB, pool *pgxpool.Pool, middleware []rivertype.Middleware, classes ...workers.Class) *Harness {
	tb.Helper()
	registry, err := workers.NewRegistry(classes...)
	if err != nil {
		tb.Fatal(err)
	}
	client := newClient(tb, pool, registry, scheduler.RecorderConfig{}, middleware)
	if err := client.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(ctx)
	})
	return &Harness{Pool: pool, Scheduler: scheduler.New(pool, client, registry, dbtest.Logger(), scheduler.Config{})}
}

// Outcome is a finished run's last job_logs row.
type Outcome struct {
	Status  string
	Error   string
	Result  json.RawMessage
	Attempt int
}

// Run inserts a scheduled_jobs row of class with parameters (max_attempts
// 1), runs it now and waits for its outcome.
func (h *Harness) Run(tb testing.TB, class string, parameters any) Outcome {
	tb.Helper()
	ctx := context.Background()
	params, err := json.Marshal(parameters)
	if err != nil {
		tb.Fatal(err)
	}
	var id int64
	if err := h.Pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, parameters, max_attempts, is_active)
		VALUES ($1, $1, '0 0 1 1 *', $2, 1, false) RETURNING id`, class, params).Scan(&id); err != nil {
		tb.Fatal(err)
	}
	jobID, err := h.Scheduler.RunNow(ctx, id, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return h.Wait(tb, jobID)
}

// Wait waits until the run of River job jobID is over (it has job_logs rows
// and none is queued or processing; up to a minute) and returns its last
// attempt.
func (h *Harness) Wait(tb testing.TB, jobID int64) Outcome {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var o Outcome
		var errMsg *string
		err := h.Pool.QueryRow(context.Background(), `SELECT status, error_message, result, attempt FROM job_logs l
			WHERE river_job_id = $1 AND NOT EXISTS (SELECT 1 FROM job_logs WHERE river_job_id = $1 AND status IN ('queued', 'processing'))
			ORDER BY attempt DESC LIMIT 1`, jobID).
			Scan(&o.Status, &errMsg, &o.Result, &o.Attempt)
		if err == nil {
			if errMsg != nil {
				o.Error = *errMsg
			}
			return o
		}
		if err != pgx.ErrNoRows {
			tb.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("schedtest: run %d did not finish within a minute", jobID)
	return Outcome{}
}
