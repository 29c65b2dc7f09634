package scheduler_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/workers"
)

// TestEnqueueKeepsSecretsOutOfTheQueue: River's args and the job_logs
// payload carry the redacted parameters, marked, whenever redaction hides
// something; a run of no schedule with secrets is refused, since its worker
// would have nowhere to read them from; a run without secrets goes as is.
func TestEnqueueKeepsSecretsOutOfTheQueue(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t, setupOpts{})
	enqueue := func(t *testing.T, params string, scheduleID int64) (int64, error) {
		t.Helper()
		var id int64
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			id, err = runqueue.Enqueue(ctx, tx, b.river, runqueue.Run{
				Args:     workers.Args{Parameters: json.RawMessage(params), ScheduledFor: time.Now(), ScheduledJobID: scheduleID},
				Class:    "http_request",
				Redacted: b.registry.Redact("http_request", json.RawMessage(params)),
			})
			return err
		})
		return id, err
	}
	const secret = `{"url": "https://example.test/hook", "headers": {"Authorization": "Bearer enq-SECRET"}}`

	t.Run("SecretsWithoutScheduleAreRefused", func(t *testing.T) {
		t.Parallel()

		_, err := enqueue(t, secret, 0)
		require.ErrorIs(t, err, runqueue.ErrSecretsWithoutSchedule)
		require.EqualError(t, err, "enqueue http_request: "+runqueue.ErrSecretsWithoutSchedule.Error())
		require.NotContains(t, err.Error(), "enq-SECRET")
	})
	t.Run("SecretsOfAScheduleAreRedacted", func(t *testing.T) {
		t.Parallel()

		scheduleID := b.insertSchedule(t, map[string]any{"name": "s", "job_class": "http_request", "interval_minutes": 5, "parameters": secret})
		id, err := enqueue(t, secret, scheduleID)
		require.NoError(t, err)
		var args, payload workers.Args
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT j.args, l.payload FROM river_job j JOIN job_logs l ON l.river_job_id = j.id WHERE j.id = $1`, id).
			Scan(&args, &payload))
		for _, a := range []workers.Args{args, payload} {
			require.True(t, a.ParametersRedacted)
			require.JSONEq(t, `{"url": "https://example.test/hook", "headers": {"Authorization": "[redacted]"}}`, string(a.Parameters))
		}
	})
	t.Run("NoSecretsGoAsTheyAre", func(t *testing.T) {
		t.Parallel()

		// Redact rewrites the JSON (key order, spacing) without hiding anything.
		const plain = `{"url": "https://example.test/hook",   "method": "POST"}`
		id, err := enqueue(t, plain, 0)
		require.NoError(t, err)
		var args workers.Args
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT args FROM river_job WHERE id = $1`, id).Scan(&args))
		require.False(t, args.ParametersRedacted)
		require.JSONEq(t, plain, string(args.Parameters))
	})
}
