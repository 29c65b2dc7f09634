package dbtest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// StartDaemon runs binary (see MainWithBinary) as `run --log-format json`
// on a loopback port, with env added, and returns its HTTP address once it
// logs ready. It is killed when the test ends, and its output logged if
// the test failed.
func StartDaemon(tb testing.TB, binary string, env ...string) string {
	tb.Helper()
	cmd := exec.Command(binary, "run", "--log-format", "json")
	cmd.Env = append([]string{"ATIS_HTTP_ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH")}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatalf("dbtest: daemon stderr: %v", err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("dbtest: start the daemon: %v", err)
	}
	var output strings.Builder
	addr := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(io.TeeReader(stderr, &output))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "ready" {
				addr <- rec.HTTPAddr
			}
		}
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("daemon output:\n%s", output.String())
		}
	})
	select {
	case a := <-addr:
		return a
	case <-done:
		tb.Fatalf("daemon exited before it was ready:\n%s", output.String())
	case <-time.After(30 * time.Second):
		tb.Fatal("daemon not ready within 30s")
	}
	return ""
}
