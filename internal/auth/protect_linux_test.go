package auth

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The check runs in a child (the test binary again), so the test process
// itself stays dumpable.
func TestProtectProcessMakesProcessNotDumpable(t *testing.T) {
	if os.Getenv("ADORA_TEST_PROTECT_CHILD") == "1" {
		before, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err := ProtectProcess(); err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		after, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		// A spawned child (as a daemon spawns a node) is dumpable again.
		out, err := exec.Command("/bin/sh", "-c", "grep -c . /proc/self/environ").CombinedOutput()
		child := "ok"
		if err != nil {
			child = "unreadable"
		}
		os.Stdout.WriteString("before " + strconv.Itoa(before) + " after " + strconv.Itoa(after) + " child " + child + " " + strings.TrimSpace(string(out)) + "\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestProtectProcessMakesProcessNotDumpable$")
	cmd.Env = append(os.Environ(), "ADORA_TEST_PROTECT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "before 1 after 0 child ok") {
		t.Fatalf("child reported %q, want dumpable 1 before, 0 after, and a readable environment in its own child", out)
	}
}
