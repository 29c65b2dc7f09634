package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/internal/admin"
	"github.com/atis-edu/atis-scheduler/internal/redact"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
	"github.com/atis-edu/atis-scheduler/scheduler"
)

// ErrInvalidSchedules is returned by `jobs validate` when a row cannot run.
var ErrInvalidSchedules = errors.New("some scheduled jobs cannot run")

// jobsCommand holds `jobs next|list|show|validate|run|pause|resume|delete`.
type jobsCommand struct {
	app *app

	count int
	from  string
	json  bool
	tz    string
	user  int64
	yes   bool
}

func newJobsCommand(a *app) *jobsCommand { return &jobsCommand{app: a} }

func (c *jobsCommand) command() *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "Inspect and manage scheduled_jobs"}

	next := &cobra.Command{
		Use:   "next EXPR",
		Short: "Print the next fire times of a cron expression (no database needed)",
		Example: `  atis-scheduler jobs next '30 2 * * *' --tz Europe/Berlin --from 2026-03-28T00:00:00Z --count 3
  atis-scheduler jobs next @daily --tz Asia/Baku`,
		Args: cobra.MinimumNArgs(1),
		// No configuration needed: this command touches no database.
		PersistentPreRunE: func(*cobra.Command, []string) error { c.app.started = true; return nil },
		RunE:              func(_ *cobra.Command, args []string) error { return c.Next(strings.Join(args, " ")) },
	}
	next.Flags().StringVar(&c.tz, "tz", "UTC", "IANA time zone the expression is read in")
	next.Flags().StringVar(&c.from, "from", "", "start after this RFC3339 instant (default now)")
	next.Flags().IntVar(&c.count, "count", 5, "how many fire times")

	list := &cobra.Command{
		Use: "list", Short: "List the schedules with their next run and last result", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.List(cmd.Context()) },
	}
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check every schedule as the daemon would; exit 1 if any cannot run",
		Long: `Validate checks every row of scheduled_jobs as the daemon would, and what
its runs will need: the cron expression or interval, the class (unknown, or
switched off such as sql without ATIS_ENABLE_SQL_JOBS=true), the parameters,
each from_config key (present in system_configs and readable with
ATIS_APP_KEY), and the integration of an integration_sync (present and
enabled). It prints each problem on a line, "error: scheduled job ID (NAME):
why" or "warning: …" (both cron and interval set, paused, a pause switch in
platform.feature_flags), and exits 1 if any row cannot run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.Validate(cmd.Context()) },
	}
	for _, sub := range []*cobra.Command{list, validate} {
		sub.Flags().BoolVar(&c.json, "json", false, "print JSON instead of a table")
	}
	run := &cobra.Command{
		Use: "run ID|NAME", Short: "Enqueue a run of a schedule now", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.Run(cmd.Context(), args[0]) },
	}
	run.Flags().Int64Var(&c.user, "user", 0, "users.id recorded as job_logs.executed_by")
	pause := &cobra.Command{
		Use: "pause ID|NAME", Short: "Pause a schedule (is_active = false)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.SetActive(cmd.Context(), args[0], false) },
	}
	resume := &cobra.Command{
		Use: "resume ID|NAME", Short: "Resume a paused schedule from its next tick", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.SetActive(cmd.Context(), args[0], true) },
	}
	del := &cobra.Command{
		Use:   "delete ID|NAME --yes",
		Short: "Delete a schedule; its runs of history stay (runs list --job NAME)",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return c.Delete(cmd.Context(), args[0]) },
	}
	del.Flags().BoolVar(&c.yes, "yes", false, "really delete it")
	show := &cobra.Command{
		Use: "show ID|NAME", Short: "Show a schedule: its definition in words, its next 10 fire times, its last runs", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.Show(cmd.Context(), args[0]) },
	}
	show.Flags().BoolVar(&c.json, "json", false, "print JSON instead of text")
	cmd.AddCommand(next, list, show, validate, run, pause, resume, del)
	return cmd
}

// Next prints the next fire times of expr, one RFC3339 instant a line.
func (c *jobsCommand) Next(expr string) error {
	if c.count < 1 || c.count > 10000 {
		return usageError{fmt.Errorf("--count=%d must be between 1 and 10000", c.count)}
	}
	sched, err := schedule.ParseRow(&expr, nil, &c.tz)
	if err != nil {
		return usageError{err}
	}
	loc, _ := time.LoadLocation(c.tz)
	at := time.Now()
	if c.from != "" {
		if at, err = time.Parse(time.RFC3339, c.from); err != nil {
			return usageError{fmt.Errorf("--from=%q is not an RFC3339 instant (e.g. 2026-03-28T00:00:00Z)", c.from)}
		}
	}
	for _, t := range schedule.Upcoming(sched, at, c.count) {
		if _, err := fmt.Fprintln(c.app.stdout, t.In(loc).Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}

// List prints the schedules.
func (c *jobsCommand) List(ctx context.Context) error {
	var all []admin.Schedule
	err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		all, err = admin.Schedules(ctx, pool, admin.ScheduleQuery{Sort: "id"})
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, all)
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tCLASS\tSCHEDULE\tTZ\tACTIVE\tNEXT RUN\tLAST STATUS\tRUNS\tFAILED\tSKIPPED\tMESSAGE")
	for _, s := range all {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.Name, s.Class, s.Schedule, s.Timezone,
			yesNo(s.Active), timeOrDash(s.NextRunAt), strOrDash(s.LastStatus), s.Runs, s.Failures, s.Skips,
			truncate(strOrDash(s.LastMessage), 60))
	}
	return w.Flush()
}

// Validate prints each problem on a line and fails if any row cannot run.
func (c *jobsCommand) Validate(ctx context.Context) error {
	var problems []admin.Problem
	err := c.app.withPool(ctx, func(pool *pgxpool.Pool) error {
		registry, err := newRegistry(c.app.cfg, pool, nil, c.app.logger)
		if err != nil {
			return err
		}
		if problems, err = admin.Validate(ctx, pool, registry); err != nil {
			return err
		}
		problems, err = checkRuns(ctx, pool, registry, problems)
		return err
	})
	if err != nil {
		return err
	}
	invalid := 0
	for _, p := range problems {
		if len(p.Errors) > 0 {
			invalid++
		}
	}
	if c.json {
		if err := writeJSON(c.app.stdout, nonNil(problems)); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			for _, e := range p.Errors {
				fmt.Fprintf(c.app.stdout, "error: scheduled job %d (%s): %s\n", p.ID, p.Name, e)
			}
			for _, wn := range p.Warnings {
				fmt.Fprintf(c.app.stdout, "warning: scheduled job %d (%s): %s\n", p.ID, p.Name, wn)
			}
		}
		if invalid == 0 {
			fmt.Fprintln(c.app.stdout, "every scheduled job can run")
		}
	}
	if invalid > 0 {
		return fmt.Errorf("%w: %d of them", ErrInvalidSchedules, invalid)
	}
	return nil
}

// Run enqueues a run of a schedule now.
func (c *jobsCommand) Run(ctx context.Context, idOrName string) error {
	return c.withSchedule(ctx, idOrName, func(pool *pgxpool.Pool, id int64, name string) error {
		sched, err := c.inserter(pool)
		if err != nil {
			return err
		}
		var user *int64
		if c.user != 0 {
			var exists bool
			if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, c.user).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return usageError{fmt.Errorf("--user %d: no user has that id (users.id)", c.user)}
			}
			user = &c.user
		}
		jobID, _, err := admin.RunNow(ctx, pool, sched, id, user, cliActor())
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.app.stdout, "enqueued run %d of scheduled job %d (%s)\n", jobID, id, name)
		return err
	})
}

// withSchedule resolves an id or name and runs fn with it.
func (c *jobsCommand) withSchedule(ctx context.Context, idOrName string, fn func(pool *pgxpool.Pool, id int64, name string) error) error {
	return c.app.withPool(ctx, func(pool *pgxpool.Pool) error {
		id, name, err := admin.Resolve(ctx, pool, idOrName)
		if err != nil {
			return err
		}
		return fn(pool, id, name)
	})
}

// inserter is a scheduler whose River client only inserts.
func (c *jobsCommand) inserter(pool *pgxpool.Pool) (*scheduler.Scheduler, error) {
	registry, err := newRegistry(c.app.cfg, pool, nil, c.app.logger)
	if err != nil {
		return nil, err
	}
	riverWorkers, err := registry.RiverWorkers()
	if err != nil {
		return nil, err
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: c.app.logger, Workers: riverWorkers})
	if err != nil {
		return nil, err
	}
	return scheduler.New(pool, client, registry, c.app.logger, scheduler.Config{}), nil
}

// SetActive pauses or resumes a schedule.
func (c *jobsCommand) SetActive(ctx context.Context, idOrName string, active bool) error {
	return c.withSchedule(ctx, idOrName, func(pool *pgxpool.Pool, id int64, name string) error {
		if _, err := admin.SetActive(ctx, pool, id, active, cliActor()); err != nil {
			return err
		}
		verb := map[bool]string{true: "resumed", false: "paused"}[active]
		_, err := fmt.Fprintf(c.app.stdout, "%s scheduled job %d (%s)\n", verb, id, name)
		return err
	})
}

// cliActor is who performs an action from the command line, for its audit
// row: the operating system user.
func cliActor() admin.Actor {
	name := "unknown user"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return admin.Actor{Name: name, Via: admin.ViaCLI}
}

// Delete deletes a schedule, after --yes.
func (c *jobsCommand) Delete(ctx context.Context, idOrName string) error {
	return c.withSchedule(ctx, idOrName, func(pool *pgxpool.Pool, id int64, name string) error {
		if !c.yes {
			var runs int64
			if err := pool.QueryRow(ctx, `SELECT count(DISTINCT river_job_id) FROM job_logs WHERE scheduled_job_id = $1`, id).Scan(&runs); err != nil {
				return err
			}
			return usageError{fmt.Errorf("this would delete scheduled job %d (%s); its %d runs of history would stay: add --yes to delete it", id, name, runs)}
		}
		name, runs, err := admin.DeleteSchedule(ctx, pool, id, cliActor())
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.app.stdout, "deleted scheduled job %d (%s); its %d runs of history stay (atis-scheduler runs list --job %q)\n", id, name, runs, name)
		return err
	})
}

// shown is a schedule as `jobs show --json` prints it.
type shown struct {
	admin.Schedule
	Words       string          `json:"in_words"`
	MaxAttempts *int32          `json:"max_attempts"`
	RetryDelay  *int32          `json:"retry_delay_minutes"`
	Parameters  json.RawMessage `json:"parameters"`
	NextFires   []time.Time     `json:"next_fire_times"`
	FiresError  string          `json:"next_fire_times_error,omitempty"`
	Runs        []admin.Run     `json:"last_runs"`
}

// Show prints one schedule.
func (c *jobsCommand) Show(ctx context.Context, idOrName string) error {
	var out shown
	err := c.withSchedule(ctx, idOrName, func(pool *pgxpool.Pool, id int64, _ string) error {
		d, err := admin.GetSchedule(ctx, pool, id)
		if err != nil {
			return err
		}
		out = shown{Schedule: d.Schedule, Words: d.Words(), MaxAttempts: d.MaxAttempts, RetryDelay: d.RetryDelay,
			Parameters: redact.JSON(d.Parameters)}
		out.NextFires, out.FiresError = nextFires(d.Schedule, time.Now(), 10)
		out.Runs, err = admin.ListRuns(ctx, pool, admin.RunFilter{ScheduledJobID: id, Limit: 10})
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, out)
	}
	s := out.Schedule
	loc, _ := time.LoadLocation(s.Timezone)
	if loc == nil {
		loc = time.UTC
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Schedule:\t%d (%s)\n", s.ID, s.Name)
	fmt.Fprintf(w, "Class:\t%s\n", s.Class)
	fmt.Fprintf(w, "When:\t%s (%s, %s)\n", out.Words, s.Written(), s.Timezone)
	fmt.Fprintf(w, "Active:\t%s; running: %s\n", yesNo(s.Active), yesNo(s.Running))
	fmt.Fprintf(w, "Policies:\tmisfire %s, overlap %s; %s\n", s.Misfire, s.Overlap,
		admin.ScheduleDetail{MaxAttempts: out.MaxAttempts, RetryDelay: out.RetryDelay}.Retries())
	if warning := s.Warning(); warning != "" {
		fmt.Fprintf(w, "Warning:\t%s\n", warning)
	}
	fmt.Fprintf(w, "Parameters:\t%s\n", out.Parameters)
	if s.Error != nil {
		fmt.Fprintf(w, "Cannot run:\t%s\n", *s.Error)
	}
	fmt.Fprintf(w, "Last result:\t%s at %s: %s\n", strOrDash(s.LastStatus), timeOrDash(s.LastRunAt), truncate(strOrDash(s.LastMessage), 100))
	fmt.Fprintf(w, "Counts:\t%d runs, %d failed, %d ticks skipped\n", s.Runs, s.Failures, s.Skips)
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.app.stdout, "\nNext fire times (%s):\n", s.Timezone)
	if out.FiresError != "" {
		fmt.Fprintf(c.app.stdout, "  none: %s\n", out.FiresError)
	}
	for _, t := range out.NextFires {
		fmt.Fprintf(c.app.stdout, "  %s  (%s)\n", t.In(loc).Format("2006-01-02 15:04:05 Mon -07:00"), t.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	fmt.Fprintln(c.app.stdout, "\nLast runs:")
	if len(out.Runs) == 0 {
		fmt.Fprintln(c.app.stdout, "  none yet")
		return nil
	}
	w = tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  RUN\tSTATUS\tATTEMPTS\tSCHEDULED FOR\tSTARTED\tSECONDS\tERROR")
	for _, r := range out.Runs {
		fmt.Fprintf(w, "  %d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Attempts, timeOrDash(r.ScheduledFor), timeOrDash(r.StartTime),
			intOrDash(r.Duration), truncate(strOrDash(r.Error), 60))
	}
	return w.Flush()
}

// nextFires is a schedule's next n fire times from its next_run_at (or
// from now), as the scheduler computes them, or why there are none.
func nextFires(s admin.Schedule, now time.Time, n int) ([]time.Time, string) {
	tz := s.Timezone
	sched, err := schedule.ParseRow(s.Cron, s.Interval, &tz)
	if err != nil {
		return nil, err.Error()
	}
	if s.NextRunAt != nil {
		return append([]time.Time{*s.NextRunAt}, schedule.Upcoming(sched, *s.NextRunAt, n-1)...), ""
	}
	return schedule.Upcoming(sched, now, n), ""
}
