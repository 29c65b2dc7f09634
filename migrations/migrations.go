package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed sql/*.sql
var embedded embed.FS

// VersionTable is the table in which goose records our applied migrations.
// It is named for this product so that it cannot collide with another goose
// user of the same ATİS database.
const VersionTable = "atis_scheduler_migrations"

// lockKey is the PostgreSQL advisory lock held while migrating
// ("atis" in ASCII, then 1), so that replicas starting at once migrate in turn.
const lockKey int64 = 0x61746973_00000001

// Applied is one migration applied by Up.
type Applied struct {
	// Component is "atis" for ours and "river" for River's.
	Component string
	// Name is the migration's file name (ours) or River's migration name.
	Name     string
	Duration time.Duration
}

// Status is the state of one known migration.
type Status struct {
	Component string
	Version   int64
	Name      string
	Applied   bool
	// AppliedAt is when it was applied; zero when pending, and for River's
	// migrations, whose table does not record it.
	AppliedAt time.Time
}

// Migrator applies and inspects the schema on one database.
type Migrator struct {
	logger *slog.Logger
	pool   *pgxpool.Pool
}

// New returns a Migrator for the database behind pool.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Migrator {
	return &Migrator{logger: logger, pool: pool}
}

// Up applies every pending migration, ours and then River's, while holding an
// advisory lock. It is idempotent, and concurrent callers on one database
// apply each migration once.
func (m *Migrator) Up(ctx context.Context) ([]Applied, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection for the lock: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Under a fresh context: a cancelled ctx must not leave the lock held
		// on a connection that goes back to the pool.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
			_ = conn.Conn().Close(unlockCtx) // closing the session frees the lock
		}
	}()

	var applied []Applied
	provider, closeProvider, err := m.goose()
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	results, err := provider.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			applied = append(applied, Applied{Component: "atis", Name: path.Base(r.Source.Path), Duration: r.Duration})
		}
	}
	if err != nil {
		return applied, fmt.Errorf("migrate: %w", err)
	}

	riverMigrator, err := m.river()
	if err != nil {
		return applied, err
	}
	res, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return applied, fmt.Errorf("migrate river: %w", err)
	}
	for _, v := range res.Versions {
		applied = append(applied, Applied{Component: "river", Name: fmt.Sprintf("%03d_%s", v.Version, v.Name), Duration: v.Duration})
	}
	// One line at INFO (the CLI prints each step on stdout: the log must
	// not say it all again); each step at DEBUG.
	var took time.Duration
	for _, a := range applied {
		took += a.Duration
		m.logger.DebugContext(ctx, "migration applied", slog.String("component", a.Component),
			slog.String("migration", a.Name), slog.Duration("duration", a.Duration))
	}
	if len(applied) > 0 {
		m.logger.InfoContext(ctx, "migrations applied", slog.Int("count", len(applied)),
			slog.String("last", applied[len(applied)-1].Component+"/"+applied[len(applied)-1].Name), slog.Duration("duration", took))
	}
	return applied, nil
}

// Status lists every known migration, ours then River's, with its state.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	provider, closeProvider, err := m.goose()
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	ours, err := provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var out []Status
	for _, s := range ours {
		out = append(out, Status{Component: "atis", Version: s.Source.Version, Name: path.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt})
	}

	riverMigrator, err := m.river()
	if err != nil {
		return nil, err
	}
	existing, err := riverMigrator.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("river migration status: %w", err)
	}
	applied := make(map[int]bool, len(existing))
	for _, v := range existing {
		applied[v.Version] = true
	}
	for _, v := range riverMigrator.AllVersions() {
		out = append(out, Status{Component: "river", Version: int64(v.Version), Name: v.Name, Applied: applied[v.Version]})
	}
	return out, nil
}

// Pending lists the migrations not yet applied, as "component/name".
func (m *Migrator) Pending(ctx context.Context) ([]string, error) {
	all, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, s := range all {
		if !s.Applied {
			pending = append(pending, s.Component+"/"+s.Name)
		}
	}
	return pending, nil
}

func (m *Migrator) goose() (*goose.Provider, func(), error) {
	fsys, err := fs.Sub(embedded, "sql")
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(m.pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(VersionTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("migrate: load migrations: %w", err)
	}
	return provider, func() { _ = provider.Close() }, nil
}

func (m *Migrator) river() (*rivermigrate.Migrator[pgx.Tx], error) {
	// River's own lines would repeat ours ("migration applied"); errors are
	// returned, so its logger may stay quiet.
	quiet := slog.New(slog.DiscardHandler)
	mig, err := rivermigrate.New(riverpgxv5.New(m.pool), &rivermigrate.Config{Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	return mig, nil
}

// Fingerprint identifies the complete schema this binary migrates to: a hash
// of our migration files and River's migration versions. Test helpers key
// their template databases on it.
func Fingerprint() string {
	h := sha256.New()
	_ = fs.WalkDir(embedded, "sql", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := embedded.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%s\x00", p, b)
		return nil
	})
	if mig, err := rivermigrate.New(riverpgxv5.New(nil), nil); err == nil {
		for _, v := range mig.AllVersions() {
			fmt.Fprintf(h, "river:%d:%s\x00", v.Version, v.SQLUp)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
