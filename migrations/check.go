package migrations

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/riverqueue/river/rivermigrate"
)

// ErrNotReady is wrapped by Check's error when the database lacks something
// the daemon needs.
var ErrNotReady = errors.New("migrations: database schema is not ready")

// Column names one column the daemon needs.
type Column struct {
	Schema, Table, Name string
}

func (c Column) String() string {
	if c.Schema == "public" {
		return c.Table + "." + c.Name
	}
	return c.Schema + "." + c.Table + "." + c.Name
}

// Problems is what Check found missing.
type Problems struct {
	MissingTables  []string
	MissingColumns []string
	Pending        []string
	River          []string
}

// Empty reports whether nothing is missing.
func (p Problems) Empty() bool {
	return len(p.MissingTables)+len(p.MissingColumns)+len(p.Pending)+len(p.River) == 0
}

// String is one line naming what is missing and how to fix it.
func (p Problems) String() string {
	var parts []string
	add := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		shown := items
		if len(shown) > 8 {
			shown = append(slices.Clone(shown[:8]), fmt.Sprintf("and %d more", len(items)-8))
		}
		parts = append(parts, what+" "+strings.Join(shown, ", "))
	}
	add("missing tables:", p.MissingTables)
	add("missing columns:", p.MissingColumns)
	add("pending migrations:", p.Pending)
	add("River schema:", p.River)
	return strings.Join(parts, "; ")
}

// Check reports what the database lacks for the daemon to run: tables and
// columns that our migrations create, pending migrations (ours or River's).
// Its error wraps ErrNotReady, names everything missing and says how to fix
// it, on one line.
func (m *Migrator) Check(ctx context.Context) error {
	p, err := m.Problems(ctx)
	if err != nil {
		return err
	}
	if p.Empty() {
		return nil
	}
	return fmt.Errorf("%w: %s: run `atis-scheduler migrate` against this database", ErrNotReady, p)
}

// Problems lists what the database lacks; see Check.
func (m *Migrator) Problems(ctx context.Context) (Problems, error) {
	var p Problems
	required, err := RequiredColumns()
	if err != nil {
		return p, err
	}
	rows, err := m.pool.Query(ctx, `SELECT table_schema, table_name, column_name FROM information_schema.columns
		WHERE table_schema = ANY($1)`, schemasOf(append(required, Column{Schema: "public"})))
	if err != nil {
		return p, fmt.Errorf("check schema: read catalogue: %w", err)
	}
	have := map[Column]bool{}
	haveTable := map[string]bool{}
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Schema, &c.Table, &c.Name); err != nil {
			rows.Close()
			return p, fmt.Errorf("check schema: %w", err)
		}
		have[c] = true
		haveTable[c.Schema+"."+c.Table] = true
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("check schema: read catalogue: %w", err)
	}
	for _, c := range required {
		switch {
		case !haveTable[c.Schema+"."+c.Table]:
			name := strings.TrimPrefix(c.Schema+"."+c.Table, "public.")
			if !slices.Contains(p.MissingTables, name) {
				p.MissingTables = append(p.MissingTables, name)
			}
		case !have[c]:
			p.MissingColumns = append(p.MissingColumns, c.String())
		}
	}

	for _, tbl := range riverTables {
		if !haveTable["public."+tbl] {
			p.MissingTables = append(p.MissingTables, tbl)
		}
	}

	if p.Pending, err = m.Pending(ctx); err != nil {
		return p, err
	}
	riverMigrator, err := m.river()
	if err != nil {
		return p, err
	}
	res, err := riverMigrator.Validate(ctx, &rivermigrate.ValidateOpts{})
	if err != nil {
		return p, fmt.Errorf("check river schema: %w", err)
	}
	if !res.OK && len(p.Pending) == 0 {
		p.River = res.Messages
	}
	return p, nil
}

// riverTables are River's tables that the job runner cannot work without;
// River's own validation only compares migration versions.
var riverTables = []string{"river_job", "river_leader", "river_migration", "river_queue"}

var (
	createTableRe = regexp.MustCompile(`(?i)^CREATE TABLE IF NOT EXISTS ([a-z_][a-z0-9_.]*) \(`)
	addColumnRe   = regexp.MustCompile(`(?i)^ALTER TABLE (?:IF EXISTS )?([a-z_][a-z0-9_.]*)\s+ADD COLUMN IF NOT EXISTS ([a-z_][a-z0-9_]*)`)
	columnLineRe  = regexp.MustCompile(`^([a-z_][a-z0-9_]*)\s`)
)

// RequiredColumns lists every column that our migrations create, read from
// the embedded migration files themselves (CREATE TABLE IF NOT EXISTS bodies
// and ALTER TABLE … ADD COLUMN IF NOT EXISTS), so that the daemon's needs and
// the schema it migrates to cannot drift apart.
func RequiredColumns() ([]Column, error) {
	files, err := fs.Glob(embedded, "sql/*.sql")
	if err != nil {
		return nil, fmt.Errorf("required columns: %w", err)
	}
	var cols []Column
	for _, f := range files {
		b, err := embedded.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("required columns: %w", err)
		}
		cols = append(cols, parseColumns(string(b))...)
	}
	return cols, nil
}

func parseColumns(sql string) []Column {
	var cols []Column
	table := ""
	sc := bufio.NewScanner(strings.NewReader(sql))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "-- +goose Down") {
			break
		}
		if m := createTableRe.FindStringSubmatch(line); m != nil {
			table = m[1]
			if rest := line[len(m[0]):]; strings.HasSuffix(rest, ");") { // one-line table
				for _, def := range strings.Split(strings.TrimSuffix(rest, ");"), ",") {
					if cm := columnLineRe.FindStringSubmatch(strings.TrimSpace(def) + " "); cm != nil {
						cols = append(cols, newColumn(table, cm[1]))
					}
				}
				table = ""
			}
			continue
		}
		if m := addColumnRe.FindStringSubmatch(line); m != nil {
			cols = append(cols, newColumn(m[1], m[2]))
			continue
		}
		if table == "" {
			continue
		}
		if strings.HasPrefix(line, ")") {
			table = ""
			continue
		}
		if m := columnLineRe.FindStringSubmatch(line); m != nil && !strings.EqualFold(m[1], "constraint") {
			cols = append(cols, newColumn(table, m[1]))
		}
	}
	return cols
}

func newColumn(qualified, name string) Column {
	schema, table, ok := strings.Cut(qualified, ".")
	if !ok {
		schema, table = "public", qualified
	}
	return Column{Schema: schema, Table: table, Name: name}
}

func schemasOf(cols []Column) []string {
	var out []string
	for _, c := range cols {
		if !slices.Contains(out, c.Schema) {
			out = append(out, c.Schema)
		}
	}
	return out
}
