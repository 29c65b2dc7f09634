// Package instance is what a daemon process says about itself in
// scheduler_instances, and what it can tell about the others: its identity
// (its id, hostname, pid and HostKey), a heartbeat on a connection of its
// own, and which registered processes are proven gone.
package instance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Config.
const (
	DefaultHeartbeat  = 10 * time.Second
	DefaultDeadAfter  = time.Minute
	deregisterTimeout = 5 * time.Second
	beatTimeout       = 5 * time.Second
)

// Config describes this process.
type Config struct {
	// ID identifies this process; it is also its River client ID, so that a
	// running job names the process working it. Required.
	ID string

	// Version is recorded with the instance.
	Version string

	// Heartbeat is how often this process says it is alive. Defaults to 10
	// seconds.
	Heartbeat time.Duration

	// DeadAfter is how long without a heartbeat makes a process dead.
	// Defaults to 1 minute. A process with the same HostKey (same boot, same
	// pid namespace) whose pid is gone is dead at once.
	DeadAfter time.Duration

	// HostKey says which processes share this one's pid space; defaults to
	// HostKey(). Tests set it to pose as another host.
	HostKey string
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	c.DeadAfter = cmp.Or(c.DeadAfter, DefaultDeadAfter)
	c.HostKey = cmp.Or(c.HostKey, HostKey())
	return c
}

func (c Config) validate() error {
	switch {
	case c.ID == "":
		return errors.New("instance: Config.ID is required")
	case c.Heartbeat <= 0 || c.DeadAfter <= 0:
		return fmt.Errorf("instance: Heartbeat (%s) and DeadAfter (%s) must be positive", c.Heartbeat, c.DeadAfter)
	}
	return nil
}

// Registry is this process's row in scheduler_instances.
type Registry struct {
	cfg      Config
	hostname string
	logger   *slog.Logger
	pool     *pgxpool.Pool

	mu          sync.Mutex
	lastBeatErr time.Time // when a heartbeat of ours last failed
}

// New returns the registry of this process.
func New(pool *pgxpool.Pool, logger *slog.Logger, cfg Config) (*Registry, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &Registry{cfg: cfg, hostname: host, logger: logger, pool: pool}, nil
}

// Config is the registry's configuration, defaults applied.
func (r *Registry) Config() Config { return r.cfg }

// Register records this process as alive. Call it before River starts, so
// that no job is ever attributed to an unknown process.
func (r *Registry) Register(ctx context.Context) error {
	if r.cfg.HostKey == "" {
		r.logger.WarnContext(ctx, "cannot tell this host's pid space from /proc: the runs of a killed process "+
			"are handed back only after its heartbeat has been silent for dead_after", slog.Duration("dead_after", r.cfg.DeadAfter))
	}
	return r.register(ctx, r.pool)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (r *Registry) register(ctx context.Context, db execer) error {
	_, err := db.Exec(ctx, `INSERT INTO scheduler_instances (id, hostname, pid, version, host_key) VALUES ($1, $2, $3, $4, nullif($5, ''))
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, r.cfg.ID, r.hostname, os.Getpid(), r.cfg.Version, r.cfg.HostKey)
	if err != nil {
		return fmt.Errorf("register instance: %w", err)
	}
	return nil
}

// Deregister removes this process's row: it stopped.
func (r *Registry) Deregister(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
	defer cancel()
	if _, err := r.pool.Exec(ctx, "DELETE FROM scheduler_instances WHERE id = $1", r.cfg.ID); err != nil {
		r.logger.WarnContext(ctx, "could not deregister instance", slog.String("error", err.Error()))
	}
}

// Beat says this process is alive every Heartbeat until ctx ends, on a
// connection of its own: neither a busy pool nor a long reconciliation pass
// can delay it.
func (r *Registry) Beat(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	// A beat may take longer than the interval (a reconnect on a busy
	// machine); the ticker then skips, it never queues beats up.
	Every(ctx, r.cfg.Heartbeat, func() {
		beatCtx, cancel := context.WithTimeout(ctx, max(r.cfg.Heartbeat, beatTimeout))
		err := r.beat(beatCtx, &conn)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.mu.Lock()
			r.lastBeatErr = time.Now()
			r.mu.Unlock()
			r.logger.WarnContext(ctx, "heartbeat failed", slog.String("error", err.Error()))
		}
	})
}

// Every calls fn every d until ctx ends.
func Every(ctx context.Context, d time.Duration, fn func()) {
	ticker := time.NewTicker(d)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			fn()
		}
	}
}

func (r *Registry) beat(ctx context.Context, conn **pgx.Conn) error {
	if *conn == nil || (*conn).IsClosed() {
		c, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
		if err != nil {
			return err
		}
		*conn = c
	}
	tag, err := (*conn).Exec(ctx, "UPDATE scheduler_instances SET heartbeat_at = now() WHERE id = $1", r.cfg.ID)
	if err != nil {
		_ = (*conn).Close(context.WithoutCancel(ctx))
		*conn = nil
		return err
	}
	if tag.RowsAffected() == 0 {
		r.logger.ErrorContext(ctx, "this process was declared dead by another replica while alive; registering again "+
			"(its running jobs may have been handed back to the queue: was the database unreachable from here for a minute?)",
			slog.String("instance_id", r.cfg.ID))
		return r.register(ctx, *conn)
	}
	return nil
}

// Dead lists the registered processes proven gone: one in this pid space
// (same HostKey) whose pid no longer runs, or is ours (a previous life of
// this process's pid); or any whose heartbeat stopped for DeadAfter, judged
// only while silence proves something: not while our own heartbeat has been
// failing within DeadAfter, nor within DeadAfter of the database server's
// start (after an outage nobody's heartbeat could land). judgeSilence says
// whether silence was judged.
func (r *Registry) Dead(ctx context.Context) (dead []string, judgeSilence bool, err error) {
	r.mu.Lock()
	judgeSilence = r.lastBeatErr.IsZero() || time.Since(r.lastBeatErr) > r.cfg.DeadAfter
	r.mu.Unlock()
	var serverYoung bool
	if err := r.pool.QueryRow(ctx, `SELECT pg_postmaster_start_time() > now() - make_interval(secs => $1)`,
		r.cfg.DeadAfter.Seconds()).Scan(&serverYoung); err != nil {
		return nil, false, fmt.Errorf("read server start: %w", err)
	}
	judgeSilence = judgeSilence && !serverYoung
	rows, err := r.pool.Query(ctx, `SELECT id, pid, coalesce(host_key, ''), heartbeat_at < now() - make_interval(secs => $1)
		FROM scheduler_instances WHERE id <> $2`, r.cfg.DeadAfter.Seconds(), r.cfg.ID)
	if err != nil {
		return nil, false, fmt.Errorf("read instances: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		var pid int
		var silent bool
		if err := rows.Scan(&id, &pid, &key, &silent); err != nil {
			return nil, false, err
		}
		gone := r.cfg.HostKey != "" && key == r.cfg.HostKey && (pid == os.Getpid() || !pidAlive(pid))
		if gone || (silent && judgeSilence) {
			dead = append(dead, id)
		}
	}
	return dead, judgeSilence, rows.Err()
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
