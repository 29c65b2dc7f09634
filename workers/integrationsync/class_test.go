package integrationsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/integrations/httpjson"
	"github.com/atis-edu/atis-scheduler/integrations/provider"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/atis-edu/atis-scheduler/workers/integrationsync"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestABadConfigIsCancelledNotRetried: the engine says a configuration it
// refuses is permanent (provider.ErrPermanent); through River, the run is
// cancelled after its first attempt, with the engine's message, though its
// schedule allows three.
func TestABadConfigIsCancelledNotRetried(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	engine := &integrations.Engine{Pool: pool, Providers: provider.Providers{"http_json": httpjson.Provider{}}}
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
		VALUES ('unknown provider', 'lms', 'carrier_pigeon', '{}', '{}', true) RETURNING id`).Scan(&id))
	h := schedtest.Start(t, pool, integrationsync.New(engine))
	var sid int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters, max_attempts, retry_delay_minutes, is_active)
		VALUES ('sync', 'integration_sync', 60, $1, 3, 0, false) RETURNING id`, map[string]any{"integration_id": id}).Scan(&sid))
	jobID, err := h.Scheduler.RunNow(ctx, sid, nil)
	require.NoError(t, err)
	out := h.Wait(t, jobID)
	require.Equal(t, "cancelled", out.Status)
	require.Equal(t, 1, out.Attempt, "not retried")
	require.Contains(t, out.Error, `unknown provider "carrier_pigeon"`)
}

func TestParse(t *testing.T) {
	t.Parallel()

	class := integrationsync.New(nil)
	require.NoError(t, class.ValidateParameters(json.RawMessage(`{"integration_id": 3, "sync_type": "full"}`)))
	require.EqualError(t, class.ValidateParameters(json.RawMessage(`{}`)), `integration_sync parameters: "integration_id" is required`)
}

// TestAMissingOrDisabledIntegrationIsCancelled: a run checks its
// integration with the same Resolve that `jobs validate` calls (Ready), so
// a run cancelled for it is one validate reported, with the same words.
func TestAMissingOrDisabledIntegrationIsCancelled(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	engine := &integrations.Engine{Pool: pool, Providers: provider.Providers{"http_json": httpjson.Provider{}}}
	class := integrationsync.New(engine)
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
		VALUES ('Old LMS', 'lms', 'http_json', '{}', '{}', false) RETURNING id`).Scan(&id))
	wantDisabled := fmt.Sprintf("integration_sync: integration %d (Old LMS) is disabled: set integrations.is_enabled, or pause this schedule", id)

	ready := func(integrationID int64) error {
		return class.(workers.ReadyChecker).Ready(ctx, workers.Args{Parameters: json.RawMessage(fmt.Sprintf(`{"integration_id": %d}`, integrationID))})
	}
	reason, permanent := workers.PermanentReason(ready(id))
	require.True(t, permanent)
	require.Equal(t, wantDisabled, reason)
	reason, permanent = workers.PermanentReason(ready(id + 1000))
	require.True(t, permanent)
	require.Equal(t, fmt.Sprintf("integration_sync: integration %d does not exist (integrations.id)", id+1000), reason)

	h := schedtest.Start(t, pool, class)
	out := h.Run(t, "integration_sync", map[string]any{"integration_id": id})
	require.Equal(t, "cancelled", out.Status)
	require.Equal(t, wantDisabled, out.Error)

	_, err := pool.Exec(ctx, `UPDATE integrations SET is_enabled = true WHERE id = $1`, id)
	require.NoError(t, err)
	require.NoError(t, ready(id))
}
