// Command atis-devdb runs a command with a private PostgreSQL cluster, for
// development only: `make run` keeps one under .local/ and `make test` uses a
// throwaway one shared by every test package.
//
//	atis-devdb [-dir DIR] [-env NAME] -- COMMAND [ARG…]
//
// It starts the cluster (creating it on first use), runs COMMAND with NAME set
// to the cluster's URL, stops the cluster when COMMAND exits, and exits with
// COMMAND's status. SIGINT and SIGTERM reach COMMAND; the cluster stops after.
//
// A cluster kept in DIR is shared: while one atis-devdb runs on it, a second
// one joins the running server (same URL) instead of starting another, and
// the server stops only when the last of them exits. Its URL is printed on
// stderr at start and written to DIR.url; its port stays the same from one
// start to the next while that port is free.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/testkit/localpg"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "atis-devdb:", err)
	}
	os.Exit(code)
}

func run() (int, error) {
	dir := flag.String("dir", "", "keep the cluster in `DIR` (created on first use, fsync on, shared with other atis-devdb runs on DIR; URL written to DIR.url); default: a throwaway one")
	envName := flag.String("env", "DATABASE_URL", "`NAME` of the variable that receives the cluster's URL")
	database := flag.String("database", "atis", "database to create (if absent) and point the URL at")
	durable := flag.Bool("durable", false, "keep fsync and synchronous commit on even for a throwaway cluster (benchmarks: figures like production's)")
	var settings []string
	flag.Func("set", "a server setting `name=value`, no spaces; repeatable (-set shared_preload_libraries=pg_stat_statements)", func(s string) error {
		if !strings.Contains(s, "=") || strings.ContainsAny(s, " \t'\"") {
			return fmt.Errorf("want name=value without spaces or quotes, got %q", s)
		}
		settings = append(settings, s)
		return nil
	})
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		return 2, errors.New("no command given")
	}
	// Catch signals from now on: a Ctrl-C reaches the command through the
	// terminal's process group; we only wait for it and then stop the cluster.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cluster, err := localpg.Start(ctx, localpg.Options{Dir: *dir, Durable: *durable || *dir != "", Settings: settings})
	cancel()
	if err != nil {
		return 1, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "atis-devdb: stop cluster:", err)
		}
		if cluster.KeptRunning() {
			fmt.Fprintln(os.Stderr, "atis-devdb: PostgreSQL keeps running: another atis-devdb still uses it")
		}
	}()
	if err := createDatabase(cluster, *database); err != nil {
		return 1, err
	}
	url := cluster.DatabaseURL(*database)
	if *dir != "" {
		if err := announce(cluster, *dir, url); err != nil {
			return 1, err
		}
	}

	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), *envName+"="+url)
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM { // not from the terminal: pass it on
				_ = cmd.Process.Signal(sig)
			}
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit.ExitCode(), nil
			}
			if err != nil {
				return 1, err
			}
			return 0, nil
		}
	}
}

func createDatabase(cluster *localpg.Cluster, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return localpg.CreateDatabase(ctx, cluster.URL(), name)
}

// announce says where a kept cluster is: on stderr, and in DIR.url for
// other tools.
func announce(cluster *localpg.Cluster, dir, url string) error {
	file := filepath.Clean(dir) + ".url"
	if err := os.WriteFile(file, []byte(url+"\n"), 0o644); err != nil {
		return fmt.Errorf("write the URL to %s: %w", file, err)
	}
	how := "started"
	if cluster.Attached() {
		how = "already running (another atis-devdb's): joined, it stops when the last user exits"
	}
	fmt.Fprintf(os.Stderr, "atis-devdb: PostgreSQL %s at %s (also in %s; `make psql` opens it)\n", how, url, file)
	return nil
}
