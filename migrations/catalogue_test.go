package migrations_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// seedDatabase is what the seed documents' DDL, run as written, produces.
func seedDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return dbtest.Pool(t, dbtest.NewSeedURL(t, ""))
}

type catalogue struct {
	Tables      []string
	Columns     map[string]string // schema.table.column -> type, nullability, default
	Constraints map[string]string // schema.table.name -> type + definition
	Indexes     map[string]string // schema.index -> definition
}

func readCatalogue(t *testing.T, pool *pgxpool.Pool) catalogue {
	t.Helper()
	ctx := context.Background()
	c := catalogue{Columns: map[string]string{}, Constraints: map[string]string{}, Indexes: map[string]string{}}
	scan := func(sql string, each func(key, val string)) {
		rows, err := pool.Query(ctx, sql)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var k, v string
			require.NoError(t, rows.Scan(&k, &v))
			each(k, v)
		}
		require.NoError(t, rows.Err())
	}
	const schemas = `('public', 'platform', 'auth')`
	scan(`SELECT n.nspname || '.' || c.relname, '' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname IN `+schemas+` ORDER BY 1`,
		func(k, _ string) { c.Tables = append(c.Tables, k) })
	scan(`SELECT n.nspname || '.' || c.relname || '.' || a.attname,
			format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
			|| coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relkind = 'r' AND n.nspname IN `+schemas+` AND a.attnum > 0 AND NOT a.attisdropped`,
		func(k, v string) { c.Columns[k] = v })
	scan(`SELECT n.nspname || '.' || c.relname || '.' || con.conname, con.contype::text || ' ' || pg_get_constraintdef(con.oid)
		FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN `+schemas,
		func(k, v string) { c.Constraints[k] = v })
	scan(`SELECT schemaname || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname IN `+schemas,
		func(k, v string) { c.Indexes[k] = v })
	return c
}

// missingOrDifferent lists every entry of want that got lacks or holds
// differently: got may have more (our additions), never less or other.
func missingOrDifferent(want, got map[string]string) []string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+k+": "+w)
		} else if g != w {
			out = append(out, "differs "+k+": want "+w+", got "+g)
		}
	}
	slices.Sort(out)
	return out
}

// deliberate are the seed constraints our migrations drop, and why.
var deliberate = map[string]string{
	// 00014: it refused to delete any schedule that had ever run; job_logs
	// keeps a deleted schedule's id, scheduler_deleted_schedules its name.
	"public.job_logs.job_logs_scheduled_job_id_fkey": "00014_schedule_deletion.sql",
}

func TestCatalogueMatchesSeeds(t *testing.T) {
	t.Parallel()

	seed := readCatalogue(t, seedDatabase(t))
	ours := readCatalogue(t, dbtest.NewPool(t))

	// The seeds hold 18 tables (14 + 4 in platform) beside the 3 stand-ins;
	// checking the count guards against a parse that silently found nothing.
	require.Len(t, seed.Tables, 18+3)
	require.Greater(t, len(seed.Columns), 200)
	require.Greater(t, len(seed.Constraints), 60)
	require.Greater(t, len(seed.Indexes), 80)

	for _, tbl := range seed.Tables {
		require.Contains(t, ours.Tables, tbl)
	}
	require.Empty(t, missingOrDifferent(seed.Columns, ours.Columns), "columns")
	// Deliberate departures from the seeds, each with its migration.
	for name := range deliberate {
		_, inSeed := seed.Constraints[name]
		require.True(t, inSeed, "%s is a seed constraint", name)
		delete(seed.Constraints, name)
		require.NotContains(t, ours.Constraints, name, "%s is gone", name)
	}
	require.Empty(t, missingOrDifferent(seed.Constraints, ours.Constraints), "constraints")
	require.Empty(t, missingOrDifferent(seed.Indexes, ours.Indexes), "indexes")
}

func TestRequiredColumnsAreTheMigratedOnes(t *testing.T) {
	t.Parallel()

	required, err := migrations.RequiredColumns()
	require.NoError(t, err)
	got := map[string]string{}
	for _, c := range required {
		got[c.Schema+"."+c.Table+"."+c.Name] = ""
	}
	seed := readCatalogue(t, seedDatabase(t))
	want := map[string]string{}
	for k := range seed.Columns {
		want[k] = ""
	}
	// Every column the seeds define is required by the daemon's start-up check.
	require.Empty(t, cmp.Diff(want, got, cmpIgnoreExtra(want)))
}

// cmpIgnoreExtra ignores keys of got that want lacks (our own additions).
func cmpIgnoreExtra(want map[string]string) cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		mi, ok := p.Last().(cmp.MapIndex)
		if !ok {
			return false
		}
		_, inWant := want[mi.Key().String()]
		return !inWant
	}, cmp.Ignore())
}
