package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHostKey(t *testing.T) {
	t.Parallel()

	const (
		bootID = "d0e89cf0-4677-44f7-a1cb-d449578c5acd\n"
		stat   = "cpu  1 2 3\nbtime 1795400000\nprocesses 42\n"
		// pid 1's stat with a command name that holds ") (" and spaces;
		// starttime (field 22) is 4242.
		initStat = "1 (weird) (init) S 0 0 0 0 -1 4194560 1 2 0 0 3 4 5 6 20 0 1 0 4242 1000 10 18446744073709551615\n"
	)
	tests := []struct {
		name  string
		files map[string]string // path under proc → content; "->" prefix makes a symlink
		want  string
	}{
		{"boot id and pid namespace, as wave 1 recorded", map[string]string{
			"sys/kernel/random/boot_id": bootID, "self/ns/pid": "->pid:[4026531836]", "stat": stat, "1/stat": initStat,
		}, "boot:d0e89cf0-4677-44f7-a1cb-d449578c5acd/pid[4026531836]"},
		{"no namespace link: the init's start time", map[string]string{
			"sys/kernel/random/boot_id": bootID, "stat": stat, "1/stat": initStat,
		}, "boot:d0e89cf0-4677-44f7-a1cb-d449578c5acd/init:4242"},
		{"no boot id: no key (boot times collide between machines)", map[string]string{
			"self/ns/pid": "->pid:[4026531836]", "stat": stat, "1/stat": initStat,
		}, ""},
		{"no pid space at all", map[string]string{"sys/kernel/random/boot_id": bootID, "stat": stat}, ""},
		{"no boot at all", map[string]string{"self/ns/pid": "->pid:[4026531836]", "1/stat": initStat}, ""},
		{"a truncated init stat", map[string]string{"sys/kernel/random/boot_id": bootID, "1/stat": "1 (init) S 0 0"}, ""},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proc := t.TempDir()
			for path, content := range tt.files {
				full := filepath.Join(proc, path)
				require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
				if target, ok := strings.CutPrefix(content, "->"); ok {
					require.NoError(t, os.Symlink(target, full))
					continue
				}
				require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
			}
			require.Equal(t, tt.want, hostKey(proc))
		})
	}

	// This machine's /proc names its pid space, so the pid rule is tested
	// here, and a second read gives the same key.
	require.NotEmpty(t, HostKey())
	require.Equal(t, HostKey(), HostKey())
}
