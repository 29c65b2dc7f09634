package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/atis-edu/atis-scheduler/workers/noop"
)

// gate is a job class each of whose runs waits for a turn.
type gate struct{ turns chan struct{} }

func (gate) Name() string                             { return "test_gate" }
func (gate) ValidateParameters(json.RawMessage) error { return nil }
func (g gate) AddWorker(w *river.Workers) error {
	river.AddWorkerArgs(w, testArgs{kind: "test_gate"}, river.WorkFunc(func(ctx context.Context, _ *river.Job[testArgs]) error {
		select {
		case <-g.turns:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	return nil
}

// TestDeletingAScheduleWithHistory: a plain DELETE of a schedule that has
// run works (the seed's foreign key refused it); a run in progress finishes
// and is recorded; its claim goes; its history stays readable by name.
func TestDeletingAScheduleWithHistory(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	g := gate{turns: make(chan struct{}, 2)}
	registry, err := workers.NewRegistry(g, noop.New())
	require.NoError(t, err)
	client := schedtest.NewClient(t, b.pool, registry, scheduler.RecorderConfig{})
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.StopAndCancel(context.Background()) })
	sched := scheduler.New(b.pool, client, registry, dbtest.Logger(), scheduler.Config{})

	var id int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, is_active)
		VALUES ('nightly-report', 'test_gate', '0 3 * * *', false) RETURNING id`).Scan(&id))
	finished, err := sched.RunNow(ctx, id, nil)
	require.NoError(t, err)
	g.turns <- struct{}{}
	eventually(t, func() bool {
		return scalar[int](t, b.pool, "SELECT count(*) FROM job_logs WHERE river_job_id = $1 AND status = 'completed'", finished) == 1
	}, "the first run finished")

	running, err := sched.RunNow(ctx, id, nil)
	require.NoError(t, err)
	eventually(t, func() bool {
		return scalar[int](t, b.pool, "SELECT count(*) FROM scheduler_run_claims WHERE scheduled_job_id = $1", id) == 1
	}, "the second run started and holds its claim")

	_, err = b.pool.Exec(ctx, "DELETE FROM scheduled_jobs WHERE id = $1", id)
	require.NoError(t, err, "a schedule with history can be deleted")
	require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM scheduler_run_claims"), "no orphan claim")
	g.turns <- struct{}{}
	eventually(t, func() bool {
		return scalar[int](t, b.pool, "SELECT count(*) FROM job_logs WHERE river_job_id = $1 AND status = 'completed'", running) == 1
	}, "the run in progress finished and was recorded")

	runs, err := admin.ListRuns(ctx, b.pool, admin.RunFilter{ScheduledJobID: id, Limit: 10})
	require.NoError(t, err)
	require.Len(t, runs, 2, "its history stays")
	for _, r := range runs {
		require.NotNil(t, r.ScheduledJob)
		require.Equal(t, "nightly-report", *r.ScheduledJob, "by its name")
	}
	ids, err := admin.HistoryIDs(ctx, b.pool, "nightly-report")
	require.NoError(t, err)
	require.Equal(t, []int64{id}, ids)
	detail, err := admin.ShowRun(ctx, b.pool, running)
	require.NoError(t, err)
	require.Equal(t, "nightly-report", *detail.ScheduledJob)
}

// leaky is a job class whose errors quote a URL with a token in its path.
type leaky struct{}

func (leaky) Name() string                             { return "test_leaky" }
func (leaky) ValidateParameters(json.RawMessage) error { return nil }
func (leaky) AddWorker(w *river.Workers) error {
	river.AddWorkerArgs(w, testArgs{kind: "test_leaky"}, river.WorkFunc(func(context.Context, *river.Job[testArgs]) error {
		return errors.New("GET https://api.example/bot123456:LEAKYTOKEN/send answered 500")
	}))
	return nil
}

// TestErrorsReachRiverRedacted: what a class's error quotes is redacted in
// job_logs and in River's own record of the attempt (river_job.errors).
func TestErrorsReachRiverRedacted(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	registry, err := workers.NewRegistry(leaky{})
	require.NoError(t, err)
	client := schedtest.NewClient(t, b.pool, registry, scheduler.RecorderConfig{})
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.StopAndCancel(context.Background()) })
	var id int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression, is_active)
		VALUES ('leaky', 'test_leaky', '0 3 * * *', false) RETURNING id`).Scan(&id))
	runID, err := scheduler.New(b.pool, client, registry, dbtest.Logger(), scheduler.Config{}).RunNow(ctx, id, nil)
	require.NoError(t, err)
	eventually(t, func() bool {
		return scalar[int](t, b.pool, "SELECT count(*) FROM job_logs WHERE river_job_id = $1 AND status = 'failed'", runID) == 1
	}, "the run failed")
	require.Contains(t, scalar[string](t, b.pool, "SELECT error_message FROM job_logs WHERE river_job_id = $1", runID), "/[redacted]/send answered 500")
	eventually(t, func() bool {
		return scalar[string](t, b.pool, "SELECT coalesce(errors::text, '') FROM river_job WHERE id = $1", runID) != ""
	}, "River recorded the attempt")
	require.NotContains(t, scalar[string](t, b.pool, "SELECT errors::text FROM river_job WHERE id = $1", runID), "LEAKYTOKEN")
}
