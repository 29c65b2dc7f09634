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
