package integrations

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
)

// writer writes a sync's records chunk by chunk as pages arrive, all in
// one transaction, which finish commits once the last page has arrived: a
// sync that fails or is cancelled midway rolls back and changes nothing.
//
// Each chunk is COPYed into a temporary table and written with one
// statement: new records by a plain INSERT, changed or deleted ones by an
// upsert, unchanged ones not at all (their ids go to a second temporary
// table, which a full sync's deletion pass and the counts need). Records
// written by this sync carry its timestamp in last_synced_at, which tells a
// record seen again later in the same sync from one seen for the first time.
type writer struct {
	tx            pgx.Tx
	integrationID int64
	full          bool
	now           time.Time // first_synced_at and last_synced_at of what this sync writes
	liveAtStart   int       // records not deleted when the sync began (full syncs)
	// fresh: the integration had no record (live or deleted) when the sync
	// began, so the ids of a novel chunk are in no row yet.
	fresh  bool
	staged bool // atis_sync_chunk holds a chunk

	created, updated, revived, unchanged int
}

// openWriter prepares tx: settings, the temporary tables, and a lock that
// keeps the integration (whose records have no foreign key, see migration
// 00007) from being deleted while its records go in.
func openWriter(ctx context.Context, tx pgx.Tx, integrationID int64, full bool) (*writer, error) {
	w := &writer{tx: tx, integrationID: integrationID, full: full, now: time.Now().UTC().Truncate(time.Microsecond)}
	// jit: each chunk's statement costs more than jit_above_cost and was
	// compiled anew every time (~90 ms a chunk). The transaction idles
	// between chunks while a slow or rate-limited provider is waited for: a
	// server-wide idle_in_transaction_session_timeout must not end it.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'; SET LOCAL jit = off; SET LOCAL idle_in_transaction_session_timeout = 0;
		CREATE TEMP TABLE atis_sync_chunk (external_id text NOT NULL, payload jsonb NOT NULL, hash text NOT NULL) ON COMMIT DROP;
		CREATE TEMP TABLE atis_sync_unchanged (external_id text PRIMARY KEY) ON COMMIT DROP`); err != nil {
		return nil, fmt.Errorf("prepare the sync's transaction: %w", err)
	}
	var alive bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM integrations WHERE id = $1 FOR KEY SHARE)", integrationID).Scan(&alive); err != nil {
		return nil, fmt.Errorf("lock integration %d: %w", integrationID, err)
	}
	if !alive {
		return nil, fmt.Errorf("%w: integration %d was deleted during the sync", provider.ErrPermanent, integrationID)
	}
	var hasRecords bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM integration_records WHERE integration_id = $1)`, integrationID).Scan(&hasRecords); err != nil {
		return nil, fmt.Errorf("look for records: %w", err)
	}
	w.fresh = !hasRecords
	if full && hasRecords {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM integration_records WHERE integration_id = $1 AND deleted_at IS NULL`,
			integrationID).Scan(&w.liveAtStart); err != nil {
			return nil, fmt.Errorf("count live records: %w", err)
		}
	}
	return w, nil
}

// writeChunkSQL writes the staged chunk ($1 the integration, $2 the sync's
// timestamp) and counts, of the records not yet seen by this sync, those
// created, updated, revived (updated from deleted) and unchanged; the last
// count is net of unchanged records this chunk changes.
//
// Each staged record probes the unique index for its stored version: the
// LATERAL … LIMIT 1 keeps that plan whatever the statistics of
// integration_records say (with stale ones the planner once read all of
// an integration's records for every chunk).
const writeChunkSQL = `WITH cmp AS (
		SELECT s.external_id, s.payload, s.hash, r.id IS NOT NULL AS existed, r.last_synced_at = $2 AS again,
			r.payload_hash IS DISTINCT FROM s.hash OR r.deleted_at IS NOT NULL AS dirty, r.deleted_at IS NOT NULL AS was_deleted
		FROM atis_sync_chunk s LEFT JOIN LATERAL (
			SELECT id, payload_hash, deleted_at, last_synced_at FROM integration_records r
			WHERE r.integration_id = $1 AND r.external_id = s.external_id LIMIT 1) r ON true
	), created AS (
		INSERT INTO integration_records (integration_id, external_id, payload, payload_hash, first_synced_at, last_synced_at)
		SELECT $1, external_id, payload, hash, $2, $2 FROM cmp WHERE NOT existed
		RETURNING 1
	), changed AS (
		INSERT INTO integration_records AS r (integration_id, external_id, payload, payload_hash, first_synced_at, last_synced_at)
		SELECT $1, external_id, payload, hash, $2, $2 FROM cmp WHERE existed AND dirty
		ON CONFLICT (integration_id, external_id) DO UPDATE SET payload = EXCLUDED.payload, payload_hash = EXCLUDED.payload_hash,
			last_synced_at = EXCLUDED.last_synced_at, deleted_at = NULL
		RETURNING 1
	), no_longer_unchanged AS (
		DELETE FROM atis_sync_unchanged u USING cmp WHERE u.external_id = cmp.external_id AND cmp.existed AND cmp.dirty
		RETURNING 1
	), unchanged AS (
		INSERT INTO atis_sync_unchanged (external_id) SELECT external_id FROM cmp WHERE existed AND NOT dirty AND NOT again
		ON CONFLICT DO NOTHING
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM created),
		(SELECT count(*) FROM cmp WHERE existed AND dirty AND NOT again),
		(SELECT count(*) FROM cmp WHERE existed AND was_deleted AND NOT again),
		(SELECT count(*) FROM unchanged) - (SELECT count(*) FROM no_longer_unchanged)`

// write writes one chunk.
func (w *writer) write(ctx context.Context, c *chunk) error {
	if w.fresh && c.novel {
		return w.copyNew(ctx, c)
	}
	if w.staged {
		// In place: the table was created in this transaction.
		if _, err := w.tx.Exec(ctx, "TRUNCATE atis_sync_chunk"); err != nil {
			return fmt.Errorf("%s: empty the stage: %w", c.where(), err)
		}
	}
	w.staged = true
	if _, err := w.tx.CopyFrom(ctx, pgx.Identifier{"atis_sync_chunk"}, []string{"external_id", "payload", "hash"},
		&chunkSource{c: c}); err != nil {
		return fmt.Errorf("%s: stage records: %w", c.where(), err)
	}
	var created, updated, revived, unchanged int
	if err := w.tx.QueryRow(ctx, writeChunkSQL, w.integrationID, w.now).Scan(&created, &updated, &revived, &unchanged); err != nil {
		return fmt.Errorf("%s: write records: %w", c.where(), err)
	}
	w.created, w.updated, w.revived, w.unchanged = w.created+created, w.updated+updated, w.revived+revived, w.unchanged+unchanged
	return nil
}

// copyNew writes a chunk of records that are certainly new (see fresh and
// chunk.novel) straight into integration_records: no stage, no probe.
func (w *writer) copyNew(ctx context.Context, c *chunk) error {
	n, err := w.tx.CopyFrom(ctx, pgx.Identifier{"integration_records"},
		[]string{"external_id", "payload", "payload_hash", "integration_id", "first_synced_at", "last_synced_at"},
		&chunkSource{c: c, extra: []any{w.integrationID, w.now, w.now}})
	if err != nil {
		return fmt.Errorf("%s: write new records: %w", c.where(), err)
	}
	w.created += int(n)
	return nil
}

// distinct is how many records (ids) the sync has seen.
func (w *writer) distinct() int { return w.created + w.updated + w.unchanged }

// markDeleted marks the records a full sync did not see as deleted: those
// live when it began that it neither wrote nor found unchanged.
func (w *writer) markDeleted(ctx context.Context) (int, error) {
	// Every record live at the start that was seen is either updated (not
	// revived: those were deleted) or unchanged.
	seenLive := w.updated - w.revived + w.unchanged
	switch {
	case w.distinct() == 0 && w.liveAtStart > 0:
		return 0, fmt.Errorf("the full sync returned no records: refusing to mark all %d records deleted "+
			"(check records_path, or delete them by hand if the provider really has none)", w.liveAtStart)
	case seenLive == w.liveAtStart:
		return 0, nil
	}
	// Statistics let the planner choose between probing the unchanged ids'
	// index and hashing them; either is linear.
	if _, err := w.tx.Exec(ctx, "ANALYZE atis_sync_unchanged"); err != nil {
		return 0, fmt.Errorf("analyze the unchanged records: %w", err)
	}
	tag, err := w.tx.Exec(ctx, `UPDATE integration_records r SET deleted_at = $2
		WHERE r.integration_id = $1 AND r.deleted_at IS NULL AND r.last_synced_at <> $2
		  AND NOT EXISTS (SELECT 1 FROM atis_sync_unchanged u WHERE u.external_id = r.external_id)`, w.integrationID, w.now)
	if err != nil {
		return 0, fmt.Errorf("mark deleted records: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
