package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"
	"github.com/atis-edu/atis-scheduler/workers/integrationdispatch"
	"github.com/atis-edu/atis-scheduler/workers/integrationsync"
	"github.com/atis-edu/atis-scheduler/workers/notificationdispatch"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/atis-edu/atis-scheduler/workers/httprequest"
	"github.com/atis-edu/atis-scheduler/workers/noop"
	"github.com/atis-edu/atis-scheduler/workers/sql"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/integrations/csv"
	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/integrations/httpjson"
	"github.com/atis-edu/atis-scheduler/integrations/ics"
	"github.com/atis-edu/atis-scheduler/integrations/scim"
	"github.com/atis-edu/atis-scheduler/integrations/smtp"
	"github.com/atis-edu/atis-scheduler/integrations/webhook"
	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/daemon"
	"github.com/atis-edu/atis-scheduler/internal/metrics"
	"github.com/atis-edu/atis-scheduler/internal/tracing"
	"github.com/atis-edu/atis-scheduler/workers"
	"github.com/atis-edu/atis-scheduler/workers/licenses"
	"github.com/atis-edu/atis-scheduler/workers/links"
	"github.com/atis-edu/atis-scheduler/workers/retention"
)

// newRegistry holds every job class this binary runs, with the configured
// aliases; m (optional) receives the classes' own metrics.
func newRegistry(cfg config.Config, pool *pgxpool.Pool, m *metrics.Metrics, logger *slog.Logger) (*workers.Registry, error) {
	keys := cfg.AppKeys()
	purge := retention.Purger{AppKeys: keys, ArchiveDir: cfg.ArchiveDir, Logger: logger, Pool: pool}
	limits := &ratelimit.Limiters{} // one bucket per integration, shared by its syncs and deliveries
	engine := &integrations.Engine{Limits: limits, Logger: logger, Pool: pool, Providers: provider.Providers{
		"http_json": httpjson.Provider{},
		"scim":      scim.Provider{},
		"ics":       ics.Provider{},
		"csv":       csv.Provider{ImportDir: cfg.ImportDir},
	}}
	if m != nil {
		purge.Observer = m
		engine.Observer = m
	}
	registry, err := workers.NewRegistry(
		httprequest.New(httprequest.Config{AppKeys: keys, Pool: pool}),
		noop.New(),
		sql.New(sql.Config{Enabled: cfg.EnableSQLJobs, Pool: pool}),
		licenses.New(licenses.Checker{AppKeys: keys, Pool: pool}),
		links.New(links.Cleaner{Pool: pool}),
		retention.New(purge),
		integrationsync.New(engine),
		integrationdispatch.New(engine),
		notificationdispatch.New(&delivery.Dispatcher{Limits: limits, Logger: logger, Pool: pool,
			Providers: delivery.Providers{"smtp": smtp.Provider{}, "webhook": webhook.Provider{}}}),
	)
	if err != nil {
		return nil, err
	}
	if err := registry.AddAliases(cfg.JobClassAliases); err != nil {
		return nil, configError{fmt.Errorf("ATIS_JOB_CLASS_ALIASES: %w", err)}
	}
	return registry, nil
}

// runCommand starts the daemon.
type runCommand struct{ app *app }

func newRunCommand(a *app) *runCommand { return &runCommand{app: a} }

func (c *runCommand) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: schedule, queue and work jobs until SIGINT or SIGTERM",
		Long: `Run connects to DATABASE_URL, checks that the schema is current (run
'atis-scheduler migrate' first), starts the job runner and the HTTP listener
(/healthz, /readyz) and logs "ready". On SIGINT or SIGTERM it stops taking work,
lets running jobs finish for up to ATIS_SOFT_STOP_TIMEOUT, cancels the rest
(they are retried later) and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.Run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringVar(&c.app.flags.httpAddr, "http-addr", "", "health/metrics listen address (overrides ATIS_HTTP_ADDR; default "+config.DefaultHTTPAddr+")")
	f.IntVar(&c.app.flags.workers, "workers", 0, "most jobs run at once (overrides ATIS_WORKERS)")
	return cmd
}

// Run runs the daemon until ctx is cancelled.
func (c *runCommand) Run(ctx context.Context) error {
	tp, err := tracing.Start(ctx, tracing.Config{Enabled: c.app.cfg.Tracing(), Version: BuildVersion(),
		Logger: c.app.logger.With(slog.String("component", "tracing"))})
	if err != nil {
		return configError{err}
	}
	logger := c.app.logger
	if tp.Enabled() {
		logger = slog.New(tracing.NewHandler(logger.Handler()))
		logger.Info("tracing on: spans go to the OTLP endpoint")
	}
	err = c.app.withPool(ctx, func(pool *pgxpool.Pool) error {
		m := metrics.New(pool, BuildVersion())
		registry, err := newRegistry(c.app.cfg, pool, m, logger)
		if err != nil {
			return err
		}
		return daemon.New(c.app.cfg, pool, registry, m, BuildVersion(), logger).Run(ctx)
	})
	// The last spans are sent after the daemon has stopped.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
	defer cancel()
	if flushErr := tp.Shutdown(flushCtx); flushErr != nil {
		logger.Warn("could not send the last spans", slog.String("error", flushErr.Error()))
	}
	return err
}

// tracingFlushTimeout bounds the export of the last spans at exit.
const tracingFlushTimeout = 5 * time.Second
