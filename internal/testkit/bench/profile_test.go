package bench_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// EnvProfileDir names the directory where, when it is set, the benchmarks
// that run the real binary record its CPU profile with perf(1) while they
// measure it: <scenario>.perf.data, and <scenario>.txt with perf report's
// hottest symbols. The daemon itself serves no profiling endpoint. For the
// in-process scenarios use go test's -cpuprofile.
const EnvProfileDir = "ATIS_BENCH_PROFILE_DIR"

// profileDaemon starts recording pid's CPU for scenario when
// ATIS_BENCH_PROFILE_DIR is set; the returned function stops it and writes
// the report. Without the variable, or without perf, it does nothing.
func profileDaemon(b *testing.B, pid int, scenario string) (stop func()) {
	b.Helper()
	dir := os.Getenv(EnvProfileDir)
	if dir == "" {
		return func() {}
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Logf("%s is set but perf is not installed: no profile", EnvProfileDir)
		return func() {}
	}
	data := filepath.Join(dir, scenario+".perf.data")
	rec := exec.Command(perf, "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", data)
	if err := rec.Start(); err != nil {
		b.Logf("perf record: %v", err)
		return func() {}
	}
	return func() {
		_ = rec.Process.Signal(syscall.SIGINT)
		exited := make(chan error, 1)
		go func() { exited <- rec.Wait() }()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = rec.Process.Kill()
			<-exited
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, perf, "report", "-i", data, "--stdio", "--no-children",
			"--sort", "symbol", "-g", "none", "--percent-limit", "0.5").Output()
		if err != nil {
			b.Logf("perf report %s: %v", data, err)
			return
		}
		txt := filepath.Join(dir, scenario+".txt")
		if err := os.WriteFile(txt, out, 0o644); err != nil {
			b.Logf("write %s: %v", txt, err)
			return
		}
		fmt.Printf("  profile of the daemon during %s: %s (perf report -i %s)\n", scenario, txt, data)
	}
}
