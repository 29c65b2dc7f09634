package main_test

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/atis-edu/atis-scheduler"

// TestReadmeLayout: README's layout table lists every package of the
// module and nothing that is gone, and no production package imports the
// test tooling under internal/testkit.
func TestReadmeLayout(t *testing.T) {
	t.Parallel()

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, layout, ok := strings.Cut(string(readme), "### Layout\n")
	require.True(t, ok, "README has a Layout section")
	listed := map[string]bool{}
	for _, line := range strings.Split(layout, "\n") {
		cell, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		if !ok || !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
			listed[m[1]] = true
		}
	}

	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	require.NoError(t, err)
	var packages []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		packages = append(packages, pkg)
		require.True(t, listed[pkg], "package %s is not in README's layout table", pkg)
		if !strings.HasPrefix(pkg, "internal/testkit/") && pkg != "cmd/atis-devdb" {
			for _, imp := range fields[1:] {
				require.False(t, strings.HasPrefix(imp, module+"/internal/testkit/"), "production package %s imports %s", pkg, imp)
			}
		}
	}
	for path := range listed {
		if _, err := os.Stat("../../" + path); err != nil {
			t.Errorf("README's layout table lists %s, which does not exist", path)
			continue
		}
		if !slices.Contains([]string{"deploy", "docs"}, path) {
			require.True(t, slices.Contains(packages, path), "README's layout table lists %s, which is no package", path)
		}
	}
}
