// Package advisorylock names every two-key PostgreSQL advisory lock the
// daemon takes (pg_advisory_lock(int4, int4) and its variants), so that no
// two uses share a key space: a lock is (Class, id of the row it guards),
// and two classes with one value would make a sync wait on, or be skipped
// because of, an unrelated schedule's start.
//
// One-key locks (pg_advisory_lock(int8)), used by the migrator, live in a
// key space of their own in PostgreSQL and cannot collide with these.
package advisorylock

// Class is the first key of a two-key advisory lock.
type Class int32

const (
	// IntegrationSync is held by a session for a whole sync of one
	// integration; the second key is integrations.id. Its value is the one
	// wave 1 used, so that replicas of old and new versions still exclude
	// each other during a rolling upgrade.
	IntegrationSync Class = 0x61746973 // "atis"

	// ScheduleOverlap is held by a transaction while a run start checks
	// whether another run of its schedule is being worked (overlap_policy
	// skip or queue_one); the second key is scheduled_jobs.id.
	ScheduleOverlap Class = 0x61746f76 // "atov"
)

// Key returns the second key for a row id. Ids past 2^31 wrap, so two rows
// may share a key; that only makes them take turns.
func Key(id int64) int32 { return int32(id) }
