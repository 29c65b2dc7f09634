package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is stamped at build time (-ldflags "-X …/internal/cli.Version=v1.2.3");
// otherwise it comes from the module's build info.
var Version = ""

// BuildVersion returns the version of this binary.
func BuildVersion() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

type versionCommand struct{ app *app }

func newVersionCommand(a *app) *versionCommand { return &versionCommand{app: a} }

func (c *versionCommand) command() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		// No configuration needed to print a version.
		PersistentPreRunE: func(*cobra.Command, []string) error { c.app.started = true; return nil },
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(c.app.stdout, "atis-scheduler", BuildVersion())
			return err
		},
	}
}
