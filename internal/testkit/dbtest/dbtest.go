// Package dbtest hands each test its own fresh, fully migrated database on a
// real PostgreSQL server.
//
// The server is TEST_DATABASE_URL when set (a URL to a database on a server
// where this role may create databases: `make test` sets it to one throwaway
// cluster shared by every test package). Otherwise dbtest starts a throwaway
// cluster of its own from the installed server binaries (see localpg) on
// first use, and Main stops it.
//
// A template database is migrated once per server and schema version (keyed
// on migrations.Fingerprint); each test's database is a clone of it, dropped
// when the test ends.
package dbtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/testkit/localpg"
	"github.com/atis-edu/atis-scheduler/migrations"
)

// EnvURL names the variable holding the server to test against.
const EnvURL = "TEST_DATABASE_URL"

// templateLockKey serialises template creation across test processes.
const templateLockKey int64 = 0x61746973_00000002

var (
	serverOnce sync.Once
	serverErr  error
	adminURL   string
	cluster    *localpg.Cluster

	templateMu    sync.Mutex
	templateReady string

	counter atomic.Int64
)

// Main runs the package's tests, fails the run if they leaked goroutines,
// stops the cluster dbtest started, if any, and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with cleanup of its own to
// do after it: it returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: goroutines leaked by the tests:", err)
			code = 1
		}
	}
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: stop cluster:", err)
		}
		cancel()
	}
	return code
}

// Server returns the URL of the admin database on the test server, starting a
// throwaway cluster if TEST_DATABASE_URL is not set.
func Server(tb testing.TB) string {
	tb.Helper()
	serverOnce.Do(func() {
		if adminURL = os.Getenv(EnvURL); adminURL != "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cluster, serverErr = localpg.Start(ctx, localpg.Options{})
		if serverErr == nil {
			adminURL = cluster.URL()
		}
	})
	if serverErr != nil {
		tb.Fatalf("dbtest: no PostgreSQL server: %v", serverErr)
	}
	return adminURL
}

// NewURL creates a fresh, fully migrated database for this test and returns
// its URL. The database is dropped when the test ends.
func NewURL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, template(tb), "")
}

// NewURLFrom creates a database for this test as a copy of database tmpl
// on the test server (which no session may be using), dropped when the
// test ends: for tests and benchmarks that build a large database once and
// start each run from a copy of it.
func NewURLFrom(tb testing.TB, tmpl string) string {
	tb.Helper()
	return newDatabase(tb, tmpl, "STRATEGY FILE_COPY") // a file copy: no WAL for gigabytes
}

// NewEmptyURL creates a fresh database with nothing in it (not even the
// stand-in tables), dropped when the test ends.
func NewEmptyURL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, "template0", "")
}

// NewPool is NewURL plus a pool on it that is closed when the test ends.
func NewPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return Pool(tb, NewURL(tb))
}

// Pool opens a pool on databaseURL configured as the daemon configures its
// own, closed when the test ends.
func Pool(tb testing.TB, databaseURL string) *pgxpool.Pool {
	tb.Helper()
	return PoolWith(tb, databaseURL, database.Options{})
}

// PoolWith is Pool with options (a pool whose database is written in
// another time zone, say).
func PoolWith(tb testing.TB, databaseURL string, opts database.Options) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := database.Connect(ctx, databaseURL, opts)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// Logger returns a logger that discards everything, for components under test.
func Logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newDatabase creates a database from template tmpl with CREATE DATABASE's
// options (as "STRATEGY FILE_COPY").
func newDatabase(tb testing.TB, tmpl, options string) string {
	tb.Helper()
	admin := Server(tb)
	name := databaseName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, admin, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize(), options)); err != nil {
		tb.Fatalf("dbtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := adminExec(ctx, admin, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
			pgx.Identifier{name}.Sanitize())); err != nil {
			tb.Logf("dbtest: drop database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// template returns the name of the migrated template database, creating it
// once per server and schema version.
func template(tb testing.TB) string {
	tb.Helper()
	templateMu.Lock()
	defer templateMu.Unlock()
	if templateReady != "" {
		return templateReady
	}
	admin := Server(tb)
	name := "atis_tmpl_" + migrations.Fingerprint()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := ensureTemplate(ctx, admin, name); err != nil {
		tb.Fatalf("dbtest: template database: %v", err)
	}
	templateReady = name
	return name
}

func ensureTemplate(ctx context.Context, admin, name string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Other test processes sharing this server wait here while one builds it.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := name + "_building"
	for _, stmt := range []string{
		"DROP DATABASE IF EXISTS " + building + " WITH (FORCE)",
		"CREATE DATABASE " + building + " TEMPLATE template0",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	pool, err := database.Connect(ctx, WithDatabase(admin, building), database.Options{})
	if err != nil {
		return err
	}
	_, err = migrations.New(pool, Logger()).Up(ctx)
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, name))
	return err
}

func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

func databaseName(testName string) string {
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	return fmt.Sprintf("t_%d_%d_%s", os.Getpid(), counter.Add(1), base)
}

// WithDatabase returns databaseURL pointing at database name instead.
func WithDatabase(databaseURL, name string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		panic(fmt.Sprintf("dbtest: %s must be a URL (postgres://…): %v", EnvURL, err))
	}
	u.Path = "/" + name
	return u.String()
}

// Scalar runs a query that returns one value and returns it.
func Scalar[T any](tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) T {
	tb.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		tb.Fatalf("dbtest: %s: %v", sql, err)
	}
	return v
}

// MainWithBinary is Main for tests that run the real atis-scheduler: it
// builds the command from this module into a temporary directory, sets
// *binary to its path, runs the tests and removes it.
//
//	var binary string
//	func TestMain(m *testing.M) { dbtest.MainWithBinary(m, &binary) }
func MainWithBinary(m *testing.M, binary *string) {
	dir, err := os.MkdirTemp("", "atis-bin-")
	if err != nil {
		panic(err)
	}
	*binary = filepath.Join(dir, "atis-scheduler")
	if out, err := exec.Command("go", "build", "-o", *binary, "github.com/atis-edu/atis-scheduler/cmd/atis-scheduler").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("dbtest: build atis-scheduler: %v\n%s", err, out))
	}
	code := Run(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
