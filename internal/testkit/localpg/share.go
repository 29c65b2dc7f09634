package localpg

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
	"time"

	"github.com/jackc/pgx/v5"
)

// A kept cluster (Options.Dir) may serve several processes at once: two
// `make run`s, a `make psql` beside a daemon. Every process using it holds a
// shared flock on users.lock for as long as it does; whoever starts, joins
// or leaves the cluster first takes control.lock exclusively, so that these
// steps never interleave. The process that leaves last (the one whose shared
// lock can become exclusive) stops the server. Locks die with their process:
// a killed user neither keeps the cluster alive for ever nor blocks others.
const (
	controlLockFile = "control.lock"
	usersLockFile   = "users.lock"
	portFile        = "port"
)

// lockPoll is how often a busy lock is tried again.
const lockPoll = 50 * time.Millisecond

// lockFile opens path (creating it) and flocks it with how (LOCK_SH or
// LOCK_EX), waiting while another process holds a conflicting lock, until
// ctx is done.
func lockFile(ctx context.Context, path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localpg: open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("localpg: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("localpg: wait for lock %s (another atis-devdb is starting or stopping this cluster): %w", path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// join makes this process a user of the kept cluster; control.lock must be
// held.
func (c *Cluster) join(ctx context.Context) error {
	users, err := lockFile(ctx, filepath.Join(c.dir, usersLockFile), syscall.LOCK_SH)
	if err != nil {
		return err
	}
	c.users = users
	return nil
}

// leave ends this process's use of the kept cluster and reports whether it
// was the last user, in which case the server is stopped (still under
// control.lock, so that nobody joins a server on its way down).
func (c *Cluster) leave(ctx context.Context) error {
	if c.users == nil {
		return nil // left already, or never joined
	}
	control, err := lockFile(ctx, filepath.Join(c.dir, controlLockFile), syscall.LOCK_EX)
	if err != nil {
		_ = c.users.Close()
		c.users = nil
		return fmt.Errorf("%w: the server keeps running", err)
	}
	defer control.Close()
	// Exclusive only when no other process holds users.lock. A failed
	// conversion may drop our shared lock: we are leaving anyway.
	last := syscall.Flock(int(c.users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	_ = c.users.Close()
	c.users = nil
	if !last {
		c.keptRunning = true
		return nil
	}
	return c.stopServer(ctx)
}

// runningPort returns the port of a server already running on the data dir,
// or 0 when none runs.
func (c *Cluster) runningPort(ctx context.Context) (int, error) {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	// pg_ctl status exits 0 when the postmaster of postmaster.pid is alive,
	// 3 when the file is stale.
	err := c.run(ctx, "pg_ctl", "status", "-D", c.dataDir())
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	port, err := pidFilePort(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	return port, nil
}

// pidFilePort reads the port from a postmaster.pid (its fourth line).
func pidFilePort(path string) (int, error) {
	line, err := pidFileLine(path, 4)
	if err != nil {
		return 0, fmt.Errorf("localpg: read the running server's port: %w", err)
	}
	port, err := strconv.Atoi(line)
	if err != nil || port <= 0 {
		return 0, fmt.Errorf("localpg: %s: line 4 is not a port: %q", path, line)
	}
	return port, nil
}

// ServerPID is the pid of the server running in a kept cluster's
// directory (postmaster.pid's first line), 0 when none runs there.
func ServerPID(dir string) (int, error) {
	line, err := pidFileLine(filepath.Join(dir, "data", "postmaster.pid"), 1)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(line)
}

// pidFileLine returns line n (from 1) of a postmaster.pid, trimmed.
func pidFileLine(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for i := 1; s.Scan(); i++ {
		if i == n {
			return strings.TrimSpace(s.Text()), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s has no line %d (the server is still starting?)", path, n)
}

// waitReady waits until the server on c.port answers, for at most a minute.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL())
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localpg: a server runs on %s (port %d) but does not answer: %w; stop it with `pg_ctl stop -D %s`",
				c.dataDir(), c.port, err, c.dataDir())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rememberedPort is the port the kept cluster listened on last time, if it
// is free now: a stable URL across restarts.
func (c *Cluster) rememberedPort() int {
	b, err := os.ReadFile(filepath.Join(c.dir, portFile))
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !portFree(port) {
		return 0
	}
	return port
}

func (c *Cluster) rememberPort() error {
	if err := os.WriteFile(filepath.Join(c.dir, portFile), []byte(strconv.Itoa(c.port)+"\n"), 0o644); err != nil {
		return fmt.Errorf("localpg: remember the port: %w", err)
	}
	return nil
}
