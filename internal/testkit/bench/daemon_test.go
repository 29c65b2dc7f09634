package bench_test

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// daemon is the real binary, started with its default settings: only
// DATABASE_URL and ATIS_HTTP_ADDR=127.0.0.1:0 are set.
type daemon struct {
	cmd  *exec.Cmd
	pid  int
	addr string // the HTTP listener, from the "ready" line

	mu   sync.Mutex
	tail []string // the last lines it logged, for failure messages
	done chan struct{}
}

// startDaemon starts `atis-scheduler run` on databaseURL and waits up to a
// minute for its "ready" line. It is killed when the benchmark ends if it
// was not stopped.
func startDaemon(b *testing.B, databaseURL string) *daemon {
	b.Helper()
	cmd := exec.Command(binary, "run")
	cmd.Env = []string{"DATABASE_URL=" + databaseURL, "ATIS_HTTP_ADDR=127.0.0.1:0"}
	stderr, err := cmd.StderrPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	d := &daemon{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.tail = append(d.tail, line)
			if len(d.tail) > 30 {
				d.tail = d.tail[1:]
			}
			d.mu.Unlock()
			var rec struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "ready" {
				select {
				case ready <- rec.HTTPAddr:
				default:
				}
			}
		}
	}()
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	select {
	case d.addr = <-ready:
	case <-d.done:
		b.Fatalf("atis-scheduler exited before ready:\n%s", d.lastLines())
	case <-time.After(time.Minute):
		b.Fatalf("atis-scheduler not ready after a minute:\n%s", d.lastLines())
	}
	return d
}

func (d *daemon) lastLines() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// stop sends SIGINT and waits up to a minute for the exit.
func (d *daemon) stop(b *testing.B) {
	b.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		require.NoError(b, err, "atis-scheduler's exit:\n%s", d.lastLines())
	case <-time.After(time.Minute):
		b.Fatalf("atis-scheduler did not exit a minute after SIGINT:\n%s", d.lastLines())
	}
}

// alive reports whether the process still runs.
func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// observerPool is the benchmark's own small pool on databaseURL, named so
// that its sessions are told apart from the daemon's.
func observerPool(b *testing.B, databaseURL string) *pgxpool.Pool {
	b.Helper()
	return dbtest.PoolWith(b, databaseURL, database.Options{ApplicationName: "atis-bench-observer", MaxConns: 4})
}
