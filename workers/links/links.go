// Package links is the `linked_record_cleanup` job class: it finds
// polymorphic links (linked_table + linked_id, entity_type + entity_id, …)
// whose record no longer exists, clears them where rows are mutable, and
// counts them where logs are append-only.
package links

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Source is a table holding polymorphic links.
type Source struct {
	Name           string // as reported: schema-qualified outside public
	Schema, Table  string
	TypeCol, IDCol string
	IDType         string // uuid or bigint: the type a target's key must have
	// Mutable sources get dead links cleared (with an audit row); the others
	// are append-only logs whose dead links are only counted.
	Mutable bool
}

// Sources are the link columns of the seed schema.
var Sources = []Source{
	{Name: "platform.global_settings", Schema: "platform", Table: "global_settings", TypeCol: "linked_table", IDCol: "linked_id", IDType: "uuid", Mutable: true},
	{Name: "platform.audit_logs", Schema: "platform", Table: "audit_logs", TypeCol: "linked_table", IDCol: "linked_id", IDType: "uuid"},
	{Name: "platform.activity_logs", Schema: "platform", Table: "activity_logs", TypeCol: "linked_table", IDCol: "linked_id", IDType: "uuid"},
	{Name: "activity_logs", Schema: "public", Table: "activity_logs", TypeCol: "entity_type", IDCol: "entity_id", IDType: "bigint"},
	{Name: "audit_logs", Schema: "public", Table: "audit_logs", TypeCol: "auditable_type", IDCol: "auditable_id", IDType: "bigint"},
}

// Cleaner clears the polymorphic links that point at rows gone, and
// counts the dead links of append-only logs.
type Cleaner struct {
	Pool *pgxpool.Pool
}

// Result is a run's job_logs.result: by source table, then by linked_table
// value, how many links were cleared or found dead, and the values that name
// no table or a table whose key cannot match.
type Result struct {
	Cleared      map[string]map[string]int64  `json:"cleared"`
	Orphans      map[string]map[string]int64  `json:"orphans"`
	Unresolved   map[string]map[string]int64  `json:"unresolved,omitempty"`
	Incompatible map[string]map[string]string `json:"incompatible,omitempty"`
}

// target is a table a link value resolved to, with its primary key.
type target struct {
	schema, table, key, keyType string
}

// Clean runs one pass over every source.
func (c Cleaner) Clean(ctx context.Context) (Result, error) {
	res := Result{Cleared: map[string]map[string]int64{}, Orphans: map[string]map[string]int64{},
		Unresolved: map[string]map[string]int64{}, Incompatible: map[string]map[string]string{}}
	catalogue, err := loadCatalogue(ctx, c.Pool)
	if err != nil {
		return res, err
	}
	for _, s := range Sources {
		if _, ok := catalogue[s.Schema+"."+s.Table]; !ok {
			continue // the source table itself is absent in this database
		}
		values, err := c.linkValues(ctx, s)
		if err != nil {
			return res, fmt.Errorf("read links of %s: %w", s.Name, err)
		}
		for value, n := range values {
			t, ok := resolve(catalogue, value)
			switch {
			case !ok:
				add(res.Unresolved, s.Name, value, n)
				continue
			case t.key == "":
				note(res.Incompatible, s.Name, value, "the table has no single-column primary key")
				continue
			case !compatible(s.IDType, t.keyType):
				note(res.Incompatible, s.Name, value, fmt.Sprintf("%s.%s is %s, the link holds %s", t.table, t.key, t.keyType, s.IDType))
				continue
			}
			if s.Mutable {
				n, err := c.clear(ctx, s, value, t)
				if err != nil {
					return res, fmt.Errorf("clear dead links of %s to %s: %w", s.Name, value, err)
				}
				if n > 0 {
					add(res.Cleared, s.Name, value, n)
				}
				continue
			}
			n, err := c.countDead(ctx, s, value, t)
			if err != nil {
				return res, fmt.Errorf("count dead links of %s to %s: %w", s.Name, value, err)
			}
			if n > 0 {
				add(res.Orphans, s.Name, value, n)
			}
		}
	}
	return res, nil
}

// loadCatalogue maps "schema.table" of every ordinary table to its target,
// with its single-column primary key if it has one.
func loadCatalogue(ctx context.Context, pool *pgxpool.Pool) (map[string]target, error) {
	rows, err := pool.Query(ctx, `SELECT n.nspname, c.relname, coalesce(k.attname, ''), coalesce(format_type(k.atttypid, k.atttypmod), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN LATERAL (
			SELECT a.attname, a.atttypid, a.atttypmod FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
			WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1) k ON true
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	defer rows.Close()
	out := map[string]target{}
	for rows.Next() {
		var t target
		if err := rows.Scan(&t.schema, &t.table, &t.key, &t.keyType); err != nil {
			return nil, err
		}
		out[t.schema+"."+t.table] = t
	}
	return out, rows.Err()
}

// resolve finds the table a link value names: "schema.table", or a table
// of the public schema. Nothing else is ever queried.
func resolve(catalogue map[string]target, value string) (target, bool) {
	if strings.Contains(value, ".") {
		t, ok := catalogue[value]
		return t, ok
	}
	t, ok := catalogue["public."+value]
	return t, ok
}

func compatible(idType, keyType string) bool {
	switch idType {
	case "uuid":
		return keyType == "uuid"
	default:
		return keyType == "bigint" || keyType == "integer" || keyType == "smallint"
	}
}

func (c Cleaner) linkValues(ctx context.Context, s Source) (map[string]int64, error) {
	rows, err := c.Pool.Query(ctx, fmt.Sprintf(`SELECT %[2]s, count(*) FROM %[1]s WHERE %[2]s IS NOT NULL AND %[3]s IS NOT NULL GROUP BY 1`,
		pgx.Identifier{s.Schema, s.Table}.Sanitize(), pgx.Identifier{s.TypeCol}.Sanitize(), pgx.Identifier{s.IDCol}.Sanitize()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var v string
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, err
		}
		out[v] = n
	}
	return out, rows.Err()
}

// deadLinks is the condition, on source alias s, that a link to value
// ($1) points at no row of the target; every identifier is quoted.
func deadLinks(s Source, t target) string {
	return fmt.Sprintf(`s.%[1]s = $1 AND s.%[2]s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[3]s x WHERE x.%[4]s = s.%[2]s)`,
		pgx.Identifier{s.TypeCol}.Sanitize(), pgx.Identifier{s.IDCol}.Sanitize(),
		pgx.Identifier{t.schema, t.table}.Sanitize(), pgx.Identifier{t.key}.Sanitize())
}

func (c Cleaner) countDead(ctx context.Context, s Source, value string, t target) (int64, error) {
	var n int64
	err := c.Pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{s.Schema, s.Table}.Sanitize()+` s WHERE `+deadLinks(s, t), value).Scan(&n)
	return n, err
}

// clear sets dead links of a mutable source to NULL and writes, in the same
// statement, one platform.audit_logs row per cleared link with the link it
// had.
func (c Cleaner) clear(ctx context.Context, s Source, value string, t target) (int64, error) {
	rel := pgx.Identifier{s.Schema, s.Table}.Sanitize()
	typeCol, idCol := pgx.Identifier{s.TypeCol}.Sanitize(), pgx.Identifier{s.IDCol}.Sanitize()
	tag, err := c.Pool.Exec(ctx, `WITH dead AS (
			SELECT s.id, s.`+idCol+` AS gone FROM `+rel+` s WHERE `+deadLinks(s, t)+` FOR UPDATE
		), cleared AS (
			UPDATE `+rel+` g SET `+typeCol+` = NULL, `+idCol+` = NULL, updated_at = now()
			FROM dead WHERE g.id = dead.id
			RETURNING g.id, dead.gone
		)
		INSERT INTO platform.audit_logs (action, resource, resource_id, previous_state, new_state, notes)
		SELECT 'update', $2, id, jsonb_build_object('linked_table', $1::text, 'linked_id', gone),
			jsonb_build_object('linked_table', NULL, 'linked_id', NULL),
			'linked record no longer exists; link cleared by atis-scheduler linked_record_cleanup'
		FROM cleared`, value, s.Table)
	return tag.RowsAffected(), err
}

func add(m map[string]map[string]int64, source, value string, n int64) {
	if m[source] == nil {
		m[source] = map[string]int64{}
	}
	m[source][value] += n
}

func note(m map[string]map[string]string, source, value, why string) {
	if m[source] == nil {
		m[source] = map[string]string{}
	}
	m[source][value] = why
}
