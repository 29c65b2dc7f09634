package dbtest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/migrations"
)

// standIns are the minimal tables of the rest of ATİS that the seed
// documents refer to, as the web app would have them before we arrive,
// written from the words rather than copied from our migration.
const standIns = `
CREATE TABLE users (id BIGSERIAL PRIMARY KEY);
CREATE TABLE institutions (id BIGSERIAL PRIMARY KEY);
CREATE SCHEMA auth;
CREATE TABLE auth.users (id UUID PRIMARY KEY);
CREATE SCHEMA platform;
`

// SeedSQL returns the SQL blocks of a seed document (db6-system-infrastructure.md
// or platform-tables.md, as copied to migrations/testdata/seeds), as written.
func SeedSQL(tb testing.TB, doc string) string {
	tb.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "..", "migrations", "testdata", "seeds", doc))
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) == 0 {
		tb.Fatalf("dbtest: no SQL blocks in %s", doc)
	}
	var sb strings.Builder
	for _, blk := range blocks {
		sb.WriteString(blk[1])
		sb.WriteString("\n")
	}
	return sb.String()
}

// NewSeedURL returns a fresh database made by the seed documents' own SQL
// (with standIns), then before: what the web app's database looks like
// before our migrations. Dropped when the test ends.
func NewSeedURL(tb testing.TB, before string) string {
	tb.Helper()
	url := NewEmptyURL(tb)
	withPool(tb, url, func(ctx context.Context, pool *pgxpool.Pool) {
		for _, sql := range []string{standIns, SeedSQL(tb, "db6-system-infrastructure.md"), SeedSQL(tb, "platform-tables.md"), before} {
			if _, err := pool.Exec(ctx, sql); err != nil {
				tb.Fatalf("dbtest: seed database: %v", err)
			}
		}
	})
	return url
}

// NewExistingURL returns a fresh database as an existing ATİS deployment
// has it when the daemon is first installed: NewSeedURL's (before holds
// rows the web app wrote, which none of our checks have seen), then our
// migrations. Dropped when the test ends.
func NewExistingURL(tb testing.TB, before string) string {
	tb.Helper()
	url := NewSeedURL(tb, before)
	withPool(tb, url, func(ctx context.Context, pool *pgxpool.Pool) {
		if _, err := migrations.New(pool, Logger()).Up(ctx); err != nil {
			tb.Fatalf("dbtest: migrate an existing database: %v", err)
		}
	})
	return url
}

// withPool calls fn with a short-lived pool on url.
func withPool(tb testing.TB, url string, fn func(context.Context, *pgxpool.Pool)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := database.Connect(ctx, url, database.Options{})
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	defer pool.Close()
	fn(ctx, pool)
}
