package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
)

// deliveriesCommand holds `deliveries list`.
type deliveriesCommand struct {
	app *app

	integration int64
	json        bool
	limit       int
	status      string
}

func newDeliveriesCommand(a *app) *deliveriesCommand { return &deliveriesCommand{app: a} }

func (c *deliveriesCommand) command() *cobra.Command {
	cmd := &cobra.Command{Use: "deliveries", Short: "Inspect notification deliveries to webhooks and mail (notification_deliveries)"}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List deliveries, newest first",
		Example: "  atis-scheduler deliveries list --integration 4 --status failed",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return c.List(cmd.Context()) },
	}
	list.Flags().Int64Var(&c.integration, "integration", 0, "only deliveries to this integration id")
	list.Flags().StringVar(&c.status, "status", "", "only deliveries with this status ("+strings.Join(delivery.Statuses, ", ")+")")
	list.Flags().IntVar(&c.limit, "limit", 50, "at most this many deliveries")
	list.Flags().BoolVar(&c.json, "json", false, "print JSON instead of a table")
	cmd.AddCommand(list)
	return cmd
}

// Validate checks the flags.
func (c *deliveriesCommand) Validate() error {
	if c.status != "" && !slices.Contains(delivery.Statuses, c.status) {
		return usageError{fmt.Errorf("--status %q is not one of %s", c.status, strings.Join(delivery.Statuses, ", "))}
	}
	return nil
}

// List prints deliveries.
func (c *deliveriesCommand) List(ctx context.Context) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var ds []delivery.Delivery
	if err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		ds, err = delivery.ListDeliveries(ctx, pool, delivery.Filter{IntegrationID: c.integration, Status: c.status, Limit: c.limit})
		return err
	}); err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.app.stdout, nonNil(ds))
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DELIVERY\tNOTIFICATION\tINTEGRATION\tSTATUS\tATTEMPTS\tNEXT ATTEMPT\tDELIVERED\tERROR")
	for _, d := range ds {
		next := "-"
		if d.Status == delivery.StatusPending || d.Status == delivery.StatusSending {
			next = timeOrDash(&d.NextAttemptAt)
		}
		fmt.Fprintf(w, "%d\t%s (%d)\t%s (%d)\t%s\t%d\t%s\t%s\t%s\n", d.ID, truncate(strOrDash(d.Notification), 40), d.NotificationID,
			strOrDash(d.Integration), d.IntegrationID, d.Status, d.Attempts, next, timeOrDash(d.DeliveredAt), truncate(strOrDash(d.LastError), 60))
	}
	return w.Flush()
}
