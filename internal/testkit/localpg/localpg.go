// Package localpg starts a private PostgreSQL cluster from the server binaries
// installed on this machine: for tests (a throwaway cluster in a temp dir) and
// for `make run` (a cluster that persists under .local/).
//
// The cluster listens on loopback only, with trust authentication, and is not
// meant for production. A kept cluster (Options.Dir) is shared: a second
// process starting it while it runs joins it on the same URL, and only the
// last process to stop it stops the server. As root, the server binaries run as the `postgres`
// user, since PostgreSQL refuses to run as root.
package localpg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoServer is returned when no PostgreSQL server binaries can be found.
var ErrNoServer = errors.New("localpg: no PostgreSQL server binaries (initdb, pg_ctl) found: install the postgresql package")

// Options configures a cluster. The zero value is a throwaway cluster with
// fsync off in a new temp dir.
type Options struct {
	// Dir is where the cluster lives (data in Dir/data, socket, log, port
	// and locks beside it). An existing cluster there is reused; one already
	// running (another process's) is joined as it is, whatever the other
	// options say. Defaults to a new temp dir that Stop removes.
	Dir string

	// Durable keeps fsync on. Defaults to false: fast, and fine for data that
	// a crash may lose.
	Durable bool

	// MaxConnections is the server's max_connections. Defaults to 300, enough
	// for many parallel tests that each run a River client.
	MaxConnections int

	// Port is the loopback TCP port. Defaults to the port a kept cluster
	// had last time when it is free, else a free port picked at start.
	Port int

	// Settings are more server settings, each "name=value" with no spaces
	// (shared_preload_libraries=pg_stat_statements for a profile, say).
	Settings []string
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	bin       string
	dir       string
	ephemeral bool
	port      int
	cred      *syscall.Credential

	attached    bool     // the server was running already: joined, not started
	users       *os.File // a kept cluster's users.lock, held shared while in use
	keptRunning bool     // Stop left the server to its other users
}

// Start initialises (if needed) and starts a cluster, or joins the server
// another process runs on the same Dir. The returned cluster's URL connects
// to its `postgres` database as the `postgres` superuser.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: opts.Dir, port: opts.Port}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "atis-pg-"); err != nil {
			return nil, fmt.Errorf("localpg: create temp dir: %w", err)
		}
		c.ephemeral = true
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	if c.cred, err = serverCredential(); err != nil {
		return nil, err
	}
	if err := c.start(ctx, opts); err != nil {
		if c.ephemeral {
			_ = os.RemoveAll(c.dir)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	// Parents stay reachable (the server may run as another user); the
	// cluster's own directory is private to it.
	if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
		return fmt.Errorf("localpg: create %s: %w", filepath.Dir(c.dir), err)
	}
	if err := os.Mkdir(c.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("localpg: create %s: %w", c.dir, err)
	}
	if err := c.chown(c.dir); err != nil {
		return err
	}
	if !c.ephemeral {
		control, err := lockFile(ctx, filepath.Join(c.dir, controlLockFile), syscall.LOCK_EX)
		if err != nil {
			return err
		}
		defer control.Close()
		if err := c.join(ctx); err != nil {
			return err
		}
		if err := c.startOrAttach(ctx, opts); err != nil {
			_ = c.users.Close()
			c.users = nil
			return err
		}
		return nil
	}
	return c.startServer(ctx, opts)
}

// startOrAttach joins the server running on the kept cluster's data dir, or
// starts one; control.lock is held.
func (c *Cluster) startOrAttach(ctx context.Context, opts Options) error {
	port, err := c.runningPort(ctx)
	if err != nil {
		return err
	}
	if port != 0 {
		c.port, c.attached = port, true
		return c.waitReady(ctx)
	}
	if c.port == 0 {
		c.port = c.rememberedPort()
	}
	if err := c.startServer(ctx, opts); err != nil {
		return err
	}
	return c.rememberPort()
}

// startServer initialises the data dir if needed and starts the server on
// c.port, or on a free port when c.port is 0.
func (c *Cluster) startServer(ctx context.Context, opts Options) error {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.run(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
			"--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"); err != nil {
			return err
		}
	}
	fixed := opts.Port != 0
	var lastErr error
	for range 5 {
		port := c.port
		if port == 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			port = p
		}
		settings := []string{
			"-p " + strconv.Itoa(port),
			"-c listen_addresses=127.0.0.1",
			"-c unix_socket_directories=" + c.dir,
			"-c max_connections=" + strconv.Itoa(cmp.Or(opts.MaxConnections, 300)),
		}
		if !opts.Durable {
			settings = append(settings, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
		}
		for _, s := range opts.Settings {
			settings = append(settings, "-c "+s)
		}
		lastErr = c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.dir, "server.log"),
			"-o", strings.Join(settings, " "), "-w", "-t", "60", "start")
		if lastErr == nil {
			c.port = port
			if c.ephemeral {
				c.startReaper()
			}
			return nil
		}
		if fixed { // no point in retrying
			break
		}
		c.port = 0 // a remembered port taken meanwhile: pick another
	}
	return fmt.Errorf("%w (server log: %s)", lastErr, c.logTail())
}

// URL is the connection string of the cluster's `postgres` database.
func (c *Cluster) URL() string { return c.DatabaseURL("postgres") }

// DatabaseURL is the connection string of database name on this cluster.
func (c *Cluster) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Dir is the directory the cluster lives in.
func (c *Cluster) Dir() string { return c.dir }

// Attached reports whether Start found the server already running (another
// process's) and joined it rather than starting it.
func (c *Cluster) Attached() bool { return c.attached }

// KeptRunning reports whether Stop left the server running because other
// processes still use it.
func (c *Cluster) KeptRunning() bool { return c.keptRunning }

// Stop ends this process's use of the cluster. A throwaway cluster is shut
// down (fast mode) and its directory removed; a kept one is shut down only
// when no other process uses it any more. It is safe to call more than once.
func (c *Cluster) Stop(ctx context.Context) error {
	if c == nil {
		return nil
	}
	if !c.ephemeral {
		return c.leave(ctx)
	}
	err := c.stopServer(ctx)
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("localpg: remove %s: %w", c.dir, rmErr)
	}
	return err
}

// stopServer shuts the server down (fast mode) if it runs.
func (c *Cluster) stopServer(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err != nil {
		return nil
	}
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "stop", "-m", "fast", "-w", "-t", "60")
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// startReaper starts a detached watcher that stops the server and removes its
// directory if this process dies without calling Stop (a panicking test, a
// kill -9), so that no server is ever left behind.
func (c *Cluster) startReaper() {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
pid=$(head -n 1 %[2]q/data/postmaster.pid 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
rm -rf %[2]q`, os.Getpid(), c.dir)
	cmd := exec.Command("/bin/sh", "-c", script)
	// Its own session: a Ctrl-C to our process group must not kill the reaper
	// first. No stdout/stderr: `go test` waits for every holder of its pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// It outlives us by design: release it rather than wait for it.
	if err := cmd.Start(); err == nil {
		_ = cmd.Process.Release()
	}
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	// Own process group: the server it starts must not receive the terminal's
	// Ctrl-C before the daemon using it has shut down cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, os.ErrPermission) && c.cred != nil {
		return fmt.Errorf("localpg: %s: %w: the postgres user cannot reach %s (every parent directory needs o+x)", name, err, c.dir)
	}
	if err != nil {
		return fmt.Errorf("localpg: %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("localpg: chown %s to postgres: %w", path, err)
	}
	return nil
}

func (c *Cluster) logTail() string {
	f, err := os.Open(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return "none"
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// FindBinDir returns the directory holding initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin, else the directory of initdb on PATH.
func FindBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
		}
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// serverCredential returns the credential to run the server binaries with:
// nil when not root, the `postgres` user's when root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("localpg: running as root needs a `postgres` user to run the server as: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// portFree reports whether port can be listened on at loopback now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localpg: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CreateDatabase creates database name on the server at adminURL unless it
// exists.
func CreateDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("localpg: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: a process sharing the cluster made it meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg: create database %s: %w", name, err)
	}
	return nil
}
