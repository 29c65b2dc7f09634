package integrations_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestProviderDyingOnTheLastPageChangesNothing: records are written chunk
// by chunk while pages arrive, inside one transaction; when the provider
// dies on the last page (after earlier chunks were written into
// integration_records in that transaction) the sync fails, its log says so,
// and integration_records is exactly as before. A first sync dying the same
// way leaves no record; once the provider recovers, a sync applies
// everything.
func TestProviderDyingOnTheLastPageChangesNothing(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	b.engine.ChunkRecords = 500 // several chunks before the last page
	const n, pageSize, lastPage = 2_900, 250, 12
	a := newAPI(t, n)
	id := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": pageSize}), nil)
	res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, n, res.Created)

	// Every record changes, two go away, one is new: the next sync would
	// update, delete and create.
	changedAt := time.Now().UTC()
	for i := 1; i <= n; i++ {
		a.set(i, "v2", changedAt)
	}
	a.remove(10, 20)
	a.set(n+1, "v2", changedAt)
	const digestSQL = `SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, external_id, payload::text, payload_hash, first_synced_at,
		last_synced_at, deleted_at), ',' ORDER BY id)) FROM integration_records WHERE integration_id = $1`
	before := dbtest.Scalar[string](t, b.pool, digestSQL, id)
	lastSync := dbtest.Scalar[time.Time](t, b.pool, "SELECT last_sync_at FROM integrations WHERE id = $1", id)

	// The last page dies mid-answer, every time it is asked for, once the
	// sync's transaction holds the write lock that its first chunk took.
	var wroteBefore atomic.Bool
	a.fault = func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		if r.URL.Query().Get("page") != "12" {
			return false
		}
		deadline := time.Now().Add(10 * time.Second)
		for !wroteBefore.Load() && time.Now().Before(deadline) {
			var writing bool
			err := b.pool.QueryRow(r.Context(), `SELECT EXISTS (SELECT 1 FROM pg_locks l
				WHERE l.relation = 'integration_records'::regclass AND l.mode = 'RowExclusiveLock' AND l.pid <> pg_backend_pid()
				  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&writing)
			wroteBefore.Store(err == nil && writing)
			if !wroteBefore.Load() {
				time.Sleep(10 * time.Millisecond) // polling another session's state
			}
		}
		panic(http.ErrAbortHandler) // the connection drops mid-answer
	}
	_, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.ErrorContains(t, err, "page 12")
	require.True(t, wroteBefore.Load(), "earlier chunks were written in the sync's transaction before the provider died")
	require.Equal(t, before, dbtest.Scalar[string](t, b.pool, digestSQL, id), "integration_records unchanged")
	log := b.lastLog(t, id)
	require.Equal(t, "failed", log.Status)
	require.NotNil(t, log.Error)
	require.Contains(t, *log.Error, "page 12")
	require.Zero(t, log.Created+log.Updated, "a failed sync reports nothing written")
	require.Equal(t, (lastPage-1)*pageSize, log.Processed, "the pages that had arrived")
	require.Equal(t, lastSync, dbtest.Scalar[time.Time](t, b.pool, "SELECT last_sync_at FROM integrations WHERE id = $1", id))

	// A first sync (whose chunks go straight into integration_records)
	// that dies on the last page leaves none of its records either.
	wroteBefore.Store(false)
	first := b.integration(t, conf(a, "/page", map[string]any{"type": "page", "page_size": pageSize}), nil)
	_, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: first, SyncType: "full"}, nil)
	require.ErrorContains(t, err, "page 12")
	require.True(t, wroteBefore.Load())
	require.Zero(t, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1", first))
	require.Equal(t, "failed", b.lastLog(t, first).Status)

	a.mu.Lock()
	a.fault = nil
	a.mu.Unlock()
	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{1, n - 2, 0, 2}, []int{res.Created, res.Updated, res.Unchanged, res.Deleted})
	require.Equal(t, "completed", b.lastLog(t, id).Status)
}
