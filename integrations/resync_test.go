package integrations_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
)

// TestResyncsAgainstAModel: syncs of an integration whose provider, from
// one sync to the next, changes records, drops some, brings back deleted
// ones, adds new ones and lists some ids twice (in a page or across
// pages, the same or changed), full or incremental, each page a chunk of
// its own; once it answers nothing, which a full sync refuses while records
// are live. After each sync the counts are those of a model, and so is
// integration_records: each record's payload, whether it is deleted, its
// row id and first_synced_at kept, last_synced_at moved exactly for the
// records written.
func TestResyncsAgainstAModel(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	b := setup(t)
	b.engine.ChunkRecords = 1 // a chunk per page
	for seed := uint64(1); seed <= 3; seed++ {
		var mu sync.Mutex
		var pages [][]string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			i, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
			var recs []string
			if i < len(pages) {
				recs = pages[i]
			}
			next := ""
			if i+1 < len(pages) {
				next = strconv.Itoa(i + 1)
			}
			_, _ = fmt.Fprintf(w, `{"data": [%s], "next": %q}`, strings.Join(recs, ","), next)
		}))
		t.Cleanup(srv.Close)
		id := b.integration(t, map[string]any{"base_url": srv.URL, "records_path": "data", "id_field": "id", "updated_since_param": "since",
			"pagination": map[string]any{"type": "cursor", "cursor_param": "cursor", "next_cursor_path": "next"}}, nil)

		rng := rand.New(rand.NewPCG(seed, 18))
		model := map[string]*modelRecord{}
		for round := range 12 {
			full := round == 0 || rng.IntN(4) > 0
			// The provider's pages: up to 6 records of ids 1-40 each, in
			// one of three versions.
			served := 0
			mu.Lock()
			pages = pages[:0]
			for range 1 + rng.IntN(8) {
				var page []string
				for range rng.IntN(7) {
					page = append(page, fmt.Sprintf(`{"id":"%d","v":"%c"}`, 1+rng.IntN(40), "abc"[rng.IntN(3)]))
				}
				served += len(page)
				pages = append(pages, page)
			}
			if round == 6 {
				pages, served = [][]string{nil}, 0
			}
			// A full sync that finds nothing while records are live is
			// refused: it changes nothing.
			refused := full && served == 0 && slices.ContainsFunc(slices.Collect(maps.Values(model)), func(m *modelRecord) bool { return !m.deleted })
			want, written, gone := []int{0, 0, 0, 0}, map[string]bool{}, map[string]bool{}
			if !refused {
				want, written, gone = expect(model, pages, full)
			}
			mu.Unlock()

			syncType := integrations.SyncIncremental
			if full {
				syncType = integrations.SyncFull
			}
			res, err := b.engine.Sync(ctx, integrations.SyncParams{IntegrationID: id, SyncType: syncType}, nil)
			where := fmt.Sprintf("seed %d, round %d (%s): %v", seed, round, syncType, pages)
			if refused {
				require.ErrorContains(t, err, "the full sync returned no records: refusing to mark all", where)
			} else {
				require.NoError(t, err, where)
				require.Equal(t, want, []int{res.Created, res.Updated, res.Unchanged, res.Deleted}, "%s: created, updated, unchanged, deleted", where)
				require.Equal(t, served, res.Processed, where)
			}

			// The table.
			rows, err := b.pool.Query(ctx, `SELECT external_id, id, payload->>'v', first_synced_at, last_synced_at, deleted_at
				FROM integration_records WHERE integration_id = $1`, id)
			require.NoError(t, err)
			got := map[string]*modelRecord{}
			for rows.Next() {
				var ext string
				r := &modelRecord{}
				require.NoError(t, rows.Scan(&ext, &r.rowID, &r.v, &r.first, &r.last, &r.deletedAt))
				got[ext] = r
			}
			require.NoError(t, rows.Err())
			require.ElementsMatch(t, slices.Collect(maps.Keys(model)), slices.Collect(maps.Keys(got)), "%s: the ids stored", where)
			var at time.Time // this sync's timestamp: every record it wrote or deleted has it
			for ext, m := range model {
				g := got[ext]
				require.Equal(t, m.v, g.v, "%s: record %s's payload", where, ext)
				require.Equal(t, m.deleted, g.deletedAt != nil, "%s: record %s deleted", where, ext)
				if m.rowID == 0 { // created by this sync
					m.rowID, m.first = g.rowID, g.first
				}
				require.Equal(t, m.rowID, g.rowID, "%s: record %s's row", where, ext)
				require.Equal(t, m.first, g.first, "%s: record %s's first_synced_at", where, ext)
				switch {
				case written[ext] || gone[ext]:
					stamp := g.last
					if gone[ext] {
						require.Equal(t, m.last, g.last, "%s: deleted record %s's last_synced_at", where, ext)
						stamp = *g.deletedAt
					}
					require.True(t, stamp.After(m.last), "%s: record %s written", where, ext)
					if at.IsZero() {
						at = stamp
					}
					require.Equal(t, at, stamp, "%s: record %s written by this sync", where, ext)
				default:
					require.Equal(t, m.last, g.last, "%s: record %s not written", where, ext)
					if m.deleted {
						require.Equal(t, *m.deletedAt, *g.deletedAt, "%s: record %s still deleted as it was", where, ext)
					}
				}
				m.last, m.deletedAt = g.last, g.deletedAt
			}
		}
	}
}

// modelRecord is a record as the model (and the table) holds it.
type modelRecord struct {
	v           string
	deleted     bool
	rowID       int64
	first, last time.Time
	deletedAt   *time.Time
}

// expect applies a sync of pages (each a chunk) to model and returns the
// counts it should report (created, updated, unchanged, deleted), the ids
// it writes and those it marks deleted.
func expect(model map[string]*modelRecord, pages [][]string, full bool) (counts []int, written, gone map[string]bool) {
	// What each chunk holds of each id: the last of its records.
	seen := map[string][]string{}
	var order []string
	for _, page := range pages {
		last := map[string]string{}
		var ids []string
		for _, rec := range page {
			var ext, v string
			_, _ = fmt.Sscanf(strings.NewReplacer(`{"id":"`, "", `","v":"`, " ", `"}`, "").Replace(rec), "%s %s", &ext, &v)
			if _, ok := last[ext]; !ok {
				ids = append(ids, ext)
			}
			last[ext] = v
		}
		for _, ext := range ids {
			if _, ok := seen[ext]; !ok {
				order = append(order, ext)
			}
			seen[ext] = append(seen[ext], last[ext])
		}
	}
	counts = make([]int, 4)
	written, gone = map[string]bool{}, map[string]bool{}
	for _, ext := range order {
		versions := seen[ext]
		m := model[ext]
		switch {
		case m == nil:
			counts[0]++
			m = &modelRecord{}
			model[ext] = m
			written[ext] = true
		case m.deleted || slices.ContainsFunc(versions, func(v string) bool { return v != m.v }):
			counts[1]++
			written[ext] = true
		default:
			counts[2]++
		}
		m.v, m.deleted = versions[len(versions)-1], false
	}
	if full {
		for ext, m := range model {
			if _, ok := seen[ext]; !ok && !m.deleted {
				counts[3]++
				m.deleted = true
				gone[ext] = true
			}
		}
	}
	return counts, written, gone
}
