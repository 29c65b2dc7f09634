// Package procstat reads a process's memory, CPU time and state from
// Linux's /proc, for the tests and benchmarks that run the real binary and
// measure it from outside. It splits stat lines with the daemon's own
// parser (instance.StatFields).
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/atis-edu/atis-scheduler/scheduler/instance"
)

// StatusKB reads a field such as VmRSS or VmHWM, in kB, from
// /proc/<pid>/status; 0 when the process is gone.
func StatusKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// CPUTicks returns utime+stime of pid from /proc/<pid>/stat, in clock ticks
// (USER_HZ, 100 a second on Linux).
func CPUTicks(pid int) (int64, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14 of stat
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	return utime + stime, nil
}

// Running reports whether pid is a process that has not exited: it has a
// /proc entry and is neither a zombie (exited, not yet waited for) nor dead.
func Running(pid int) bool {
	fields, err := statFields(pid)
	return err == nil && len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) ([]string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	return instance.StatFields(stat), nil
}
