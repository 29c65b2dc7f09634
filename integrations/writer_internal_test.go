package integrations

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// TestStaleStatisticsDoNotReadTheIntegration: a resync of an integration
// that has 20,000 records which integration_records' statistics do not
// know of (analyzed when it held 50 records of another integration, and
// autovacuum not yet come by) handles each record of a 200-record chunk a
// few times, never each of the integration's records for each chunk: the
// plan a join of the chunk with the integration's records (or an
// external_id = ANY of the chunk's ids) takes on such statistics. Eight
// chunks, past the point where a prepared statement may switch to its
// generic plan; then the deletion pass, linear in the integration's records.
func TestStaleStatisticsDoNotReadTheIntegration(t *testing.T) {
	t.Parallel()
	const stored, n = 20_000, 200
	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config, credentials, is_enabled)
		VALUES ('stale', 'lms', 'http_json', '{}', '{}', true) RETURNING id`).Scan(&id))
	for _, stmt := range []string{
		`ALTER TABLE integration_records SET (autovacuum_enabled = false)`,
		`INSERT INTO integration_records (integration_id, external_id, payload, payload_hash) SELECT $1 + 1, g::text, '{}', '' FROM generate_series(1, 50) g`,
		`ANALYZE integration_records`,
		`INSERT INTO integration_records (integration_id, external_id, payload, payload_hash)
			SELECT $1, g::text, p::jsonb, md5(p) FROM generate_series(1, 20000) g, format('{"v":%s}', g) p`,
	} {
		var args []any
		if strings.Contains(stmt, "$1") {
			args = append(args, id)
		}
		_, err := pool.Exec(ctx, stmt, args...)
		require.NoError(t, err, stmt)
	}

	explained := dbtest.NewExplained(t, url)
	tx, err := explained.Conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	w, err := openWriter(ctx, tx, id, true)
	require.NoError(t, err)
	require.False(t, w.fresh)
	// A statement's plan comes when its portal closes, at the next one's
	// start: each step is followed by this.
	settle := func() {
		_, err := tx.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
	}
	settle()
	explained.Work(t) // openWriter's count of the live records reads them once, by design
	for k := range 8 {
		// Records spread over the integration's ids, one in ten changed,
		// one in twenty new.
		c := &chunk{firstPage: k + 1, lastPage: k + 1}
		for i := range n {
			g := 1 + k + i*(stored/n)
			payload := fmt.Sprintf(`{"v":%d}`, g)
			switch {
			case i%20 == 0:
				g += stored
			case i%10 == 0:
				payload = fmt.Sprintf(`{"v":%d,"changed":true}`, g)
			}
			c.ids, c.payloads, c.hashes = append(c.ids, fmt.Sprint(g)), append(c.payloads, []byte(payload)), append(c.hashes, payloadHash([]byte(payload)))
		}
		require.NoError(t, w.write(ctx, c))
		settle()
		work := explained.Work(t)
		assert.LessOrEqual(t, work, int64(20*n), "chunk %d of %d records handled %d rows with %d records stored", k+1, n, work, stored)
	}
	require.Equal(t, []int{8 * n / 20, 8 * n / 20, 0, 8 * n * 9 / 10}, []int{w.created, w.updated, w.revived, w.unchanged})

	// The deletion pass reads the integration's live records once, and
	// marks each of the others once.
	deleted, err := w.markDeleted(ctx)
	require.NoError(t, err)
	settle()
	require.Equal(t, stored-8*n*19/20, deleted)
	work := explained.Work(t)
	assert.LessOrEqual(t, work, int64(3*stored), "the deletion pass handled %d rows with %d records stored", work, stored)
}
