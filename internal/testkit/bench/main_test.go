package bench_test

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/internal/testkit/benchtable"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// binary is the atis-scheduler built for this run from the working tree.
var binary string

// scale is ATIS_BENCH_SCALE: every count and duration is multiplied by it.
var scale = 1.0

// table holds this process's rows, printed when every benchmark has run.
var table struct {
	sync.Mutex
	rows []benchtable.Row
}

func TestMain(m *testing.M) {
	if s := os.Getenv("ATIS_BENCH_SCALE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || v > 1 {
			fmt.Fprintf(os.Stderr, "ATIS_BENCH_SCALE=%q: want a number in (0, 1]\n", s)
			os.Exit(2)
		}
		scale = v
	}
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run()) // no benchmark asked for (make test): nothing to build
	}
	dir, err := os.MkdirTemp("", "atis-bench-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "atis-scheduler")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", binary, "github.com/atis-edu/atis-scheduler/cmd/atis-scheduler").CombinedOutput()
	cancel()
	if err != nil {
		panic(fmt.Sprintf("build atis-scheduler: %v\n%s", err, out))
	}
	code := dbtest.Run(m)
	_ = os.RemoveAll(dir)
	printTable()
	os.Exit(code)
}

// addRows records rows for the final table.
func addRows(rows ...benchtable.Row) {
	table.Lock()
	defer table.Unlock()
	table.rows = append(table.rows, rows...)
}

// printTable prints the rows of other packages' benchmarks, then ours, as
// one markdown table, when there is anything to print.
func printTable() {
	earlier, err := benchtable.ReadFile()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	table.Lock()
	rows := append(earlier, table.rows...)
	table.Unlock()
	slices.SortStableFunc(rows, func(a, b benchtable.Row) int { return cmp.Compare(rank(a), rank(b)) })
	if len(rows) == 0 {
		return
	}
	fmt.Printf("\n## make bench, %s UTC, %d CPUs, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), runtime.Version())
	if scale != 1 {
		fmt.Printf("**ATIS_BENCH_SCALE=%g: counts and durations scaled; these are not the issue's figures.**\n\n", scale)
	}
	benchtable.Markdown(os.Stdout, rows)
}

// scenarioOrder is the order of issue 10's table; other rows go last.
var scenarioOrder = []string{"steady", "burst", "lived-in", "replicas", "worker path", "sync import", "retention", "idle"}

// rank places a row in scenarioOrder by the start of its scenario.
func rank(r benchtable.Row) int {
	for i, prefix := range scenarioOrder {
		if strings.HasPrefix(r.Scenario, prefix) {
			return i
		}
	}
	return len(scenarioOrder)
}

// scaled returns n times the scale, at least least.
func scaled(n int, least int) int { return max(least, int(float64(n)*scale)) }

// scaledDuration returns d times the scale, at least least.
func scaledDuration(d, least time.Duration) time.Duration {
	return max(least, time.Duration(float64(d)*scale))
}
