package integrations_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestAnIDAcrossChunksOfAFirstSync: a first sync writes chunks of records
// it has never seen straight into integration_records; an id that comes
// back in a later chunk takes the probing path, and the counts and the
// stored record are those of one record, the last.
func TestAnIDAcrossChunksOfAFirstSync(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	b.engine.ChunkRecords = 2 // a chunk per page
	var mu sync.Mutex
	pages := map[string]string{
		"1": `{"data": [{"id": 1, "v": "a"}, {"id": 2, "v": "a"}]}`,
		"2": `{"data": [{"id": 3, "v": "a"}, {"id": 1, "v": "b"}]}`,
		"3": `{"data": [{"id": 4, "v": "a"}, {"id": 2, "v": "a"}]}`,
		"4": `{"data": [{"id": 5, "v": "a"}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body := pages[r.URL.Query().Get("page")]
		mu.Unlock()
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	id := b.integration(t, map[string]any{"base_url": srv.URL, "records_path": "data", "id_field": "id",
		"pagination": map[string]any{"type": "page", "page_size": 2}}, nil)

	res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{5, 0, 0, 0, 7}, []int{res.Created, res.Updated, res.Unchanged, res.Deleted, res.Processed})
	require.Equal(t, "b", dbtest.Scalar[string](t, b.pool,
		"SELECT payload->>'v' FROM integration_records WHERE integration_id = $1 AND external_id = '1'", id))
	require.Equal(t, 5, b.count(t, "SELECT count(*) FROM integration_records WHERE integration_id = $1", id))

	// Record 1's first version differs from the stored one and is written
	// (chunks are written as they come), its last one puts the stored one
	// back: it counts once, as updated.
	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 4, 0}, []int{res.Created, res.Updated, res.Unchanged, res.Deleted})
	require.Equal(t, "b", dbtest.Scalar[string](t, b.pool,
		"SELECT payload->>'v' FROM integration_records WHERE integration_id = $1 AND external_id = '1'", id))

	// Record 1 comes first as it is stored, then changed; 2 goes away.
	mu.Lock()
	pages["1"] = `{"data": [{"id": 1, "v": "b"}, {"id": 3, "v": "a"}]}`
	pages["2"] = `{"data": [{"id": 4, "v": "a"}, {"id": 1, "v": "c"}]}`
	pages["3"] = `{"data": [{"id": 5, "v": "a"}]}`
	mu.Unlock()
	res, err = b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 3, 1}, []int{res.Created, res.Updated, res.Unchanged, res.Deleted})
	require.Equal(t, "c", dbtest.Scalar[string](t, b.pool,
		"SELECT payload->>'v' FROM integration_records WHERE integration_id = $1 AND external_id = '1'", id))
}
