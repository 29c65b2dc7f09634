package integrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/integrations/csv"
	"github.com/atis-edu/atis-scheduler/integrations/ics"
	"github.com/atis-edu/atis-scheduler/integrations/scim"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// setupPull is setup with the pull providers registered too; csv may read
// files under importDir.
func setupPull(t testing.TB, importDir string) *bundle {
	t.Helper()
	b := setup(t)
	b.engine.Providers["scim"] = scim.Provider{}
	b.engine.Providers["ics"] = ics.Provider{}
	b.engine.Providers["csv"] = csv.Provider{ImportDir: importDir}
	return b
}

// pullIntegration inserts an enabled integration of the provider and type.
func (b *bundle) pullIntegration(t testing.TB, provider, integrationType string, config map[string]any, credentials string) int64 {
	t.Helper()
	if credentials == "" {
		credentials = "{}"
	}
	return b.integration(t, config, map[string]any{"provider": provider, "integration_type": integrationType, "credentials": credentials})
}

// sync runs a sync and returns its result and error.
func (b *bundle) sync(t testing.TB, id int64) (integrations.SyncResult, error) {
	t.Helper()
	return b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id}, nil)
}

// live counts an integration's records not marked deleted.
func (b *bundle) live(t *testing.T, id int64) int {
	t.Helper()
	return b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NULL", id)
}

// payload returns a record's payload field as text.
func (b *bundle) payload(t *testing.T, id int64, externalID, path string) string {
	t.Helper()
	return dbtest.Scalar[string](t, b.pool, "SELECT coalesce(payload #>> $3::text[], '') FROM integration_records WHERE integration_id = $1 AND external_id = $2",
		id, externalID, "{"+path+"}")
}

// everything is every place a secret could surface: sync logs, records,
// security events, system errors and the engine's log lines.
func (b *bundle) everything(t *testing.T) string {
	t.Helper()
	return dbtest.Scalar[string](t, b.pool, `SELECT concat_ws(' ',
		(SELECT string_agg(s::text, ' ') FROM integration_sync_logs s), (SELECT string_agg(r::text, ' ') FROM integration_records r),
		(SELECT string_agg(e::text, ' ') FROM security_events e), (SELECT string_agg(e::text, ' ') FROM system_errors e))`) + b.logs.String()
}

// requireFailed checks that the last sync failed with a message containing
// want and that no record was applied.
func requireFailed(t *testing.T, b *bundle, id int64, err error, want string) {
	t.Helper()
	require.Error(t, err)
	l := b.lastLog(t, id)
	require.Equal(t, "failed", l.Status)
	require.NotNil(t, l.Error)
	require.Contains(t, *l.Error, want)
	require.Zero(t, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1", id), "nothing half-applied")
}

// TestEveryPullTypeHasAProvider: the seven pull types of the seed's
// integration_type each sync with the provider the README gives them.
func TestEveryPullTypeHasAProvider(t *testing.T) {
	t.Parallel()

	b := setupPull(t, "")
	for _, typ := range []string{"api", "payment", "lms", "storage"} {
		id := b.pullIntegration(t, "http_json", typ, conf(newAPI(t, 3), "/none", map[string]any{"type": "none"}), "")
		_, err := b.sync(t, id)
		require.NoError(t, err, typ)
		require.Equal(t, 3, b.live(t, id), typ)
	}
	for provider, types := range map[string][]string{"scim": {"sso"}, "ics": {"calendar"}, "csv": {"data_import"}} {
		supported, _ := b.engine.Providers[provider].Supports(types[0], nil)
		require.True(t, supported, provider)
		for _, other := range []string{"api", "notification", "email"} {
			supported, _ := b.engine.Providers[provider].Supports(other, nil)
			require.False(t, supported, provider+" "+other)
		}
	}
}
