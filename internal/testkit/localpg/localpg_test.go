package localpg_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/localpg"
)

const childEnv = "LOCALPG_TEST_CHILD"

// TestReaperStopsTheClusterOfAKilledProcess: a test process killed with
// SIGKILL cannot run its cleanup, yet must leave no server behind.
func TestReaperStopsTheClusterOfAKilledProcess(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		c, err := localpg.Start(context.Background(), localpg.Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(c.Dir())
		select {} // wait to be killed
	}
	t.Parallel()

	child := exec.Command(os.Args[0], "-test.run=^TestReaperStopsTheClusterOfAKilledProcess$")
	child.Env = append(os.Environ(), childEnv+"=1")
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	dir := strings.TrimSpace(line)
	require.DirExists(t, dir, line)
	pidLine, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	require.NoError(t, err)
	serverPID, err := strconv.Atoi(strings.SplitN(string(pidLine), "\n", 2)[0])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(serverPID, 0), "server runs")

	require.NoError(t, child.Process.Kill())
	_ = child.Wait()

	require.Eventually(t, func() bool {
		_, statErr := os.Stat(dir)
		return errors.Is(syscall.Kill(serverPID, 0), syscall.ESRCH) && errors.Is(statErr, os.ErrNotExist)
	}, 30*time.Second, 100*time.Millisecond, "server %d and dir %s must be gone", serverPID, dir)
}

func TestStartStop(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	// Not t.TempDir(): its parents are private to us, and as root the server
	// runs as the postgres user, who must reach the directory.
	parent, err := os.MkdirTemp("", "localpg-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(parent, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	dir := filepath.Join(parent, "pg")
	c, err := localpg.Start(ctx, localpg.Options{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, localpg.CreateDatabase(ctx, c.URL(), "atis"))
	require.NoError(t, localpg.CreateDatabase(ctx, c.URL(), "atis"), "idempotent")
	conn, err := pgx.Connect(ctx, c.DatabaseURL("atis"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	require.NoError(t, c.Stop(ctx))
	require.NoError(t, c.Stop(ctx), "stopping twice is fine")

	// A cluster in a given dir persists: started again, the data is there.
	c, err = localpg.Start(ctx, localpg.Options{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(ctx) })
	conn, err = pgx.Connect(ctx, c.DatabaseURL("atis"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT id FROM kept").Scan(&v))
	require.Equal(t, 42, v)
}

// keptDir returns a directory for a kept cluster that the postgres user can
// reach when the tests run as root (t.TempDir()'s parents are private).
func keptDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "localpg-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(parent, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	return filepath.Join(parent, "pg")
}

// serverPID is the postmaster's pid, or 0 when none runs in dir.
func serverPID(t *testing.T, dir string) int {
	t.Helper()
	pid, err := localpg.ServerPID(dir)
	require.NoError(t, err)
	return pid
}

// TestKeptClusterIsShared: a second Start on a running kept cluster joins
// it (same URL, same server) instead of restarting it under the first
// user's connections, and the server stops only when its last user stops,
// in either order.
func TestKeptClusterIsShared(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name       string
		firstStops bool
	}{{"SecondLeavesFirst", false}, {"FirstLeavesFirst", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			ctx := context.Background()
			dir := keptDir(t)
			first, err := localpg.Start(ctx, localpg.Options{Dir: dir})
			require.NoError(t, err)
			t.Cleanup(func() { _ = first.Stop(ctx) })
			require.False(t, first.Attached())
			pid := serverPID(t, dir)
			conn, err := pgx.Connect(ctx, first.URL())
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close(ctx) })

			second, err := localpg.Start(ctx, localpg.Options{Dir: dir})
			require.NoError(t, err)
			t.Cleanup(func() { _ = second.Stop(ctx) })
			require.True(t, second.Attached())
			require.Equal(t, first.URL(), second.URL())
			require.Equal(t, pid, serverPID(t, dir), "the same server, not a restarted one")

			leaving, staying := second, first
			if tt.firstStops {
				leaving, staying = first, second
			}
			require.NoError(t, leaving.Stop(ctx))
			require.True(t, leaving.KeptRunning())
			var one int
			require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one), "the connection survives the other user's exit")
			require.Equal(t, pid, serverPID(t, dir))

			require.NoError(t, staying.Stop(ctx))
			require.False(t, staying.KeptRunning())
			require.Zero(t, serverPID(t, dir), "the last user stops the server")
			_, err = pgx.Connect(ctx, first.URL())
			require.Error(t, err, "nothing answers on the URL any more")
		})
	}
}

// TestKeptClusterKeepsItsPort: a kept cluster comes back on the port it had,
// so that its URL (in .local/postgres.url, in a daemon's environment) stays
// right across restarts.
func TestKeptClusterKeepsItsPort(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	dir := keptDir(t)
	c, err := localpg.Start(ctx, localpg.Options{Dir: dir})
	require.NoError(t, err)
	url := c.URL()
	require.NoError(t, c.Stop(ctx))

	c, err = localpg.Start(ctx, localpg.Options{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(ctx) })
	require.False(t, c.Attached())
	require.Equal(t, url, c.URL())
}
