package main_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// proxy forwards TCP to a database and can cut it off, as a network or a
// database restart would.
type proxy struct {
	listener net.Listener
	target   string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{listener: l, target: target}
	t.Cleanup(func() { l.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *proxy) serve() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			client.Close()
			continue
		}
		// Each connection dials on its own: dialled one after another, the
		// connections a daemon retried during an outage queued behind each
		// other after it, and the daemon saw the database return seconds late
		// (the outage test failed so on a loaded machine).
		go p.forward(client)
	}
}

func (p *proxy) forward(client net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.Dial("tcp", target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	if p.down { // went down while dialling
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns = append(p.conns, client, server)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(server, client); server.Close() }()
	go func() { _, _ = io.Copy(client, server); client.Close() }()
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// via returns databaseURL going through the proxy.
func (p *proxy) via(t *testing.T, databaseURL string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	p.mu.Lock()
	p.target = u.Host
	p.mu.Unlock()
	u.Host = p.listener.Addr().String()
	return u.String()
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	dbURL := dbtest.NewURL(t)
	_, err := dbtest.Pool(t, dbURL).Exec(ctx, `INSERT INTO scheduled_jobs (name, job_class, cron_expression) VALUES ('tick', 'noop', '* * * * * *')`)
	require.NoError(t, err)
	p := newProxy(t, "")
	d := startDaemon(t, "DATABASE_URL="+p.via(t, dbURL), "ATIS_SOFT_STOP_TIMEOUT=2s", "ATIS_POLL_INTERVAL=1s")
	addr := waitFor(t, d.lines, "ready")["http_addr"].(string)

	code, body := get(t, addr, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	code, body = get(t, addr, "/readyz")
	require.Equal(t, http.StatusOK, code, body)

	// Metrics: runs of the every-second schedule are counted.
	require.Eventually(t, func() bool {
		_, body := get(t, addr, "/metrics")
		return strings.Contains(body, `atis_scheduler_runs_finished_total{job_class="noop",status="completed"}`)
	}, 15*time.Second, 100*time.Millisecond)
	_, body = get(t, addr, "/metrics")
	for _, want := range []string{
		`atis_scheduler_build_info{go_version="go`,
		`atis_scheduler_runs_enqueued_total{job_class="noop"}`,
		`atis_scheduler_fire_lag_enqueue_seconds_count{job_class="noop"}`,
		`atis_scheduler_fire_lag_start_seconds_count{job_class="noop"}`,
		`atis_scheduler_run_duration_seconds_count{job_class="noop"}`,
		`atis_scheduler_queue_jobs{state="`,
		`atis_scheduler_db_pool_connections{state="max"}`,
		`process_resident_memory_bytes`,
	} {
		require.True(t, strings.Contains(body, want), "/metrics lacks %s", want)
	}

	// The database goes away: not ready, still alive; it returns: ready.
	p.setDown(true)
	require.Eventually(t, func() bool {
		code, body := get(t, addr, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "not ready: database does not answer")
	}, 15*time.Second, 100*time.Millisecond)
	// The answer names no connection detail, whichever way the driver
	// fails (a dead connection, then failed reconnects): the listener may be
	// public.
	u, err := url.Parse(p.via(t, dbURL))
	require.NoError(t, err)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, body = get(t, addr, "/readyz")
		for _, detail := range []string{u.User.Username(), u.Host, u.Port(), strings.TrimPrefix(u.Path, "/"), "user=", "database="} {
			require.NotContains(t, body, detail)
		}
	}
	code, _ = get(t, addr, "/healthz")
	require.Equal(t, http.StatusOK, code)
	p.setDown(false)
	require.Eventually(t, func() bool {
		code, _ := get(t, addr, "/readyz")
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond)

	d.stop(t)
}

// TestSystemdNotify reads what the daemon tells systemd on NOTIFY_SOCKET.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()

	dir, err := os.MkdirTemp("", "notify-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	waitMsg := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q on NOTIFY_SOCKET", want)
			}
		}
	}

	d := startDaemon(t, "DATABASE_URL="+dbtest.NewURL(t), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000", "ATIS_POLL_INTERVAL=1s")
	waitMsg("READY=1")
	waitMsg("WATCHDOG=1")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	waitMsg("STOPPING=1")
	require.NoError(t, d.cmd.Wait())
}
