// Package benchtable collects the figures of `make bench` into one table.
//
// Each benchmark adds its rows; benchmarks in other packages (run earlier by
// `make bench`, in other processes) append theirs as JSON lines to the file
// named by ATIS_BENCH_TABLE, and internal/testkit/bench, run last, prints them with
// its own as one markdown table. Nothing here runs in the daemon.
package benchtable

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// EnvFile names the variable holding the file that rows are appended to.
const EnvFile = "ATIS_BENCH_TABLE"

// Row is one line of the table: a scenario, our figure, the baseline's or
// peer's figure from the same run, their ratio, the target and whether it
// was met.
type Row struct {
	// Scenario names what was measured.
	Scenario string `json:"scenario"`

	// Ours is our figure, with its unit.
	Ours string `json:"ours"`

	// Baseline is the baseline's or peer's figure from the same run; "—" when
	// there is none.
	Baseline string `json:"baseline"`

	// Ratio is ours to the baseline; "—" when there is none.
	Ratio string `json:"ratio"`

	// Target is what the figure must reach (issue 10).
	Target string `json:"target"`

	// Met is "yes", "NO" or "—" (a figure with no target).
	Met string `json:"met"`

	// Note says how the figure was taken when the columns do not.
	Note string `json:"note,omitempty"`
}

// MetString returns "yes" or "NO".
func MetString(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// Append adds rows to the file named by ATIS_BENCH_TABLE; without it, it
// does nothing.
func Append(rows ...Row) error {
	path := os.Getenv(EnvFile)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("benchtable: open %s: %w", path, err)
	}
	enc := json.NewEncoder(f)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			_ = f.Close()
			return fmt.Errorf("benchtable: write %s: %w", path, err)
		}
	}
	return f.Close()
}

// ReadFile returns the rows appended to the file named by ATIS_BENCH_TABLE;
// none when it is unset or absent.
func ReadFile() ([]Row, error) {
	path := os.Getenv(EnvFile)
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("benchtable: %w", err)
	}
	defer f.Close()
	var rows []Row
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("benchtable: %s: %w", path, err)
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// Markdown writes rows as a markdown table, then each row's note.
func Markdown(w io.Writer, rows []Row) {
	cell := func(s string) string { return strings.ReplaceAll(cmp.Or(s, "—"), "|", `\|`) }
	fmt.Fprintln(w, "| scenario | ours | baseline / peer (same run) | ratio | target | met? |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n",
			cell(r.Scenario), cell(r.Ours), cell(r.Baseline), cell(r.Ratio), cell(r.Target), cell(r.Met))
	}
	first := true
	for _, r := range rows {
		if r.Note == "" {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		fmt.Fprintf(w, "- %s: %s\n", r.Scenario, r.Note)
	}
}
