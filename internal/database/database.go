// Package database opens the daemon's connection pool to PostgreSQL.
package database

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultConnectTimeout bounds the first connection attempt.
const DefaultConnectTimeout = 10 * time.Second

// ErrBadURL is Connect's error when the connection string does not parse.
var ErrBadURL = errors.New("database: DATABASE_URL is not a valid PostgreSQL connection string (expected postgres://user:password@host:5432/dbname)")

// ErrUnreachable is wrapped by Connect's error when no connection could be made.
var ErrUnreachable = errors.New("database: cannot connect")

// Options tunes the pool. The zero value is fine for most uses.
type Options struct {
	// ApplicationName is shown in pg_stat_activity. Defaults to "atis-scheduler".
	ApplicationName string

	// ConnectTimeout bounds the first connection. Defaults to 10 seconds.
	ConnectTimeout time.Duration

	// MaxConns is the pool size. Defaults to pgxpool's (the larger of 4 and
	// the number of CPUs).
	MaxConns int32

	// TimeZone is the zone in which the database's TIMESTAMP (without time
	// zone) columns are written (ATIS_DB_TIMEZONE). Defaults to UTC.
	TimeZone *time.Location
}

// Connect opens a pool on databaseURL and checks that the server answers.
//
// The seed schema stores TIMESTAMP WITHOUT TIME ZONE, written by the web
// app in its own zone (opts.TimeZone, UTC by default). Every session runs
// with that TimeZone, so that now() and the columns' DEFAULT NOW() agree
// with the app, and every timestamp value is read and written as a wall
// clock in that zone, whatever the location of the time.Time bound.
// Errors name the host, port and database but never the password.
func Connect(ctx context.Context, databaseURL string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors may quote the string; ours never does.
		return nil, ErrBadURL
	}
	loc := opts.TimeZone
	if loc == nil {
		loc = time.UTC
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = loc.String()
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerWallClock(conn.TypeMap(), loc)
		return nil
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = cmp.Or(opts.ApplicationName, "atis-scheduler")
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = cmp.Or(opts.ConnectTimeout, DefaultConnectTimeout)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	target := Target(cfg.ConnConfig.Config)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %s", ErrUnreachable, target, reason(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w to %s: %s", ErrUnreachable, target, reason(err))
	}
	return pool, nil
}

// Target describes where a connection goes, without credentials:
// "host:port/dbname".
func Target(cfg pgconn.Config) string {
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database
}

// reason is the root cause of a connection error, short and on one line:
// "connection refused", "no such host", "timed out", or the server's message
// ("password authentication failed for user …").
func reason(err error) string {
	var pgErr *pgconn.PgError
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Message
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &dnsErr):
		return dnsErr.Name + ": " + dnsErr.Err
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	default:
		return strings.Join(strings.Fields(err.Error()), " ")
	}
}
