package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

// stubs stand in for what needs a real system (a systemd PID 1, a Docker
// engine): each checks its arguments against the repository's files and
// records the call.
var stubs = map[string]string{
	"sudo": `exec "$@"`,
	"systemctl": `echo "systemctl $*" >> "$STUB_LOG"
case "$*" in
  "enable --now atis-scheduler"|"daemon-reload") ;;
  *) echo "systemctl stub: unexpected: $*" >&2; exit 2 ;;
esac
test -f "$DESTDIR/etc/systemd/system/atis-scheduler.service" || { echo "unit not installed" >&2; exit 1; }`,
	"journalctl": `echo "journalctl $*" >> "$STUB_LOG"
[ "$1 $2" = "-u atis-scheduler" ] || { echo "journalctl stub: unexpected: $*" >&2; exit 2; }`,
	"docker": `echo "docker $*" >> "$STUB_LOG"
case "$1" in
  build) [ "$2 $3" = "-f deploy/Dockerfile" ] && test -f deploy/Dockerfile ;;
  compose) [ "$2 $3" = "-f deploy/compose.yaml" ] && test -f deploy/compose.yaml ;;
  *) exit 2 ;;
esac`,
}

func TestOperationsDocExamples(t *testing.T) {
	t.Parallel()

	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the docs use curl; install it")
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	require.Len(t, blocks, 4, "every sh block of the page is run below")

	url := dbtest.NewURL(t)
	d := startDaemon(t, "DATABASE_URL="+url)
	addr := waitFor(t, d.lines, "ready")["http_addr"].(string)

	stubDir, binDir, destDir := t.TempDir(), t.TempDir(), t.TempDir()
	for name, body := range stubs {
		require.NoError(t, os.WriteFile(filepath.Join(stubDir, name), []byte("#!/bin/sh\nset -e\n"+body+"\n"), 0o755))
	}
	copyFile(t, binary, filepath.Join(binDir, "atis-scheduler"), 0o755)
	stubLog := filepath.Join(t.TempDir(), "calls.log")
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)

	for _, blk := range blocks {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", blk[1])
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "PATH="+stubDir+":"+binDir+":"+os.Getenv("PATH"), "DESTDIR="+destDir,
			"STUB_LOG="+stubLog, "DATABASE_URL="+url, "ATIS_HTTP_ADDR="+addr, "ATIS_LOG_FORMAT=json")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "block:\n%s\noutput:\n%s", blk[1], out)
	}
	calls, err := os.ReadFile(stubLog)
	require.NoError(t, err)
	require.Equal(t, []string{
		"systemctl enable --now atis-scheduler",
		"journalctl -u atis-scheduler -f",
		"docker build -f deploy/Dockerfile --build-arg VERSION=v1.0.0 -t atis-scheduler:v1.0.0 .",
		"docker compose -f deploy/compose.yaml up --build -d",
	}, strings.Split(strings.TrimSpace(string(calls)), "\n"))
	for _, f := range []string{"usr/local/bin/atis-scheduler", "etc/systemd/system/atis-scheduler.service",
		"etc/default/atis-scheduler", "usr/share/doc/atis-scheduler/operations.md"} {
		require.FileExists(t, filepath.Join(destDir, f), "staged by deploy/install-systemd.sh")
	}
	d.stop(t)
}

// TestAlertRulesNameRealMetrics: every atis_scheduler_* series an alert
// rule uses is one the daemon exports.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	t.Parallel()

	rules, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	files, err := filepath.Glob("../../internal/metrics/*.go")
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`Name: "([a-z_]+)"|namespace\+"(_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
			exported["atis_scheduler_"+strings.TrimPrefix(m[1]+m[2], "_")] = true
		}
	}
	require.NotEmpty(t, exported)
	used := regexp.MustCompile(`atis_scheduler_[a-z_]+`).FindAllString(string(rules), -1)
	require.NotEmpty(t, used)
	for _, name := range used {
		base := regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(name, "")
		require.True(t, exported[base], "alerts.yml uses %s, which is not exported", name)
	}
}
