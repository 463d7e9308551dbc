package auth

import "golang.org/x/sys/unix"

// ProtectProcess keeps the token out of reach of other processes of the
// same user, such as the nodes a daemon spawns: it marks the process not
// dumpable, so its /proc/<pid>/environ and memory become readable by root
// only, ptrace by the same user is refused, and no core dump is written.
// The nodes themselves are unaffected (execve makes a process dumpable
// again). Call it early in long-running processes that hold the token
// (the coordinator and the daemon).
func ProtectProcess() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
