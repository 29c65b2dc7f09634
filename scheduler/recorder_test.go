package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

type logRow struct {
	Attempt  int
	Status   string
	Error    *string
	Trace    *string
	Result   string
	Started  bool
	Ended    bool
	Duration *int
}

func jobLogs(t *testing.T, b *bundle, scheduledJobID int64) []logRow {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT attempt, status, error_message, error_trace, result::text,
			start_time IS NOT NULL, end_time IS NOT NULL, duration
		FROM job_logs WHERE scheduled_job_id = $1 ORDER BY river_job_id, attempt`, scheduledJobID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logRow])
	require.NoError(t, err)
	return out
}

// fireOnce inserts a schedule due now, fires it and waits until its run is
// over in River.
func fireOnce(t *testing.T, b *bundle, cols map[string]any) int64 {
	t.Helper()
	cols["interval_minutes"] = 60
	id := b.insertSchedule(t, cols)
	require.Equal(t, 1, b.tick(t).Enqueued)
	eventually(t, func() bool {
		return scalar[bool](t, b.pool, `SELECT NOT EXISTS (SELECT 1 FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled'))
			AND NOT EXISTS (SELECT 1 FROM job_logs WHERE status IN ('queued', 'processing'))`)
	}, "run of schedule %d did not finish", id)
	return id
}

func TestRecorder(t *testing.T) {
	t.Parallel()

	type bookkeeping struct {
		IsRunning           bool
		LastRunStatus       *string
		LastRunMessage      *string
		RunCount            int
		FailureCount        int
		ConsecutiveFailures int
		LastRunAt           bool
	}
	readBookkeeping := func(t *testing.T, b *bundle, id int64) bookkeeping {
		t.Helper()
		rows, err := b.pool.Query(context.Background(), `SELECT is_running, last_run_status, last_run_message, run_count,
			failure_count, consecutive_failures, last_run_at IS NOT NULL FROM scheduled_jobs WHERE id = $1`, id)
		require.NoError(t, err)
		bk, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[bookkeeping])
		require.NoError(t, err)
		return bk
	}
	str := func(s string) *string { return &s }

	t.Run("RetriesGiveOneRowPerAttempt", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		b.startRiver(t)
		id := fireOnce(t, b, map[string]any{"name": "r", "job_class": "test_fail", "max_attempts": 3, "retry_delay_minutes": 0})

		logs := jobLogs(t, b, id)
		require.Len(t, logs, 3)
		for i, l := range logs {
			require.Equal(t, i+1, l.Attempt)
			require.Equal(t, "failed", l.Status)
			require.Equal(t, "boom on attempt "+string(rune('1'+i)), *l.Error)
			require.True(t, l.Started && l.Ended)
			require.NotNil(t, l.Duration)
		}
		require.Equal(t, bookkeeping{LastRunStatus: str("failed"), LastRunMessage: str("boom on attempt 3"),
			RunCount: 1, FailureCount: 1, ConsecutiveFailures: 1, LastRunAt: true}, readBookkeeping(t, b, id))
		require.Equal(t, 1, scalar[int](t, b.pool, `SELECT count(*) FROM system_errors
			WHERE error_type = 'scheduled_job_failed' AND message LIKE '%boom on attempt 3%'
			AND (context->>'scheduled_job_id')::bigint = $1`, id))
		require.Equal(t, 1, scalar[int](t, b.pool, `SELECT count(*) FROM performance_metrics
			WHERE metric_type = 'job' AND name = 'test_fail' AND unit = 'ms'`))
	})

	t.Run("FlakySucceedsWithItsResult", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		b.startRiver(t)
		id := fireOnce(t, b, map[string]any{"name": "f", "job_class": "test_flaky", "parameters": `{"fail_attempts": 1}`,
			"max_attempts": 2, "retry_delay_minutes": 0})
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 2)
		require.Equal(t, "failed", logs[0].Status)
		require.Equal(t, "completed", logs[1].Status)
		require.JSONEq(t, `{"attempt": 2}`, logs[1].Result)
		require.Nil(t, logs[1].Error)
		require.Equal(t, bookkeeping{LastRunStatus: str("success"), RunCount: 1, LastRunAt: true}, readBookkeeping(t, b, id))
		require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM system_errors"))
	})

	t.Run("PanicKeepsItsStack", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		b.startRiver(t)
		id := fireOnce(t, b, map[string]any{"name": "p", "job_class": "test_panic", "max_attempts": 1})
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 1)
		require.Equal(t, "failed", logs[0].Status)
		require.Equal(t, "panic: kaboom", *logs[0].Error)
		require.Contains(t, *logs[0].Trace, "helpers_test.go", "the trace points at the panicking code")
		require.Contains(t, scalar[string](t, b.pool, "SELECT stack_trace FROM system_errors"), "helpers_test.go")
	})

	t.Run("PermanentErrorCancelsWithoutRetry", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		b.startRiver(t)
		id := fireOnce(t, b, map[string]any{"name": "c", "job_class": "test_fail", "parameters": `{"cancel": true}`,
			"max_attempts": 5, "retry_delay_minutes": 0})
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 1, "no retries")
		require.Equal(t, "cancelled", logs[0].Status)
		require.Equal(t, "bad parameters: nothing to do", *logs[0].Error)
		require.Equal(t, "cancelled", *readBookkeeping(t, b, id).LastRunStatus)
	})

	t.Run("RetryDelayIsHonoured", func(t *testing.T) {
		t.Parallel()

		b := setup(t, setupOpts{})
		b.startRiver(t)
		id := b.insertSchedule(t, map[string]any{"name": "d", "job_class": "test_fail", "interval_minutes": 60,
			"max_attempts": 2, "retry_delay_minutes": 7})
		b.tick(t)
		eventually(t, func() bool {
			return scalar[string](t, b.pool, "SELECT state::text FROM river_job") == "retryable"
		}, "the failed first attempt waits for its retry")
		wait := scalar[float64](t, b.pool, "SELECT extract(epoch FROM scheduled_at - now()) FROM river_job")
		require.InDelta(t, 7*60, wait, 10)
		// River's completer and the Recorder's buffer each write within
		// their own flush: wait for ours.
		eventually(t, func() bool { return len(jobLogs(t, b, id)) == 2 }, "the attempt's end is recorded")
		logs := jobLogs(t, b, id)
		require.Len(t, logs, 2)
		require.Equal(t, "failed", logs[0].Status)
		require.Equal(t, logRow{Attempt: 2, Status: "queued", Result: "{}"}, logs[1], "the next attempt is already visible")
	})

	t.Run("AlertAfterThreeFailuresInARowOnce", func(t *testing.T) {
		t.Parallel()

		ctx := context.Background()
		b := setup(t, setupOpts{})
		b.startRiver(t)
		id := b.insertSchedule(t, map[string]any{"name": "nightly-export", "job_class": "test_flaky", "cron_expression": "* * * * *",
			"parameters": `{"fail_attempts": 1}`, "max_attempts": 1})
		b.tick(t)
		runAt := func(m int) {
			b.clock.Set(time.Date(2026, 6, 1, 12, m, 0, 0, time.UTC))
			require.Equal(t, 1, b.tick(t).Enqueued)
			eventually(t, func() bool {
				return scalar[int](t, b.pool, "SELECT count(*) FROM job_logs WHERE status IN ('queued', 'processing')") == 0
			}, "run at minute %d", m)
		}
		alerts := func() int {
			return scalar[int](t, b.pool, "SELECT count(*) FROM system_notifications WHERE type = 'scheduled_job_failing' AND level = 'danger'")
		}
		for m := 1; m <= 2; m++ {
			runAt(m)
		}
		require.Zero(t, alerts())
		runAt(3)
		require.Equal(t, 1, alerts())
		require.Contains(t, scalar[string](t, b.pool, "SELECT title FROM system_notifications"), `"nightly-export" has failed 3 times in a row`)
		runAt(4)
		require.Equal(t, 1, alerts(), "no new alert while it keeps failing")

		// A success resets the streak; three more failures alert again.
		_, err := b.pool.Exec(ctx, `UPDATE scheduled_jobs SET parameters = '{"fail_attempts": 0}', next_run_at = $2 WHERE id = $1`,
			id, time.Date(2026, 6, 1, 12, 5, 0, 0, time.UTC))
		require.NoError(t, err)
		b.tick(t)
		runAt(5)
		require.Zero(t, scalar[int](t, b.pool, "SELECT consecutive_failures FROM scheduled_jobs WHERE id = $1", id))
		_, err = b.pool.Exec(ctx, `UPDATE scheduled_jobs SET parameters = '{"fail_attempts": 1}', next_run_at = $2 WHERE id = $1`,
			id, time.Date(2026, 6, 1, 12, 6, 0, 0, time.UTC))
		require.NoError(t, err)
		b.tick(t)
		for m := 6; m <= 8; m++ {
			runAt(m)
		}
		require.Equal(t, 2, alerts())
		require.Equal(t, 8, scalar[int](t, b.pool, "SELECT run_count FROM scheduled_jobs WHERE id = $1", id))
		require.Equal(t, 7, scalar[int](t, b.pool, "SELECT failure_count FROM scheduled_jobs WHERE id = $1", id))
	})
}
