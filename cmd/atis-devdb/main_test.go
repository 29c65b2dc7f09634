package main_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/internal/testkit/localpg"
	"github.com/atis-edu/atis-scheduler/internal/testkit/syncbuf"
)

// binary is atis-devdb built from this tree.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atis-devdb-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "atis-devdb")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build: %v\n%s", err, out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// keptDir returns a -dir for a kept cluster that the postgres user can
// reach when the tests run as root (t.TempDir()'s parents are private).
func keptDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "atis-devdb-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(parent, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	return filepath.Join(parent, "postgres")
}

// env is the environment of an atis-devdb run: ours, with the server's
// client tools (psql) first on PATH.
func env(t *testing.T) []string {
	t.Helper()
	bin, err := localpg.FindBinDir()
	require.NoError(t, err)
	return append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// serverPID is the postmaster's pid, or 0 when none runs in dir.
func serverPID(t *testing.T, dir string) int {
	t.Helper()
	pid, err := localpg.ServerPID(dir)
	require.NoError(t, err)
	return pid
}

// longRun is an atis-devdb whose command prints its DATABASE_URL and then
// lives until its stdin is closed: a `make run` that the test ends.
type longRun struct {
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	stderr *syncbuf.Buffer
	url    string
}

func startLongRun(t *testing.T, dir string) *longRun {
	t.Helper()
	r := &longRun{stderr: &syncbuf.Buffer{}}
	r.cmd = exec.Command(binary, "-dir", dir, "--", "sh", "-c", `echo "$DATABASE_URL"; exec cat >/dev/null`)
	r.cmd.Env = env(t)
	r.cmd.Stderr = r.stderr
	stdin, err := r.cmd.StdinPipe()
	require.NoError(t, err)
	r.stdin = stdin
	stdout, err := r.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	t.Cleanup(func() { _ = r.stdin.Close(); _ = r.cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "stderr: %s", r.stderr)
	r.url = strings.TrimSpace(line)
	// atis-devdb announced the URL before the command started; its copy
	// from the stderr pipe may lag behind the stdout we read.
	require.Eventually(t, func() bool { return strings.Contains(r.stderr.String(), r.url) }, 10*time.Second, 10*time.Millisecond,
		"stderr: %s", r.stderr)
	return r
}

// stop ends the command and returns atis-devdb's exit code.
func (r *longRun) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, r.stdin.Close())
	err := r.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("wait: %v", err)
	}
	return r.cmd.ProcessState.ExitCode()
}

// psql runs what `make psql` runs (atis-devdb -dir DIR -- psql
// "$DATABASE_URL") with sql on its stdin.
func psql(t *testing.T, dir, sql string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-dir", dir, "--", "sh", "-c", `exec psql -X -A -t "$DATABASE_URL"`)
	cmd.Env = env(t)
	cmd.Stdin = strings.NewReader(sql)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run: %v", err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestSecondRunJoinsTheFirst: a second atis-devdb on the -dir of a running
// one (a second `make run`, a `make psql`) joins the running server on the
// same URL instead of stopping it; the first one's connections keep
// working while the second starts and after it exits; the server stops
// when the last one exits.
func TestSecondRunJoinsTheFirst(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	dir := keptDir(t)
	first := startLongRun(t, dir)
	require.Contains(t, first.stderr.String(), "atis-devdb: PostgreSQL started at "+first.url)
	require.Contains(t, first.url, "/atis?")
	urlFile, err := os.ReadFile(dir + ".url")
	require.NoError(t, err)
	require.Equal(t, first.url+"\n", string(urlFile))
	pid := serverPID(t, dir)

	conn, err := pgx.Connect(ctx, first.url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	_, err = conn.Exec(ctx, `CREATE TABLE marker (note text); INSERT INTO marker VALUES ('written by the first run')`)
	require.NoError(t, err)

	out, errOut, code := psql(t, dir, "SELECT note FROM marker;\nSELECT current_setting('port');\n")
	require.Zero(t, code, errOut)
	port := strings.TrimPrefix(strings.SplitN(first.url, "/", 4)[2], "postgres@127.0.0.1:")
	require.Equal(t, "written by the first run\n"+port+"\n", out, "psql reaches the first run's database")
	require.Contains(t, errOut, "atis-devdb: PostgreSQL already running (another atis-devdb's): joined")
	require.Contains(t, errOut, first.url)
	require.Contains(t, errOut, "atis-devdb: PostgreSQL keeps running: another atis-devdb still uses it")

	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM marker").Scan(&n), "the first run's connection survives")
	require.Equal(t, 1, n)
	require.Equal(t, pid, serverPID(t, dir), "the same server")

	require.Zero(t, first.stop(t), first.stderr.String())
	require.Zero(t, serverPID(t, dir), "the last user stops the server")
	_, err = pgx.Connect(ctx, first.url)
	require.Error(t, err, "nothing answers on the URL any more")
}

// TestFirstRunLeavesTheServerToTheSecond: when the run that started the
// server exits first, the server keeps serving the one still running.
func TestFirstRunLeavesTheServerToTheSecond(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	dir := keptDir(t)
	first := startLongRun(t, dir)
	second := startLongRun(t, dir)
	require.Equal(t, first.url, second.url)
	require.Contains(t, second.stderr.String(), "already running (another atis-devdb's): joined")
	conn, err := pgx.Connect(ctx, second.url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })

	require.Zero(t, first.stop(t), first.stderr.String())
	require.Contains(t, first.stderr.String(), "PostgreSQL keeps running")
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one), "the second run's connection survives")

	require.Zero(t, second.stop(t), second.stderr.String())
	require.Zero(t, serverPID(t, dir))
}
