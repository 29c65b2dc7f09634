package instance

import (
	"bytes"
	"os"
	"strings"
)

// HostKey names the pid space this process lives in: which kernel boot,
// and which pid namespace. Two processes with the same key can look each
// other up by pid; a hostname cannot tell that (containers with host
// networking, cloned VMs share one). Empty where /proc does not say, and
// then no process is judged by its pid, only by a silent heartbeat.
func HostKey() string { return hostKey("/proc") }

// hostKey reads the key from the proc file system at proc. The boot is the
// kernel's boot id (a random UUID per boot); without it there is no key. The
// pid namespace is the inode of /proc/self/ns/pid, else the start time of
// the namespace's init (pid 1), which every process of one namespace sees;
// two namespaces of one boot whose inits started in the same clock tick
// would share it, a risk taken only where the inode cannot be read. The
// first forms are what wave 1's replicas recorded.
func hostKey(proc string) string {
	boot, space := bootID(proc), pidSpace(proc)
	if boot == "" || space == "" {
		return ""
	}
	return boot + "/" + space
}

func bootID(proc string) string {
	b, err := os.ReadFile(proc + "/sys/kernel/random/boot_id")
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return "boot:" + string(bytes.TrimSpace(b))
}

func pidSpace(proc string) string {
	if ns, err := os.Readlink(proc + "/self/ns/pid"); err == nil && ns != "" {
		return strings.ReplaceAll(ns, ":", "")
	}
	stat, err := os.ReadFile(proc + "/1/stat")
	if err != nil {
		return ""
	}
	fields := StatFields(stat) // [19] is starttime, field 22
	if len(fields) < 20 {
		return ""
	}
	return "init:" + fields[19]
}

// StatFields splits the content of a /proc/<pid>/stat file after the
// command name, which may hold spaces and parentheses: [0] is the state
// (field 3 of stat), [n] field n+3. Nil when there is no command name.
func StatFields(stat []byte) []string {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}
