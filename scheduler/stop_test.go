package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/atis-edu/atis-scheduler/internal/testkit/syncbuf"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// TestStopDuringABatchIsNoError: a SIGTERM that lands while a batch of due
// rows is being enqueued stops the batch, rolls it back whole, and logs no
// error for the rows it did not reach; the next start enqueues all of them.
func TestStopDuringABatchIsNoError(t *testing.T) {
	t.Parallel()

	b := setup(t, setupOpts{})
	const rows = 20
	for range rows {
		b.insertSchedule(t, map[string]any{"name": "s", "job_class": "noop", "cron_expression": "* * * * *"})
	}
	b.tick(t) // plan: every row is due at 12:01
	b.clock.Set(b.clock.Now().Add(61e9))

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var inserts, validations int
	var logs syncbuf.Buffer
	sched := scheduler.New(b.pool, b.river, b.registry, slog.New(slog.NewJSONHandler(&logs, nil)),
		scheduler.WithFault(scheduler.Config{Now: b.clock.Now}, func(step string) error {
			switch step {
			case "river_inserted":
				if inserts++; inserts == 1 {
					return errors.New("injected: the batch fails, its rows go one by one")
				}
			case "validated":
				if validations++; validations == 3 {
					stop() // the signal lands while the rows go one by one
				}
			}
			return nil
		}))
	_, err := sched.Tick(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
	require.Zero(t, sched.Stats().Failed, "a stop is no failure")
	require.Zero(t, scalar[int](t, b.pool, "SELECT count(*) FROM river_job"), "the batch is rolled back whole")

	res, err := scheduler.New(b.pool, b.river, b.registry, dbtest.Logger(), scheduler.Config{Now: b.clock.Now}).Tick(context.Background())
	require.NoError(t, err)
	require.Equal(t, rows, res.Enqueued)
}
