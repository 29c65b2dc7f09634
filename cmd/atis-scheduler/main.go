// Command atis-scheduler is the background-job daemon of ATİS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	// Schedules name IANA zones; embed the zone database so that a scratch
	// or distroless image without /usr/share/zoneinfo still knows them.
	_ "time/tzdata"

	"github.com/atis-edu/atis-scheduler/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	err := cli.Execute(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "atis-scheduler:", err)
		os.Exit(cli.ExitCode(err))
	}
}
