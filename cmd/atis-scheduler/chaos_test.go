package main_test

// The chaos suite (issue 13): the real binary against a real PostgreSQL,
// under kill -9, a database outage, hostile providers and planted secrets.
// `go test` runs a short version of each scenario; ATIS_CHAOS=full (make
// test-chaos) runs the full durations.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/database"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/procstat"
)

// chaosFull selects the full durations of the chaos scenarios.
var chaosFull = os.Getenv("ATIS_CHAOS") == "full"

// chaosDuration is short under `go test`, full under ATIS_CHAOS=full.
func chaosDuration(short, full time.Duration) time.Duration {
	if chaosFull {
		return full
	}
	return short
}

// migratedURL is a fresh, empty database migrated by the binary itself, as
// an operator would (`atis-scheduler migrate`, then `run`).
func migratedURL(t *testing.T) string {
	t.Helper()
	url := dbtest.NewEmptyURL(t)
	res := run(t, []string{"DATABASE_URL=" + url}, "migrate")
	require.Equal(t, 0, res.code, "migrate: %s", res.stderr)
	return url
}

// observerPool is the test's own pool on url, named so that it is not
// counted among the daemon's sessions.
func observerPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	return dbtest.PoolWith(t, url, database.Options{ApplicationName: "atis-chaos-observer", MaxConns: 4})
}

// procStatusKB reads a field such as VmHWM or VmRSS, in kB, from
// /proc/<pid>/status; 0 when the process is gone.
func procStatusKB(pid int, field string) int64 { return procstat.StatusKB(pid, field) }

// alive reports whether the daemon process has not exited (a zombie not
// yet waited for has).
func (d *daemon) alive() bool {
	return d.cmd.ProcessState == nil && procstat.Running(d.cmd.Process.Pid)
}

// metric reads one unlabelled sample (e.g. go_goroutines) from /metrics.
func metric(addr, name string) (float64, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// readyz returns the status code of /readyz, 0 when it does not answer.
func readyz(addr string) int {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// poll calls cond every interval until it is true or timeout passes, and
// reports whether it became true.
func poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
