package main_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/atis-edu/atis-scheduler/internal/cli"
	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

const deployDir = "../../deploy"

// unitSettings reads a systemd unit's key=value lines (repeated keys kept).
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()

	unit := filepath.Join(deployDir, "atis-scheduler.service")
	s := unitSettings(t, unit)
	for key, want := range map[string]string{
		"Type": "notify", "ExecStart": "/usr/local/bin/atis-scheduler run", "ExecStartPre": "/usr/local/bin/atis-scheduler migrate",
		"Restart": "on-failure", "EnvironmentFile": "-/etc/default/atis-scheduler", "DynamicUser": "yes",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
	} {
		require.Equal(t, []string{want}, s[key], key)
	}
	require.Equal(t, []string{strconv.Itoa(cli.ExitConfig)}, s["RestartPreventExitStatus"],
		"only a configuration error stops the restarts (TestExitCodesMatchTheUnit runs both)")
	stop, err := time.ParseDuration(s["TimeoutStopSec"][0])
	require.NoError(t, err)
	require.Greater(t, stop, 30*time.Second+10*time.Second, "longer than the soft-stop timeout plus the daemon's grace")

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: structural checks only")
		return
	}
	// verify wants the unit's binary at its real path and the targets it
	// names: give it a root holding both, and the unit unchanged.
	root := t.TempDir()
	for _, dir := range []string{"usr/local/bin", "etc/systemd/system"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	}
	copyFile(t, binary, filepath.Join(root, "usr/local/bin/atis-scheduler"), 0o755)
	copyFile(t, unit, filepath.Join(root, "etc/systemd/system/atis-scheduler.service"), 0o644)
	targets, _ := filepath.Glob("/lib/systemd/system/*.target")
	for _, target := range targets {
		copyFile(t, target, filepath.Join(root, "etc/systemd/system", filepath.Base(target)), 0o644)
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, filepath.Join(root, "etc/systemd/system/atis-scheduler.service")).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify:\n%s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "no warnings")
}

// TestExitCodesMatchTheUnit: the real binary's exit codes against the
// unit's restart rule (Restart=on-failure, RestartPreventExitStatus): a bad
// configuration is not restarted; a crash is. A SIGQUIT makes the Go runtime
// exit as on an unrecovered panic (a stack dump, exit 2).
func TestExitCodesMatchTheUnit(t *testing.T) {
	t.Parallel()

	s := unitSettings(t, filepath.Join(deployDir, "atis-scheduler.service"))
	require.Equal(t, []string{"on-failure"}, s["Restart"])
	prevented := func(code int) bool { return slices.Contains(s["RestartPreventExitStatus"], strconv.Itoa(code)) }

	bad := run(t, []string{"DATABASE_URL=postgres://x@y/z", "ATIS_POLL_INTERVAL=1ns"}, "run")
	require.Equal(t, cli.ExitConfig, bad.code, bad.stderr)
	require.True(t, prevented(bad.code), "a configuration error (exit %d) is not restarted", bad.code)

	d := startDaemon(t, "DATABASE_URL="+dbtest.NewURL(t))
	waitFor(t, d.lines, "ready")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGQUIT))
	for range d.lines { // read stderr to its end before Wait closes it
	}
	err := d.cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode(), "the runtime's crash code")
	require.False(t, prevented(exit.ExitCode()), "a crash (exit %d) is restarted", exit.ExitCode())
	require.Contains(t, d.output.String(), "goroutine ", "the crash left its stacks in the log")
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, mode))
}

// TestDockerfile checks the Dockerfile's stages where no Docker engine runs,
// and that the build it runs makes a static binary.
func TestDockerfile(t *testing.T) {
	t.Parallel()

	b, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	require.NoError(t, err)
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`).FindAllStringSubmatch(df, -1)
	require.Len(t, froms, 2, "a build stage and a runtime stage")
	gomod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))[1]
	require.Equal(t, "golang:"+goVersion+"-bookworm", froms[0][1], "the build image's Go matches go.mod")
	require.Equal(t, "build", froms[0][2])
	require.Regexp(t, `^gcr\.io/distroless/static-debian\d+:nonroot$`, froms[1][1])

	runtime := df[strings.LastIndex(df, "FROM "):]
	require.Regexp(t, `(?m)^COPY --from=build /out/atis-scheduler /usr/local/bin/atis-scheduler$`, runtime)
	require.Regexp(t, `(?m)^USER nonroot:nonroot$`, runtime)
	require.Regexp(t, `(?m)^ENTRYPOINT \["/usr/local/bin/atis-scheduler"\]$`, runtime)
	require.Regexp(t, `(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/atis-scheduler", "healthcheck"\]`, strings.ReplaceAll(runtime, "\\\n", ""))
	require.Contains(t, df, "ARG VERSION=dev")
	require.Contains(t, df, "-X github.com/atis-edu/atis-scheduler/internal/cli.Version=${VERSION}")

	// The build command, run here: CGO_ENABLED=0 must give a static binary
	// that carries its version and runs without a zone database.
	out := filepath.Join(t.TempDir(), "atis-scheduler")
	build := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/atis-edu/atis-scheduler/internal/cli.Version=v9.9.9-test", "-o", out, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	msg, err := build.CombinedOutput()
	require.NoError(t, err, string(msg))
	f, err := elf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader")
	}
	version, err := exec.Command(out, "version").Output()
	require.NoError(t, err)
	require.Equal(t, "atis-scheduler v9.9.9-test\n", string(version))
	next := exec.Command(out, "jobs", "next", "0 9 * * *", "--tz", "Asia/Baku", "--count", "1")
	next.Env = []string{"ZONEINFO=/nonexistent"} // as in an image without /usr/share/zoneinfo
	nextOut, err := next.CombinedOutput()
	require.NoError(t, err, string(nextOut))
	require.Contains(t, string(nextOut), "T09:00:00+04:00")
}

func TestCompose(t *testing.T) {
	t.Parallel()

	b, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	require.NoError(t, err)
	type service struct {
		Image     string
		Build     map[string]string
		Command   []string
		DependsOn map[string]map[string]string `yaml:"depends_on"`
		Secrets   []string
		Env       map[string]string `yaml:"environment"`
		StopGrace string            `yaml:"stop_grace_period"`
	}
	var compose struct {
		Services map[string]service
		Secrets  map[string]map[string]string
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	pg, migrate, sched := compose.Services["postgres"], compose.Services["migrate"], compose.Services["scheduler"]
	require.Equal(t, "../deploy/Dockerfile", "../"+migrate.Build["dockerfile"])
	require.Equal(t, migrate.Image, sched.Image, "the daemon runs the image the migrate step built")
	require.Equal(t, []string{"migrate"}, migrate.Command)
	require.Equal(t, []string{"run"}, sched.Command)
	require.Equal(t, "service_healthy", migrate.DependsOn["postgres"]["condition"])
	require.Equal(t, "service_completed_successfully", sched.DependsOn["migrate"]["condition"])
	require.NotEmpty(t, pg.Image)
	for _, s := range []service{migrate, sched} {
		require.Equal(t, []string{"database_url"}, s.Secrets)
		require.Equal(t, "/run/secrets/database_url", s.Env["DATABASE_URL_FILE"])
	}
	grace, err := time.ParseDuration(sched.StopGrace)
	require.NoError(t, err)
	require.Greater(t, grace, 40*time.Second)
	secret, err := os.ReadFile(filepath.Join(deployDir, compose.Secrets["database_url"]["file"]))
	require.NoError(t, err)
	require.Contains(t, string(secret), "@postgres:5432/atis")
}
