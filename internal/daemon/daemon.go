// Package daemon wires the long-running service together: the schema check,
// the River client with every job class's worker and the job_logs recorder,
// the scheduler, the reconciler and the HTTP listener, with one start-up and
// one clean shutdown.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/dashboard"
	"github.com/atis-edu/atis-scheduler/internal/httpserver"
	"github.com/atis-edu/atis-scheduler/internal/metrics"
	"github.com/atis-edu/atis-scheduler/internal/tracing"
	"github.com/atis-edu/atis-scheduler/migrations"
	"github.com/atis-edu/atis-scheduler/scheduler"
	"github.com/atis-edu/atis-scheduler/workers"
)

// stopGrace is how long a shutdown waits, beyond the soft-stop timeout, for
// cancelled jobs to return before giving up on them.
const stopGrace = 10 * time.Second

// Daemon is the running service.
type Daemon struct {
	cfg      config.Config
	id       string
	logger   *slog.Logger
	pool     *pgxpool.Pool
	registry *workers.Registry
	version  string

	http       *httpserver.Server
	metrics    *metrics.Metrics
	reconciler *scheduler.Reconciler
	recorder   *scheduler.Recorder
	river      *river.Client[pgx.Tx]
	dbDown     atomic.Bool
	running    atomic.Bool
	scheduler  *scheduler.Scheduler
	stopping   atomic.Bool
}

// New returns a daemon that runs the classes of registry on pool and
// exports m.
func New(cfg config.Config, pool *pgxpool.Pool, registry *workers.Registry, m *metrics.Metrics, version string, logger *slog.Logger) *Daemon {
	return &Daemon{cfg: cfg.WithDefaults(), id: InstanceID(), logger: logger, metrics: m, pool: pool, registry: registry, version: version}
}

// InstanceID names this process: host, pid and a random suffix. It is also
// the River client ID, so that a running job names the process working it.
func InstanceID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, host)
	if len(host) > 60 { // scheduler_instances.id holds 100
		host = host[:60]
	}
	// 48 random bits: replicas with the same hostname and pid (containers,
	// cloned VMs) still get ids of their own.
	return fmt.Sprintf("%s_%d_%012x", host, os.Getpid(), rand.Uint64N(1<<48))
}

// Run checks the schema, starts everything, logs "ready", and serves until
// ctx is cancelled; then it stops taking work, lets running jobs finish for
// up to the soft-stop timeout, cancels the rest (River retries them) and
// returns nil. A start-up failure returns an error and leaves nothing running.
func (d *Daemon) Run(ctx context.Context) error {
	if err := migrations.New(d.pool, d.logger).Check(ctx); err != nil {
		return err
	}
	// The write trigger of scheduled_jobs stamps updated_at in the web
	// app's clock: tell it which (ATIS_DB_TIMEZONE).
	if _, err := d.pool.Exec(ctx, `INSERT INTO scheduler_settings (key, value) VALUES ('db_timezone', $1)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`, d.cfg.DBTimeZone); err != nil {
		return fmt.Errorf("record ATIS_DB_TIMEZONE for the triggers: %w", err)
	}
	if err := d.build(); err != nil {
		return err
	}
	d.metrics.ObserveReadiness(d.Ready)
	d.metrics.SetFailureAlertThreshold(d.cfg.FailureAlertThreshold)
	// The dashboard shows times in the web app's zone, the one its people
	// read clocks in (validated with the rest of the configuration).
	loc, err := d.cfg.DBLocation()
	if err != nil {
		return err
	}
	// River UI's caches live as long as the listener.
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	riverUI, err := d.riverUI(uiCtx)
	if err != nil {
		return err
	}
	ui := dashboard.New(dashboard.Config{Pool: d.pool, Registry: d.registry, Runner: d.scheduler,
		Token: string(d.cfg.UIToken), Addr: d.cfg.HTTPAddr, Logger: d.logger.With(slog.String("component", "dashboard")),
		HTTPS: d.cfg.HTTPS, TrustedProxies: d.cfg.Proxies(), Location: loc, RiverUI: riverUI,
		Reconcile: func(ctx context.Context) error { _, err := d.reconciler.FollowQueue(ctx); return err }})
	d.http, err = httpserver.Listen(d.cfg.HTTPAddr, d.Ready, d.metrics.Handler(), d.logger, httpserver.WithUI(ui))
	if err != nil {
		return err
	}
	// Health and readiness answer until the very end, through the drain.
	if err := d.http.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer d.http.Stop()

	if err := d.reconciler.Register(ctx); err != nil {
		return err
	}
	defer d.reconciler.Stop()
	// The recorder's buffer is written out after River's last job returns
	// (deferred calls run last first).
	if err := d.recorder.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer d.recorder.Stop()
	// River's work and this process's heartbeat must outlive ctx: the
	// shutdown below stops River explicitly, with its soft-stop timeout, and
	// the heartbeat goes on until the last job has returned.
	if err := d.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start river client: %w", err)
	}
	if err := d.reconciler.Start(context.WithoutCancel(ctx)); err != nil {
		return errors.Join(err, d.stopRiver())
	}
	if err := d.scheduler.Start(ctx); err != nil {
		return errors.Join(err, d.stopRiver())
	}
	d.running.Store(true)
	d.logger.InfoContext(ctx, "ready",
		slog.String("http_addr", d.http.Addr()),
		slog.String("instance_id", d.id),
		slog.Int("workers", d.cfg.Workers),
		slog.Any("job_classes", d.registry.Names()))
	d.notifySystemd("READY=1\nSTATUS=ready")
	watchdogDone := d.watchdog(ctx)

	<-ctx.Done()
	<-watchdogDone
	d.notifySystemd("STOPPING=1\nSTATUS=stopping")
	d.running.Store(false)
	d.stopping.Store(true)
	d.logger.Info("shutting down: no new jobs; waiting for running jobs",
		slog.Duration("soft_stop_timeout", d.cfg.SoftStopTimeout))
	d.scheduler.Stop()
	if err := d.stopRiver(); err != nil {
		return err
	}
	d.logger.Info("stopped")
	return nil
}

func (d *Daemon) build() error {
	riverWorkers, err := d.registry.RiverWorkers()
	if err != nil {
		return err
	}
	d.recorder = scheduler.NewRecorder(d.pool, d.registry, d.logger, scheduler.RecorderConfig{
		FailureAlertThreshold: d.cfg.FailureAlertThreshold, FlushInterval: d.cfg.RecordFlushInterval,
		InstanceID: d.id, Observer: d.metrics, Stopping: d.stopping.Load,
	})
	d.river, err = river.NewClient(riverpgxv5.New(d.pool), &river.Config{
		// River's job cleaner (run by the elected leader) deletes finished
		// jobs older than these; job_logs keeps every attempt for good.
		CancelledJobRetentionPeriod: d.cfg.RiverJobRetention,
		CompletedJobRetentionPeriod: d.cfg.RiverJobRetention,
		DiscardedJobRetentionPeriod: d.cfg.RiverJobRetention,
		FetchCooldown:               d.cfg.FetchCooldown,
		FetchPollInterval:           d.cfg.FetchPollInterval,
		ID:                          d.id,
		JobTimeout:                  d.cfg.JobTimeout,
		Logger:                      d.logger.With(slog.String("component", "river")),
		Middleware:                  d.middleware(),
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: d.cfg.Workers}},
		RetryPolicy:                 scheduler.RetryPolicy{},
		SoftStopTimeout:             d.cfg.SoftStopTimeout,
		Workers:                     riverWorkers,
	})
	if err != nil {
		return fmt.Errorf("create river client: %w", err)
	}
	d.scheduler = scheduler.New(d.pool, d.river, d.registry, d.logger, scheduler.Config{
		MisfireGrace: d.cfg.MisfireGrace, Observer: d.metrics, PollInterval: d.cfg.PollInterval,
		PrepareAhead: cmp.Or(d.cfg.PrepareAhead, -1), // ATIS_PREPARE_AHEAD=0: off
	})
	d.reconciler = scheduler.NewReconciler(d.pool, d.logger, scheduler.ReconcilerConfig{
		AlertThreshold: d.cfg.FailureAlertThreshold, InstanceID: d.id, Version: d.version,
	})
	return nil
}

// middleware is River's: the tracing middleware first when tracing is on
// (its job span encloses the rest), then the job_logs recorder.
func (d *Daemon) middleware() []rivertype.Middleware {
	var mw []rivertype.Middleware
	if d.cfg.Tracing() {
		mw = append(mw, tracing.RiverMiddleware()...)
	}
	return append(mw, d.recorder)
}

// riverUI returns River's own UI for the dashboard (ATIS_RIVER_UI), or nil
// when it is off.
func (d *Daemon) riverUI(ctx context.Context) (http.Handler, error) {
	if !d.cfg.RiverUI.On() {
		d.logger.Info("River UI off (ATIS_RIVER_UI=off)")
		return nil, nil
	}
	return dashboard.RiverUI(ctx, d.river, d.logger.With(slog.String("component", "riverui")))
}

// Ready reports why the daemon cannot do its work, or nil: the database must
// answer, the schema must be current and the River client must be running.
// The reason is for anyone who can reach the listener (the container image
// binds 0.0.0.0): it never carries the driver's text, which names the
// database's user, host and name; that goes to the log, once per change.
func (d *Daemon) Ready(ctx context.Context) error {
	if !d.running.Load() {
		return errors.New("job runner is not running")
	}
	err := d.pool.Ping(ctx)
	if err == nil {
		err = migrations.New(d.pool, d.logger).Check(ctx)
		if errors.Is(err, migrations.ErrNotReady) {
			return err // names tables and migrations, no connection details
		}
	}
	d.noteReadiness(err)
	if err != nil {
		return errDatabaseDown
	}
	return nil
}

var errDatabaseDown = errors.New("database does not answer (the daemon's log says why)")

// noteReadiness logs the database's state when it changes.
func (d *Daemon) noteReadiness(err error) {
	was := d.dbDown.Swap(err != nil)
	switch {
	case err != nil && !was:
		d.logger.Warn("not ready: database does not answer", slog.String("error", err.Error()))
	case err == nil && was:
		d.logger.Info("ready again: database answers")
	}
}

// notifySystemd tells systemd (Type=notify) about the service's state; a
// no-op outside systemd.
func (d *Daemon) notifySystemd(state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		d.logger.Warn("could not notify systemd", slog.String("error", err.Error()))
	}
}

// watchdog pings systemd's watchdog (WatchdogSec) at half its interval while
// the scheduling loop keeps cycling, so that a wedged daemon is restarted.
// The returned channel closes when ctx ends.
func (d *Daemon) watchdog(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		close(done)
		return done
	}
	stale := max(3*d.cfg.PollInterval, interval)
	go func() {
		defer close(done)
		ticker := time.NewTicker(interval / 2)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if time.Since(d.scheduler.LastCycle()) < stale {
					d.notifySystemd(sddaemon.SdNotifyWatchdog)
				} else {
					d.logger.Error("scheduling loop has not cycled: withholding the watchdog ping",
						slog.Time("last_cycle", d.scheduler.LastCycle()))
				}
			}
		}
	}()
	return done
}

func (d *Daemon) stopRiver() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.SoftStopTimeout+stopGrace)
	defer cancel()
	if err := d.river.Stop(ctx); err != nil {
		return fmt.Errorf("stop job runner: %w", err)
	}
	return nil
}
