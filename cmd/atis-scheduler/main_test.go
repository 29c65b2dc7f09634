package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/testkit/syncbuf"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/cli"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

var binary string

func TestMain(m *testing.M) { dbtest.MainWithBinary(m, &binary) }

type result struct {
	code           int
	stdout, stderr string
}

// run runs the binary to completion with exactly env (plus PATH).
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func TestRunRefusesToStart(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		env      func(t *testing.T) []string
		wantCode int
		wantLine string
	}{
		{
			name:     "NoDatabaseURL",
			env:      func(*testing.T) []string { return nil },
			wantCode: cli.ExitConfig,
			wantLine: "atis-scheduler: DATABASE_URL is not set",
		},
		{
			name:     "UnparseableDatabaseURL",
			env:      func(*testing.T) []string { return []string{"DATABASE_URL=postgres://atis:hunter2@host:port:x/%zz"} },
			wantCode: cli.ExitConfig,
			wantLine: "atis-scheduler: database: DATABASE_URL is not a valid PostgreSQL connection string",
		},
		{
			name: "PortOutOfRange",
			env: func(*testing.T) []string {
				return []string{"DATABASE_URL=postgres://x@y/z", "ATIS_HTTP_ADDR=127.0.0.1:99999"}
			},
			wantCode: cli.ExitConfig,
			wantLine: `atis-scheduler: ATIS_HTTP_ADDR="127.0.0.1:99999" is not a host:port listen address`,
		},
		{
			name:     "ZeroWorkers",
			env:      func(*testing.T) []string { return []string{"DATABASE_URL=postgres://x@y/z", "ATIS_WORKERS=0"} },
			wantCode: cli.ExitConfig,
			wantLine: "atis-scheduler: ATIS_WORKERS=0 is out of range: it must be between 1 and 10000",
		},
		{
			name: "UnreachableDatabase",
			env: func(*testing.T) []string {
				return []string{"DATABASE_URL=postgres://atis:hunter2@127.0.0.1:1/atis?connect_timeout=3"}
			},
			wantCode: cli.ExitUnreachable,
			wantLine: "atis-scheduler: database: cannot connect to 127.0.0.1:1/atis: connection refused: check that PostgreSQL is running and DATABASE_URL is right",
		},
		{
			name:     "UnmigratedDatabase",
			env:      func(t *testing.T) []string { return []string{"DATABASE_URL=" + dbtest.NewEmptyURL(t)} },
			wantCode: cli.ExitNotMigrated,
			wantLine: "atis-scheduler: migrations: database schema is not ready: missing tables: users, institutions",
		},
		{
			name:     "BadSetting",
			env:      func(*testing.T) []string { return []string{"DATABASE_URL=postgres://x@y/z", "ATIS_WORKERS=lots"} },
			wantCode: cli.ExitConfig,
			wantLine: `atis-scheduler: ATIS_WORKERS="lots" is not a valid whole number`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			res := run(t, append([]string{"ATIS_HTTP_ADDR=127.0.0.1:0"}, tt.env(t)...), "run")
			require.Equal(t, tt.wantCode, res.code, res.stderr)
			lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
			require.Len(t, lines, 1, "one clear line, got:\n%s", res.stderr)
			require.True(t, strings.HasPrefix(lines[0], tt.wantLine), "got %q", lines[0])
			require.NotContains(t, res.stderr, "hunter2")
		})
	}
}

// daemon is a running atis-scheduler process, its JSON log lines, and
// everything it wrote to stdout and stderr.
type daemon struct {
	cmd    *exec.Cmd
	lines  chan map[string]any
	output *syncbuf.Buffer
}

func startDaemon(t *testing.T, env ...string) *daemon {
	t.Helper()
	return startCommand(t, exec.Command(binary, "run", "--log-format", "json"), env...)
}

// startCommand starts cmd, a daemon started some other way (under
// unshare, say), with env.
func startCommand(t *testing.T, cmd *exec.Cmd, env ...string) *daemon {
	t.Helper()
	cmd.Env = append([]string{"ATIS_HTTP_ADDR=127.0.0.1:0"}, env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	d := &daemon{cmd: cmd, lines: make(chan map[string]any, 1000), output: &syncbuf.Buffer{}}
	cmd.Stdout = d.output
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() { // what the daemon said is the first thing a reader of a CI failure needs
			out := d.output.String()
			if len(out) > 16<<10 {
				out = "…" + out[len(out)-16<<10:]
			}
			t.Logf("daemon (pid %d) output:\n%s", cmd.Process.Pid, out)
		}
	})
	go func() {
		defer close(d.lines)
		sc := bufio.NewScanner(io.TeeReader(stderr, d.output))
		sc.Buffer(nil, 1<<20)
		defer func() { _, _ = io.Copy(d.output, stderr) }() // a line too long: keep draining
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case d.lines <- rec:
				default: // nobody reads: drop
				}
			}
		}
	}()
	return d
}

// stop sends SIGINT and requires a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGINT))
	waitFor(t, d.lines, "stopped")
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit status after SIGINT")
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not exit after SIGINT")
	}
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	t.Parallel()

	d := startDaemon(t, "DATABASE_URL="+dbtest.NewURL(t), "ATIS_SOFT_STOP_TIMEOUT=5s")
	ready := waitFor(t, d.lines, "ready")
	addr, _ := ready["http_addr"].(string)
	require.NotEmpty(t, addr)

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
	}
	health := run(t, []string{"ATIS_HTTP_ADDR=" + addr}, "healthcheck")
	require.Equal(t, 0, health.code, health.stderr)
	require.Equal(t, "ready\n", health.stdout)

	d.stop(t)
	health = run(t, []string{"ATIS_HTTP_ADDR=" + addr}, "healthcheck")
	require.Equal(t, cli.ExitFailure, health.code)
	require.Contains(t, health.stderr, "atis-scheduler: not ready: http://"+addr+"/readyz")
}

// TestKilledDaemonIsReconciledOnRestart kills a daemon with SIGKILL while it
// works a run; the next daemon on this host must close that attempt, run
// the job again, and on its own SIGINT put the interrupted run back in line.
func TestKilledDaemonIsReconciledOnRestart(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	_, err := pool.Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, interval_minutes, parameters, max_attempts, retry_delay_minutes)
		VALUES ('slow', 'sql', 60, '{"statement": "SELECT pg_sleep(30)"}', 3, 0)`)
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + url, "ATIS_ENABLE_SQL_JOBS=true", "ATIS_SOFT_STOP_TIMEOUT=1s"}
	status := func(attempt int) string {
		var s string
		_ = pool.QueryRow(ctx, "SELECT l.status FROM job_logs l JOIN scheduled_jobs j ON j.id = l.scheduled_job_id WHERE j.name = 'slow' AND l.attempt = $1", attempt).Scan(&s)
		return s
	}

	first := startDaemon(t, env...)
	require.Eventually(t, func() bool { return status(1) == "processing" }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, first.cmd.Process.Kill())
	_ = first.cmd.Wait()

	second := startDaemon(t, env...)
	waitFor(t, second.lines, "ready")
	if !assert.Eventually(t, func() bool { return status(2) == "processing" }, 20*time.Second, 20*time.Millisecond,
		"the killed run is handed back and runs again") {
		t.Logf("killed pid %d; instances: %v", first.cmd.Process.Pid, column(t, pool,
			`SELECT id || ' pid ' || pid || ' key ' || coalesce(host_key, '-') || ' beat ' || (now() - heartbeat_at)::text FROM scheduler_instances`))
		t.Logf("river_job: %v", column(t, pool, `SELECT id || ' ' || state || ' attempt ' || attempt || ' by ' || attempted_by::text || ' ' || errors::text FROM river_job`))
		t.Logf("job_logs: %v", column(t, pool, `SELECT attempt || ' ' || status || ' ' || coalesce(error_message, '') FROM job_logs`))
		t.FailNow()
	}
	var msg string
	require.NoError(t, pool.QueryRow(ctx, "SELECT l.error_message FROM job_logs l JOIN scheduled_jobs j ON j.id = l.scheduled_job_id WHERE j.name = 'slow' AND l.attempt = 1").Scan(&msg))
	require.Contains(t, msg, "the process working it stopped")
	require.True(t, dbtest.Scalar[bool](t, pool, "SELECT is_running FROM scheduled_jobs WHERE name = 'slow'"))

	second.stop(t)
	require.Equal(t, "queued", status(2), "interrupted by the shutdown: back in line, not failed")
	require.Equal(t, "available", dbtest.Scalar[string](t, pool, "SELECT state::text FROM river_job WHERE kind = 'sql'"))
	require.Zero(t, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM scheduler_instances"), "a clean stop deregisters")
}

func waitFor(t *testing.T, lines <-chan map[string]any, msg string) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case rec, ok := <-lines:
			require.True(t, ok, "daemon exited before logging %q", msg)
			if rec["msg"] == msg {
				return rec
			}
		case <-deadline:
			t.Fatalf("no %q log line within 30s", msg)
		}
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()

	t.Run("TwoProcessesAtOnceThenAgain", func(t *testing.T) {
		t.Parallel()

		env := []string{"DATABASE_URL=" + dbtest.NewEmptyURL(t)}
		results := make(chan result, 2)
		for range 2 {
			go func() { results <- run(t, env, "migrate") }()
		}
		applied := 0
		for range 2 {
			res := <-results
			require.Equal(t, 0, res.code, res.stderr)
			applied += strings.Count(res.stdout, "applied atis/00002_seed_db6_system_infrastructure.sql")
		}
		require.Equal(t, 1, applied, "the seed migration is applied by exactly one process")

		again := run(t, env, "migrate")
		require.Equal(t, 0, again.code, again.stderr)
		require.Equal(t, "schema is up to date\n", again.stdout)

		status := run(t, env, "migrate", "status")
		require.Equal(t, 0, status.code, status.stderr)
		require.Contains(t, status.stdout, "00003_seed_platform_tables.sql")
		require.NotRegexp(t, `\spending\n`, status.stdout)
	})
}

func TestVersion(t *testing.T) {
	t.Parallel()

	res := run(t, nil, "version")
	require.Equal(t, 0, res.code)
	require.Regexp(t, `^atis-scheduler \S+\n$`, res.stdout)
}
