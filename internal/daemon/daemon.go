// Package daemon wires the long-running service together: the schema check,
// the River client with every job class's worker, and the HTTP listener, with
// one start-up and one clean shutdown.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/httpserver"
	"github.com/atis-edu/atis-scheduler/migrations"
	"github.com/atis-edu/atis-scheduler/workers"
)

// stopGrace is how long a shutdown waits, beyond the soft-stop timeout, for
// cancelled jobs to return before giving up on them.
const stopGrace = 10 * time.Second

// Daemon is the running service.
type Daemon struct {
	cfg      config.Config
	logger   *slog.Logger
	pool     *pgxpool.Pool
	registry *workers.Registry

	river   *river.Client[pgx.Tx]
	running atomic.Bool
	http    *httpserver.Server
}

// New returns a daemon that runs the classes of registry on pool.
func New(cfg config.Config, pool *pgxpool.Pool, registry *workers.Registry, logger *slog.Logger) *Daemon {
	return &Daemon{cfg: cfg.WithDefaults(), logger: logger, pool: pool, registry: registry}
}

// Run checks the schema, starts everything, logs "ready", and serves until
// ctx is cancelled; then it stops taking work, lets running jobs finish for
// up to the soft-stop timeout, cancels the rest (River retries them) and
// returns nil. A start-up failure returns an error and leaves nothing running.
func (d *Daemon) Run(ctx context.Context) error {
	if err := migrations.New(d.pool, d.logger).Check(ctx); err != nil {
		return err
	}
	riverWorkers, err := d.registry.RiverWorkers()
	if err != nil {
		return err
	}
	d.river, err = river.NewClient(riverpgxv5.New(d.pool), &river.Config{
		Logger:          d.logger.With(slog.String("component", "river")),
		Queues:          map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: d.cfg.Workers}},
		SoftStopTimeout: d.cfg.SoftStopTimeout,
		Workers:         riverWorkers,
	})
	if err != nil {
		return fmt.Errorf("create river client: %w", err)
	}
	d.http, err = httpserver.Listen(d.cfg.HTTPAddr, d.Ready, d.logger)
	if err != nil {
		return err
	}
	d.http.Serve()
	defer d.shutdownHTTP()

	// River's work must outlive ctx: the shutdown below stops it explicitly,
	// with its soft-stop timeout, rather than at once.
	if err := d.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river client: %w", err)
	}
	d.running.Store(true)
	d.logger.InfoContext(ctx, "ready",
		slog.String("http_addr", d.http.Addr()),
		slog.Int("workers", d.cfg.Workers),
		slog.Any("job_classes", d.registry.Names()))

	<-ctx.Done()
	return d.stop()
}

// Ready reports why the daemon cannot do its work, or nil: the database must
// answer, the schema must be current and the River client must be running.
func (d *Daemon) Ready(ctx context.Context) error {
	if !d.running.Load() {
		return errors.New("job runner is not running")
	}
	if err := d.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database does not answer: %w", err)
	}
	return migrations.New(d.pool, d.logger).Check(ctx)
}

func (d *Daemon) stop() error {
	d.running.Store(false)
	d.logger.Info("shutting down: no new jobs; waiting for running jobs",
		slog.Duration("soft_stop_timeout", d.cfg.SoftStopTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.SoftStopTimeout+stopGrace)
	defer cancel()
	if err := d.river.Stop(ctx); err != nil {
		return fmt.Errorf("stop job runner: %w", err)
	}
	d.logger.Info("stopped")
	return nil
}

func (d *Daemon) shutdownHTTP() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.http.Shutdown(ctx)
}
