package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/atis-edu/atis-scheduler/migrations"
)

// migrateCommand applies the schema; `migrate status` shows it.
type migrateCommand struct{ app *app }

func newMigrateCommand(a *app) *migrateCommand { return &migrateCommand{app: a} }

func (c *migrateCommand) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply every pending migration (ours, then River's); safe to run twice or from two replicas at once",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return c.Run(cmd.Context()) },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List every migration and whether it is applied",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return c.Status(cmd.Context()) },
	})
	return cmd
}

// Run applies pending migrations and prints what it applied.
func (c *migrateCommand) Run(ctx context.Context) error {
	var applied []migrations.Applied
	err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		applied, err = migrations.New(pool, c.app.logger).Up(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		_, err = fmt.Fprintln(c.app.stdout, "schema is up to date")
		return err
	}
	for _, a := range applied {
		if _, err := fmt.Fprintf(c.app.stdout, "applied %s/%s\n", a.Component, a.Name); err != nil {
			return err
		}
	}
	return nil
}

// Status prints one line per migration.
func (c *migrateCommand) Status(ctx context.Context) error {
	var all []migrations.Status
	err := c.app.withPool(ctx, func(pool *pgxpool.Pool) (err error) {
		all, err = migrations.New(pool, c.app.logger).Status(ctx)
		return err
	})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.app.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "COMPONENT\tVERSION\tNAME\tSTATE")
	for _, s := range all {
		state := "pending"
		if s.Applied {
			state = "applied"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", s.Component, s.Version, s.Name, state)
	}
	return w.Flush()
}
