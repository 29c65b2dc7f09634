package integrations

import (
	"crypto/md5" //nolint:gosec // change detection, not security
	"encoding/hex"
	"fmt"
	"hash/maphash"

	"github.com/atis-edu/atis-scheduler/integrations/provider"
)

// Defaults of the Engine's chunking.
const (
	// DefaultChunkRecords is how many records the engine writes at a time.
	DefaultChunkRecords = 10_000
	// DefaultChunkBytes bounds a chunk's payload bytes (a chunk ends at the
	// first page that reaches it): with records of a few hundred bytes the
	// record count ends a chunk first, and a chunk stays within
	// PostgreSQL's default temp_buffers (8 MB).
	DefaultChunkBytes = 4 << 20
)

// chunk is records ready to COPY: each external id once (the last record
// of an id wins, as it would have in the provider's order), with the hash of
// its payload.
type chunk struct {
	ids      []string
	payloads [][]byte
	hashes   []string
	bytes    int
	// novel: no id of the chunk was in an earlier chunk of the sync.
	novel bool
	// firstPage and lastPage are the provider's pages the records came from.
	firstPage, lastPage int
}

func (c *chunk) len() int { return len(c.ids) }

// where names the chunk's pages for an admin, as the fetch names a page:
// "page 3", "pages 3-7".
func (c *chunk) where() string {
	if c.firstPage == c.lastPage {
		return fmt.Sprintf("page %d", c.firstPage)
	}
	return fmt.Sprintf("pages %d-%d", c.firstPage, c.lastPage)
}

// batcher turns pages into chunks and keeps the fetch's tallies. It is used
// by the fetching goroutine only.
type batcher struct {
	maxRecords, maxBytes int
	cur                  *chunk
	at                   map[string]int // id -> index in cur
	earlier              *idFilter      // ids of the chunks before cur; nil unless a first sync

	pages, processed, failed int
	bytes                    int64
	invalid                  []string
}

// newBatcher returns a batcher; only a first sync (fresh: the integration
// had no record) marks novel chunks, so only it pays for the filter.
func newBatcher(maxRecords, maxBytes int, fresh bool) *batcher {
	b := &batcher{maxRecords: maxRecords, maxBytes: maxBytes, at: make(map[string]int, maxRecords)}
	if fresh {
		b.earlier = newIDFilter()
	}
	return b
}

// add takes a page's records (and counts its invalid items, keeping a
// sample, cut of secrets) and returns the chunk they completed, if any.
func (b *batcher) add(p provider.Page, cut func(string) string) *chunk {
	b.pages++
	b.bytes += p.Bytes
	b.processed += len(p.Records) + len(p.Invalid)
	b.failed += len(p.Invalid)
	for _, s := range p.Invalid {
		if len(b.invalid) < 10 {
			b.invalid = append(b.invalid, cut(fmt.Sprintf("page %d, %s", p.Number, s)))
		}
	}
	if b.cur == nil {
		b.cur = &chunk{novel: b.earlier != nil, firstPage: p.Number}
	}
	c := b.cur
	c.lastPage = p.Number
	for _, r := range p.Records {
		// The hash of the provider's bytes, here, overlapped with fetching
		// and writing. A provider that re-formats an unchanged record costs
		// a needless update, never a missed change.
		hash := payloadHash(r.Payload)
		if i, seen := b.at[r.ExternalID]; seen {
			c.bytes += len(r.Payload) - len(c.payloads[i])
			c.payloads[i], c.hashes[i] = r.Payload, hash
			continue
		}
		if b.earlier != nil && b.earlier.add(r.ExternalID) {
			c.novel = false
		}
		b.at[r.ExternalID] = len(c.ids)
		c.ids = append(c.ids, r.ExternalID)
		c.payloads = append(c.payloads, r.Payload)
		c.hashes = append(c.hashes, hash)
		c.bytes += len(r.Payload)
	}
	if c.len() >= b.maxRecords || c.bytes >= b.maxBytes {
		return b.flush()
	}
	return nil
}

// payloadHash is the hash integration_records.payload_hash keeps of a
// record's payload: md5 in hex, as PostgreSQL's md5().
func payloadHash(payload []byte) string {
	sum := md5.Sum(payload) //nolint:gosec // change detection
	return hex.EncodeToString(sum[:])
}

// flush returns the chunk begun, nil when it holds no record.
func (b *batcher) flush() *chunk {
	c := b.cur
	b.cur = nil
	clear(b.at)
	if c == nil || c.len() == 0 {
		return nil
	}
	return c
}

// chunkSource is a chunk as pgx.CopyFromSource: id, payload and hash of
// each record (of those at the indexes only, if any), then the extra values.
type chunkSource struct {
	c     *chunk
	only  []int
	extra []any
	i     int
	vals  []any
}

func (s *chunkSource) Next() bool {
	s.i++
	if s.only != nil {
		return s.i <= len(s.only)
	}
	return s.i <= s.c.len()
}

func (s *chunkSource) Values() ([]any, error) {
	i := s.i - 1
	if s.only != nil {
		i = s.only[i]
	}
	s.vals = append(append(s.vals[:0], s.c.ids[i], s.c.payloads[i], s.c.hashes[i]), s.extra...)
	return s.vals, nil
}

func (s *chunkSource) Err() error { return nil }

// idFilter is a blocked Bloom filter of the external ids a sync has put in
// chunks: "no" is certain (the id is in no earlier chunk), "maybe" may be
// wrong. Its size is fixed (8 MiB): past a few million ids it answers
// "maybe" ever more often, which costs speed (the chunk takes the probing
// path), never correctness.
type idFilter struct {
	seed   maphash.Seed
	blocks [][8]uint64 // 512 bits each: one cache line per id
}

const idFilterBlocks = 1 << 17

func newIDFilter() *idFilter {
	return &idFilter{seed: maphash.MakeSeed(), blocks: make([][8]uint64, idFilterBlocks)}
}

// add adds id and reports whether it may have been added before.
func (f *idFilter) add(id string) (maybeSeen bool) {
	h := maphash.String(f.seed, id)
	b := &f.blocks[h&(idFilterBlocks-1)]
	g := (h >> 17) * 0x9e3779b97f4a7c15
	maybeSeen = true
	for range 6 { // six bits of the block, 9 bits of g each
		bit := g & 511
		g >>= 9
		w, m := &b[bit>>6], uint64(1)<<(bit&63)
		if *w&m == 0 {
			maybeSeen = false
			*w |= m
		}
	}
	return maybeSeen
}
