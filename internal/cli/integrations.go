package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/internal/admin"
)

// integrationsCommand holds `integrations list|show`.
type integrationsCommand struct {
	app  *app
	json bool
}

func newIntegrationsCommand(a *app) *integrationsCommand { return &integrationsCommand{app: a} }

func (c *integrationsCommand) command() *cobra.Command {
	cmd := &cobra.Command{Use: "integrations", Short: "Inspect integrations and their syncs (never their credentials or config)"}
	list := &cobra.Command{
		Use: "list", Short: "List the integrations: kind, sync frequency, last sync, next one due", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.List(cmd.Context()) },
	}
	show := &cobra.Command{
		Use: "show ID|NAME", Short: "Show an integration and its last 10 syncs", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.Show(cmd.Context(), args[0]) },
	}
	for _, sub := range []*cobra.Command{list, show} {
		sub.Flags().BoolVar(&c.json, "json", false, "print JSON instead of text")
	}
	cmd.AddCommand(list, show)
	return cmd
}

// List prints the integrations, failing ones first.
func (c *integrationsCommand) List(ctx context.Context) error {
	var list []admin.Integration
	if err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		list, err = admin.Integrations(ctx, pool, 0, 1, time.Now())
		return err
	}); err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, nonNil(list))
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tTYPE\tPROVIDER\tENABLED\tFREQUENCY\tLAST SYNC\tSTATUS\tNEXT")
	for _, i := range list {
		last, status := "-", "-"
		if len(i.Syncs) > 0 {
			s := i.Syncs[0]
			last, status = timeOrDash(&s.Start), strOrDash(s.Status)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Name, i.Type, i.Provider, yesNo(i.Enabled),
			strOrDash(i.Frequency), last, status, i.NextDue)
	}
	return w.Flush()
}

// Show prints one integration with its latest syncs.
func (c *integrationsCommand) Show(ctx context.Context, idOrName string) error {
	var list []admin.Integration
	if err := c.app.withPool(ctx, func(pool *pgxpool.Pool) error {
		id, _, err := admin.ResolveIntegration(ctx, pool, idOrName)
		if err != nil {
			return err
		}
		list, err = admin.Integrations(ctx, pool, id, 10, time.Now())
		return err
	}); err != nil {
		return err
	}
	if len(list) != 1 {
		return fmt.Errorf("%w: %q", admin.ErrIntegrationNotFound, idOrName)
	}
	i := list[0]
	if c.json {
		return writeJSON(c.app.stdout, i)
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Integration:\t%d (%s)\n", i.ID, i.Name)
	fmt.Fprintf(w, "Kind:\t%s, provider %s\n", i.Type, i.Provider)
	fmt.Fprintf(w, "Enabled:\t%s\n", yesNo(i.Enabled))
	fmt.Fprintf(w, "Sync frequency:\t%s (next: %s)\n", strOrDash(i.Frequency), i.NextDue)
	fmt.Fprintf(w, "Last sync at:\t%s\n", timeOrDash(i.LastSync))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.app.stdout)
	w = tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SYNC\tTYPE\tSTATUS\tSTARTED\tENDED\tPROCESSED\tCREATED\tUPDATED\tFAILED\tERROR")
	for _, s := range i.Syncs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Type, strOrDash(s.Status), timeOrDash(&s.Start),
			timeOrDash(s.End), int32OrDash(s.Processed), int32OrDash(s.Created), int32OrDash(s.Updated), int32OrDash(s.Failed),
			truncate(strOrDash(s.Error), 60))
	}
	return w.Flush()
}

func int32OrDash(n *int32) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
