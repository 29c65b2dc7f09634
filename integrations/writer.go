package integrations

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
)

// writer writes a sync's records chunk by chunk as pages arrive, all in
// one transaction, which finish commits once the last page has arrived: a
// sync that fails or is cancelled midway rolls back and changes nothing.
//
// Each chunk's ids and hashes are looked up in one statement (probeSQL),
// which answers, for each record already stored, its row id and how it
// compares. New records are then COPYed into integration_records, changed
// or deleted ones upserted, and unchanged ones not written at all: their row
// ids go to seen, a bitmap in memory (~130 KB a million records), which the
// counts and a full sync's deletion pass need. Records written by this sync carry its timestamp in
// last_synced_at, which tells a record seen again later in the same sync
// from one seen for the first time.
type writer struct {
	tx            pgx.Tx
	integrationID int64
	full          bool
	now           time.Time // first_synced_at and last_synced_at of what this sync writes
	liveAtStart   int       // records not deleted when the sync began (full syncs)
	// fresh: the integration had no record (live or deleted) when the sync
	// began, so the ids of a novel chunk are in no row yet.
	fresh bool
	// seen holds the row ids of the records counted unchanged: stored, live,
	// and not written by this sync.
	seen *idSet

	probed                               []probed // the chunk's lookup, reused
	created, updated, revived, unchanged int
}

// probed is what probeSQL found of a chunk's record.
type probed struct {
	found, same, deleted, again bool
	id                          int64
}

// openWriter prepares tx: settings, and a lock that keeps the integration
// (whose records have no foreign key, see migration 00007) from being
// deleted while its records go in.
func openWriter(ctx context.Context, tx pgx.Tx, integrationID int64, full bool) (*writer, error) {
	w := &writer{tx: tx, integrationID: integrationID, full: full, now: time.Now().UTC().Truncate(time.Microsecond), seen: newIDSet()}
	// jit: a chunk's statements can cost more than jit_above_cost (a
	// lookup costs ~6 a record: from ~17,000 records on) and would be
	// compiled anew each time (~90 ms a chunk). The transaction idles
	// between chunks while a slow or rate-limited provider is waited for: a
	// server-wide idle_in_transaction_session_timeout must not end it.
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off; SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
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

// probeSQL looks up a chunk's records ($2 the ids, $3 their hashes) in
// integration $1 and answers, for each one stored, its place in the chunk
// (from 1), its row id, whether its hash is the same, whether it is
// deleted, and whether this sync ($4 its timestamp) wrote it.
//
// Each record probes the unique index for its stored version: the LATERAL
// … LIMIT 1 keeps that plan whatever the statistics of integration_records
// say (with stale ones the planner once read all of an integration's
// records for every chunk; a plain external_id = ANY($2) can do the same,
// scanning the integration's records with the array as a filter).
const probeSQL = `SELECT s.i, r.id, r.payload_hash = s.hash, r.deleted_at IS NOT NULL, r.last_synced_at = $4
	FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS s(external_id, hash, i)
	CROSS JOIN LATERAL (SELECT id, payload_hash, deleted_at, last_synced_at FROM integration_records r
		WHERE r.integration_id = $1 AND r.external_id = s.external_id LIMIT 1) r`

// upsertSQL writes records that are stored ($3 ids, $4 payloads, $5
// hashes) in integration $1 with this sync's timestamp $2, alive. The
// conflict's arbiter is the unique index, whatever the statistics: one
// probe per record.
const upsertSQL = `INSERT INTO integration_records AS r (integration_id, external_id, payload, payload_hash, first_synced_at, last_synced_at)
	SELECT $1, s.external_id, s.payload, s.hash, $2, $2 FROM unnest($3::text[], $4::jsonb[], $5::text[]) AS s(external_id, payload, hash)
	ON CONFLICT (integration_id, external_id) DO UPDATE SET payload = EXCLUDED.payload, payload_hash = EXCLUDED.payload_hash,
		last_synced_at = EXCLUDED.last_synced_at, deleted_at = NULL`

// write writes one chunk.
func (w *writer) write(ctx context.Context, c *chunk) error {
	if w.fresh && c.novel {
		return w.copyNew(ctx, c, nil)
	}
	if err := w.probe(ctx, c); err != nil {
		return err
	}
	// Of the records not yet seen by this sync, count those created,
	// updated, revived (updated from deleted) and unchanged; an unchanged
	// record seen again changed is updated instead.
	var news []int
	var ids []string
	var payloads [][]byte
	var hashes []string
	for i, p := range w.probed {
		switch {
		case !p.found:
			news = append(news, i)
			continue
		case p.again && p.same:
			continue // written by this sync, as it is now
		case p.again: // written by this sync, changed since: counted then
		case p.same && !p.deleted:
			if w.seen.add(p.id) {
				w.unchanged++
			}
			continue
		default:
			if w.seen.remove(p.id) {
				w.unchanged--
			}
			w.updated++
			if p.deleted {
				w.revived++
			}
		}
		ids, payloads, hashes = append(ids, c.ids[i]), append(payloads, c.payloads[i]), append(hashes, c.hashes[i])
	}
	if len(news) > 0 {
		if err := w.copyNew(ctx, c, news); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		if _, err := w.tx.Exec(ctx, upsertSQL, w.integrationID, w.now, ids, payloads, hashes); err != nil {
			return fmt.Errorf("%s: write records: %w", c.where(), err)
		}
	}
	return nil
}

// probe fills w.probed with what probeSQL finds of c's records.
func (w *writer) probe(ctx context.Context, c *chunk) error {
	w.probed = slices.Grow(w.probed[:0], c.len())[:c.len()]
	clear(w.probed)
	rows, err := w.tx.Query(ctx, probeSQL, w.integrationID, c.ids, c.hashes, w.now)
	if err != nil {
		return fmt.Errorf("%s: look up records: %w", c.where(), err)
	}
	var i int64
	var p probed
	_, err = pgx.ForEachRow(rows, []any{&i, &p.id, &p.same, &p.deleted, &p.again}, func() error {
		if i < 1 || i > int64(c.len()) {
			return fmt.Errorf("record %d of %d", i, c.len())
		}
		p.found = true
		w.probed[i-1] = p
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: look up records: %w", c.where(), err)
	}
	return nil
}

// copyNew writes records of c that are certainly new straight into
// integration_records (those at the indexes only, if any): a chunk of a
// first sync that is novel (see fresh and chunk.novel), or the records no
// probe found.
func (w *writer) copyNew(ctx context.Context, c *chunk, only []int) error {
	n, err := w.tx.CopyFrom(ctx, pgx.Identifier{"integration_records"},
		[]string{"external_id", "payload", "payload_hash", "integration_id", "first_synced_at", "last_synced_at"},
		&chunkSource{c: c, only: only, extra: []any{w.integrationID, w.now, w.now}})
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
	// The live records this sync did not write, less those it found
	// unchanged: each is read once, whichever plan reads them.
	rows, err := w.tx.Query(ctx, `SELECT id FROM integration_records
		WHERE integration_id = $1 AND deleted_at IS NULL AND last_synced_at <> $2`, w.integrationID, w.now)
	if err != nil {
		return 0, fmt.Errorf("find deleted records: %w", err)
	}
	var gone []int64
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		if !w.seen.has(id) {
			gone = append(gone, id)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("find deleted records: %w", err)
	}
	if len(gone) == 0 {
		return 0, nil
	}
	// Through the primary key, or with the array hashed as a filter: linear
	// either way.
	tag, err := w.tx.Exec(ctx, `UPDATE integration_records SET deleted_at = $2 WHERE id = ANY($1)`, gone, w.now)
	if err != nil {
		return 0, fmt.Errorf("mark deleted records: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
