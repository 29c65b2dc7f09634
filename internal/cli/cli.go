// Package cli is the atis-scheduler command line: run, migrate, version and
// the admin commands. main only builds it and executes it.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/internal/config"
	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/logging"
	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/migrations"
)

// Exit codes, documented in README.md. A crash (an unrecovered panic, or
// SIGQUIT) exits 2 by the Go runtime's own rule, the same code as bad
// usage: a service manager restarts after it, and must not after
// ExitConfig, which restarting cannot fix.
const (
	ExitFailure     = 1  // the command failed
	ExitUsage       = 2  // bad flags or arguments
	ExitUnreachable = 3  // the database could not be reached
	ExitNotMigrated = 4  // the database lacks tables, columns or migrations
	ExitNotFound    = 5  // no schedule or run with that id or name
	ExitConfig      = 78 // bad configuration: a setting, DATABASE_URL missing or malformed (sysexits' EX_CONFIG)
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// configError marks errors in the configuration (environment variables).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// ExitCode maps an error returned by Execute to the process exit code.
func ExitCode(err error) int {
	var u usageError
	var c configError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &c), errors.Is(err, config.ErrNoDatabaseURL), errors.Is(err, database.ErrBadURL):
		return ExitConfig
	case errors.As(err, &u):
		return ExitUsage
	case errors.Is(err, database.ErrUnreachable):
		return ExitUnreachable
	case errors.Is(err, migrations.ErrNotReady):
		return ExitNotMigrated
	case errors.Is(err, admin.ErrNotFound), errors.Is(err, admin.ErrRunNotFound), errors.Is(err, admin.ErrIntegrationNotFound):
		return ExitNotFound
	case errors.Is(err, admin.ErrAmbiguous):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// app is what every command shares: configuration, output and logger.
type app struct {
	cfg    config.Config
	env    []string
	logger *slog.Logger
	stderr io.Writer
	stdout io.Writer

	started bool // a command began (cobra accepted the call)

	flags struct {
		databaseURL, httpAddr, logFormat, logLevel string
		workers                                    int
	}
}

// Execute runs the command line args (without the program name) with the
// given environment and output streams. ctx is cancelled on SIGINT/SIGTERM.
func Execute(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	a := &app{env: env, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	groups(root)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && !a.started {
		// cobra refused the call before any command ran: an unknown
		// command, a wrong number of arguments. One line, and a hint.
		var u usageError
		var c configError
		if !errors.As(err, &u) && !errors.As(err, &c) {
			first, _, _ := strings.Cut(err.Error(), "\n")
			err = usageError{fmt.Errorf("%s: see %s --help", first, cmd.CommandPath())}
		}
	}
	return err
}

// groups makes every command that only holds others refuse an unknown
// subcommand (cobra printed the help and exited 0), with the nearest
// names, and print its help when called alone.
func groups(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		groups(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.SuggestionsMinimumDistance = 2
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if near := c.SuggestionsFor(args[0]); len(near) > 0 {
			msg += " (did you mean " + strings.Join(near, " or ") + "?)"
		}
		return errors.New(msg)
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "atis-scheduler",
		Short: "Background-job daemon of ATİS: schedules, queues and runs jobs on PostgreSQL",
		Long: `atis-scheduler reads scheduled_jobs, enqueues each run into a River queue on
the same PostgreSQL database, runs the workers and records every attempt in job_logs.

Configuration comes from environment variables (see README.md); the flags below
override them.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { a.started = true; return a.load(cmd) },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.databaseURL, "database-url", "", "PostgreSQL connection string (overrides DATABASE_URL)")
	pf.StringVar(&a.flags.logFormat, "log-format", "", "text or json (overrides ATIS_LOG_FORMAT)")
	pf.StringVar(&a.flags.logLevel, "log-level", "", "debug, info, warn or error (overrides ATIS_LOG_LEVEL)")
	root.AddCommand(
		newRunCommand(a).command(),
		newDeliveriesCommand(a).command(),
		newHealthcheckCommand(a).command(),
		newIntegrationsCommand(a).command(),
		newJobsCommand(a).command(),
		newMigrateCommand(a).command(),
		newRunsCommand(a).command(),
		newSyncsCommand(a).command(),
		newVersionCommand(a).command(),
	)
	return root
}

// load reads the environment, applies flag overrides and builds the logger.
func (a *app) load(cmd *cobra.Command) error {
	cfg, err := config.Load(a.env)
	if err != nil {
		return configError{err}
	}
	flags := cmd.Flags()
	if flags.Changed("database-url") {
		cfg.DatabaseURL = a.flags.databaseURL
	}
	if flags.Changed("log-format") {
		cfg.LogFormat = a.flags.logFormat
	}
	if flags.Changed("log-level") {
		var level slog.Level
		if err := level.UnmarshalText([]byte(a.flags.logLevel)); err != nil {
			return usageError{fmt.Errorf("--log-level=%q is not one of debug, info, warn, error", a.flags.logLevel)}
		}
		cfg.LogLevel = &level
	}
	if flags.Lookup("http-addr") != nil && flags.Changed("http-addr") {
		cfg.HTTPAddr = a.flags.httpAddr
	}
	if flags.Lookup("workers") != nil && flags.Changed("workers") {
		cfg.Workers = a.flags.workers
	}
	if err := cfg.Validate(); err != nil {
		return configError{err}
	}
	a.cfg = cfg
	redact.Configure(cfg.Redaction())
	a.logger = logging.New(a.stderr, cfg.LogFormat, cfg.LogLevel)
	return nil
}

// withPool runs fn with a pool on DATABASE_URL, closed after.
func (a *app) withPool(ctx context.Context, fn func(*pgxpool.Pool) error) error {
	pool, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(pool)
}

// connect opens the pool, after checking that DATABASE_URL is set.
func (a *app) connect(ctx context.Context) (*pgxpool.Pool, error) {
	if err := a.cfg.RequireDatabase(); err != nil {
		return nil, err
	}
	loc, err := a.cfg.DBLocation()
	if err != nil {
		return nil, configError{err}
	}
	pool, err := database.Connect(ctx, a.cfg.DatabaseURL, database.Options{MaxConns: int32(a.cfg.DBMaxConns), TimeZone: loc})
	if err != nil {
		return nil, fmt.Errorf("%w: check that PostgreSQL is running and DATABASE_URL is right", err)
	}
	return pool, nil
}
