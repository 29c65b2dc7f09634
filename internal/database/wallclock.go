package database

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// wallClockCodec reads and writes TIMESTAMP (without time zone) values as
// wall-clock times in loc, the zone in which the web app writes them: a
// value read is that wall clock in loc (10:00 in Asia/Baku is 06:00 UTC), a
// time.Time written is first turned into loc's wall clock, whatever its own
// location.
type wallClockCodec struct {
	pgtype.TimestampCodec
	loc *time.Location
}

func newWallClockCodec(loc *time.Location) *wallClockCodec {
	return &wallClockCodec{TimestampCodec: pgtype.TimestampCodec{ScanLocation: loc}, loc: loc}
}

// PlanEncode implements pgtype.Codec.
func (c *wallClockCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	next := c.TimestampCodec.PlanEncode(m, oid, format, value)
	if next == nil {
		return nil
	}
	return inZone{next: next, loc: c.loc}
}

type inZone struct {
	next pgtype.EncodePlan
	loc  *time.Location
}

func (p inZone) Encode(value any, buf []byte) ([]byte, error) {
	ts, err := value.(pgtype.TimestampValuer).TimestampValue()
	if err != nil {
		return nil, err
	}
	if ts.Valid && ts.InfinityModifier == pgtype.Finite {
		ts.Time = ts.Time.In(p.loc)
	}
	return p.next.Encode(ts, buf)
}

// registerWallClock makes m read and write timestamp and timestamp[] in loc.
func registerWallClock(m *pgtype.Map, loc *time.Location) {
	ts := &pgtype.Type{Name: "timestamp", OID: pgtype.TimestampOID, Codec: newWallClockCodec(loc)}
	m.RegisterType(ts)
	m.RegisterType(&pgtype.Type{Name: "_timestamp", OID: pgtype.TimestampArrayOID, Codec: &pgtype.ArrayCodec{ElementType: ts}})
}
