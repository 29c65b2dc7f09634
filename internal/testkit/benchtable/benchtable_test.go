package benchtable_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/benchtable"
)

func TestAppendReadFile(t *testing.T) {
	t.Setenv(benchtable.EnvFile, filepath.Join(t.TempDir(), "table.jsonl"))

	rows, err := benchtable.ReadFile()
	require.NoError(t, err)
	require.Empty(t, rows, "no file yet")

	want := []benchtable.Row{
		{Scenario: "retention (ordered)", Ours: "600000 rows/s", Baseline: "one DELETE: 1000000 rows/s", Ratio: "0.60", Target: "≥ 0.50", Met: "yes"},
		{Scenario: "idle: CPU", Ours: "0.4 %", Target: "< 1 %", Met: benchtable.MetString(false), Note: "from /proc"},
	}
	require.NoError(t, benchtable.Append(want[0]))
	require.NoError(t, benchtable.Append(want[1]))
	got, err := benchtable.ReadFile()
	require.NoError(t, err)
	require.Empty(t, cmp.Diff(want, got), "(-want +got)")
}

func TestAppendWithoutFileDoesNothing(t *testing.T) {
	t.Setenv(benchtable.EnvFile, "")
	require.NoError(t, benchtable.Append(benchtable.Row{Scenario: "x"}))
	rows, err := benchtable.ReadFile()
	require.NoError(t, err)
	require.Empty(t, rows)
}

func TestMarkdown(t *testing.T) {
	t.Parallel()

	var out strings.Builder
	benchtable.Markdown(&out, []benchtable.Row{
		{Scenario: "a|b", Ours: "1", Met: "NO", Note: "why"},
		{Scenario: "c", Ours: "2"},
	})
	want := `| scenario | ours | baseline / peer (same run) | ratio | target | met? |
|---|---|---|---|---|---|
| a\|b | 1 | — | — | — | NO |
| c | 2 | — | — | — | — |

- a|b: why
`
	require.Empty(t, cmp.Diff(want, out.String()), "(-want +got)")
}
