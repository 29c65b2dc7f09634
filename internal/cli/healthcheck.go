package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// ErrNotReady is returned by `healthcheck` when the daemon is not ready.
var ErrNotReady = errors.New("not ready")

// healthcheckCommand asks a running daemon's /readyz: for container health
// checks, where no curl exists.
type healthcheckCommand struct {
	app *app
	url string
}

func newHealthcheckCommand(a *app) *healthcheckCommand { return &healthcheckCommand{app: a} }

func (c *healthcheckCommand) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 if the daemon on ATIS_HTTP_ADDR answers /readyz with 200, else 1",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return c.Run(cmd.Context()) },
	}
	cmd.Flags().StringVar(&c.url, "url", "", "URL to ask instead (default http://ATIS_HTTP_ADDR/readyz)")
	return cmd
}

// Run asks /readyz and prints its answer.
func (c *healthcheckCommand) Run(ctx context.Context) error {
	target := c.url
	if target == "" {
		host, port, _ := net.SplitHostPort(c.app.cfg.HTTPAddr)
		switch host {
		case "", "0.0.0.0":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
		target = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotReady, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	answer := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %d: %s", ErrNotReady, target, resp.StatusCode, answer)
	}
	_, err = fmt.Fprintln(c.app.stdout, answer)
	return err
}
