package integrations_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/workers/integrationsync"

	"github.com/atis-edu/atis-scheduler/workers/integrationdispatch"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/workers"
)

func TestDispatch(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cfg := map[string]any{"base_url": "http://127.0.0.1:1/none", "id_field": "id"}
	never := b.integration(t, cfg, map[string]any{"sync_frequency": "hourly"})
	recent := b.integration(t, cfg, map[string]any{"sync_frequency": "daily", "last_sync_at": now.Add(-time.Hour)})
	stale := b.integration(t, cfg, map[string]any{"sync_frequency": "daily", "last_sync_at": now.Add(-25 * time.Hour)})
	cron := b.integration(t, cfg, map[string]any{"sync_frequency": "0 */6 * * *", "last_sync_at": now.Add(-7 * time.Hour)})
	failedLately := b.integration(t, cfg, map[string]any{"sync_frequency": "hourly", "last_sync_at": now.Add(-5 * time.Hour)})
	_, err := b.pool.Exec(ctx, `INSERT INTO integration_sync_logs (integration_id, sync_type, start_time, status) VALUES ($1, 'full', $2, 'failed')`,
		failedLately, now.Add(-10*time.Minute))
	require.NoError(t, err)
	b.integration(t, cfg, map[string]any{"sync_frequency": "hourly", "is_enabled": false})
	b.integration(t, cfg, nil) // no frequency: manual only
	// A push integration (webhook, smtp) has nothing to sync, even with a frequency.
	b.integration(t, map[string]any{"url": "http://127.0.0.1:1/hook"}, map[string]any{"sync_frequency": "hourly",
		"integration_type": "notification", "provider": "webhook"})
	bad := b.integration(t, cfg, map[string]any{"sync_frequency": "fortnightly"})

	client := insertOnlyClient(t, b)
	res, err := b.engine.Dispatch(ctx, now, integrationdispatch.EnqueueWith(client))
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{never, stale, cron}, res.Enqueued)
	require.Equal(t, 2, res.NotDue, "synced an hour ago daily; failed ten minutes ago hourly (no retry storm)")
	require.Contains(t, res.Errors[bad], `sync_frequency "fortnightly" is not hourly, daily, weekly or a cron expression`)
	require.NotContains(t, res.Enqueued, recent)
	require.Equal(t, 3, b.count(t, "SELECT count(*) FROM job_logs WHERE job_class = 'integration_sync' AND status = 'queued'"))

	// While those are queued, the next tick leaves them alone.
	res, err = b.engine.Dispatch(ctx, now.Add(time.Minute), integrationdispatch.EnqueueWith(client))
	require.NoError(t, err)
	require.Empty(t, res.Enqueued)
	require.ElementsMatch(t, []int64{never, stale, cron}, res.Busy)
}

// TestConcurrentDispatchesNeverDouble: two dispatches at the same instant,
// from their own pools, enqueue each due integration once.
func TestConcurrentDispatchesNeverDouble(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	cfg := map[string]any{"base_url": "http://127.0.0.1:1/none", "id_field": "id"}
	for range 20 {
		b.integration(t, cfg, map[string]any{"sync_frequency": "hourly"})
	}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		pool := dbtest.Pool(t, b.pool.Config().ConnString())
		engine := &integrations.Engine{Pool: pool, Providers: b.engine.Providers}
		client := insertOnlyClient(t, &bundle{pool: pool, engine: engine})
		wg.Go(func() {
			_, err := engine.Dispatch(ctx, now, integrationdispatch.EnqueueWith(client))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 20, b.count(t, "SELECT count(*) FROM river_job WHERE kind = 'integration_sync'"))
	require.Equal(t, 20, b.count(t, "SELECT count(DISTINCT args->'parameters'->>'integration_id') FROM river_job"))
}

func insertOnlyClient(t *testing.T, b *bundle) *river.Client[pgx.Tx] {
	t.Helper()
	registry, err := workers.NewRegistry(integrationsync.New(b.engine))
	require.NoError(t, err)
	w, err := registry.RiverWorkers()
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Logger: dbtest.Logger(), Workers: w})
	require.NoError(t, err)
	return client
}
