package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/integrations"
	"github.com/atis-edu/atis-scheduler/internal/admin"
)

// runsCommand holds `runs list|show`.
type runsCommand struct {
	app *app

	job    string
	json   bool
	limit  int
	since  string
	status string
}

func newRunsCommand(a *app) *runsCommand { return &runsCommand{app: a} }

func (c *runsCommand) command() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "Inspect runs and their attempts (job_logs)"}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List runs, newest first, with their latest attempt",
		Example: "  atis-scheduler runs list --job nightly-report --status failed --since 7d",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return c.List(cmd.Context()) },
	}
	list.Flags().StringVar(&c.job, "job", "", "only runs of this schedule (id or name)")
	list.Flags().StringVar(&c.status, "status", "", "only runs whose latest attempt has this status ("+strings.Join(admin.Statuses, ", ")+")")
	list.Flags().StringVar(&c.since, "since", "", "only runs queued within this long (90m, 24h, 7d)")
	list.Flags().IntVar(&c.limit, "limit", 50, "at most this many runs")
	show := &cobra.Command{
		Use: "show ID", Short: "Show a run with every attempt and its error", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.Show(cmd.Context(), args[0]) },
	}
	for _, sub := range []*cobra.Command{list, show} {
		sub.Flags().BoolVar(&c.json, "json", false, "print JSON instead of a table")
	}
	cmd.AddCommand(list, show)
	return cmd
}

// List prints runs.
func (c *runsCommand) List(ctx context.Context) error {
	if c.status != "" && !slices.Contains(admin.Statuses, c.status) {
		return usageError{fmt.Errorf("--status %q is not one of %s", c.status, strings.Join(admin.Statuses, ", "))}
	}
	f := admin.RunFilter{Status: c.status, Limit: c.limit}
	if c.since != "" {
		d, err := parseSince(c.since)
		if err != nil {
			return usageError{err}
		}
		f.Since = time.Now().Add(-d)
	}
	var runs []admin.Run
	err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		if c.job != "" {
			// Deleted schedules too: their history stays, by name.
			ids, err := admin.HistoryIDs(ctx, pool, c.job)
			switch {
			case err != nil:
				return err
			case len(ids) == 0:
				return fmt.Errorf("%w: %q", admin.ErrNotFound, c.job)
			case len(ids) > 1:
				return fmt.Errorf("%w %q (ids %v): use an id", admin.ErrAmbiguous, c.job, ids)
			}
			f.ScheduledJobID = ids[0]
		}
		runs, err = admin.ListRuns(ctx, pool, f)
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, nonNil(runs))
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RUN\tSCHEDULE\tCLASS\tSTATUS\tATTEMPTS\tSCHEDULED FOR\tSTARTED\tSECONDS\tERROR")
	for _, r := range runs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, strOrDash(r.ScheduledJob), r.JobClass, r.Status, r.Attempts,
			timeOrDash(r.ScheduledFor), timeOrDash(r.StartTime), intOrDash(r.Duration), truncate(strOrDash(r.Error), 60))
	}
	return w.Flush()
}

// Show prints one run with every attempt.
func (c *runsCommand) Show(ctx context.Context, arg string) error {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return usageError{fmt.Errorf("run id %q is not a number", arg)}
	}
	var d admin.RunDetail
	if err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		d, err = admin.ShowRun(ctx, pool, id)
		return err
	}); err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, d)
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Run:\t%d\n", d.ID)
	fmt.Fprintf(w, "Schedule:\t%s (id %s)\n", strOrDash(d.ScheduledJob), int64OrDash(d.ScheduledJobID))
	fmt.Fprintf(w, "Class:\t%s\n", d.JobClass)
	fmt.Fprintf(w, "Status:\t%s after %d attempt(s)\n", d.Status, d.Attempts)
	fmt.Fprintf(w, "Scheduled for:\t%s\n", timeOrDash(d.ScheduledFor))
	fmt.Fprintf(w, "Executed by:\t%s\n", int64OrDash(d.ExecutedBy))
	fmt.Fprintf(w, "Payload:\t%s\n", d.Payload)
	if err := w.Flush(); err != nil {
		return err
	}
	for _, a := range d.History {
		fmt.Fprintf(c.app.stdout, "\nAttempt %d: %s (started %s, ended %s, %s s)\n", a.Attempt, a.Status,
			timeOrDash(a.StartTime), timeOrDash(a.EndTime), intOrDash(a.Duration))
		if a.Error != nil {
			fmt.Fprintf(c.app.stdout, "  error: %s\n", *a.Error)
		}
		if a.Trace != nil {
			fmt.Fprintf(c.app.stdout, "  trace:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(*a.Trace), "\n", "\n    "))
		}
		if len(a.Result) > 0 && string(a.Result) != "{}" {
			fmt.Fprintf(c.app.stdout, "  result: %s\n", a.Result)
		}
	}
	return nil
}

// syncsCommand holds `syncs list`.
type syncsCommand struct {
	app *app

	integration string
	json        bool
	limit       int
}

func newSyncsCommand(a *app) *syncsCommand { return &syncsCommand{app: a} }

func (c *syncsCommand) command() *cobra.Command {
	cmd := &cobra.Command{Use: "syncs", Short: "Inspect integration syncs (integration_sync_logs)"}
	list := &cobra.Command{
		Use: "list", Short: "List syncs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.List(cmd.Context()) },
	}
	list.Flags().StringVar(&c.integration, "integration", "", "only syncs of this integration (id or name)")
	list.Flags().IntVar(&c.limit, "limit", 50, "at most this many syncs")
	list.Flags().BoolVar(&c.json, "json", false, "print JSON instead of a table")
	cmd.AddCommand(list)
	return cmd
}

// List prints syncs.
func (c *syncsCommand) List(ctx context.Context) error {
	var syncs []integrations.SyncLog
	if err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		var id int64
		if c.integration != "" {
			if id, _, err = admin.ResolveIntegration(ctx, pool, c.integration); err != nil {
				return err
			}
		}
		syncs, err = integrations.ListSyncs(ctx, pool, id, c.limit)
		return err
	}); err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, nonNil(syncs))
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SYNC\tINTEGRATION\tTYPE\tSTATUS\tSTARTED\tENDED\tPROCESSED\tCREATED\tUPDATED\tFAILED\tERROR")
	for _, s := range syncs {
		fmt.Fprintf(w, "%d\t%s (%d)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, strOrDash(s.Integration), s.IntegrationID,
			s.SyncType, strOrDash(s.Status), timeOrDash(&s.StartTime), timeOrDash(s.EndTime), intOrDash(s.RecordsProcessed),
			intOrDash(s.RecordsCreated), intOrDash(s.RecordsUpdated), intOrDash(s.RecordsFailed), truncate(strOrDash(s.ErrorMessage), 60))
	}
	return w.Flush()
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
