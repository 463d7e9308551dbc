package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/supervisor"
)

// stdoutLines returns the stdout lines equal to text in a node's log file
// on a daemon, with their times.
func (e *env) stdoutLines(machineID, dataflowID, node, text string) []time.Time {
	if machineID == "" {
		machineID = "_unnamed"
	}
	lines, _ := supervisor.TailLog(filepath.Join(e.home, "daemon", machineID, "logs", dataflowID, node+".jsonl"), 0)
	var out []time.Time
	for _, l := range lines {
		if l.Stream == supervisor.Stdout && l.Line == text {
			out = append(out, l.Time)
		}
	}
	return out
}

// TestRecoveryBackoffForCrashingNode: after a daemon restart, auto-recovery
// re-spawns a node that now crashes at once; the next attempt comes no
// sooner than 30 s later.
func TestRecoveryBackoffForCrashingNode(t *testing.T) {
	e := newEnv(t)
	coord := e.coordinator("--store", "memory")
	d := e.daemon("robot", "")
	c := e.client()
	mark := filepath.Join(e.dir, "ran-once")
	e.write("fragile.sh", `#!/bin/sh
if [ -e "$MARK" ]; then echo crash-now; exit 1; fi
touch "$MARK"
echo first-run
exec sleep 300
`, 0o755)
	rep, err := e.startFlow(c, "fragile", `
nodes:
  - id: worker
    _unstable_deploy:
      machine: robot
    path: ./fragile.sh
    env:
      MARK: `+mark+`
`)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	e.waitFor(10*time.Second, "first run", func() bool { pid = e.nodePID("robot", rep.DataflowID, "worker"); return alive(pid) })
	d.kill()
	e.waitFor(5*time.Second, "node to die with its daemon", func() bool { return !alive(pid) })
	e.daemon("robot", "")

	var crashes []time.Time
	e.waitFor(20*time.Second, "recovery attempt", func() bool {
		crashes = e.stdoutLines("robot", rep.DataflowID, "worker", "crash-now")
		return len(crashes) >= 1
	})
	time.Sleep(5 * time.Second)
	if n := len(e.stdoutLines("robot", rep.DataflowID, "worker", "crash-now")); n != 1 {
		t.Fatalf("%d recovery attempts within 5 s, want 1 (30 s backoff)", n)
	}
	e.waitFor(45*time.Second, "second recovery attempt", func() bool {
		crashes = e.stdoutLines("robot", rep.DataflowID, "worker", "crash-now")
		return len(crashes) >= 2
	})
	if gap := crashes[1].Sub(crashes[0]); gap < proto.RecoveryBackoff-time.Second {
		t.Fatalf("recovery attempts %v apart, want at least %v", gap, proto.RecoveryBackoff)
	}
	if n := strings.Count(coord.out.String(), "auto-recovery: re-spawning"); n < 2 {
		t.Fatalf("coordinator logged %d re-spawns, want 2", n)
	}
	if _, err := c.Stop(ctx(t), rep.DataflowID, time.Second, true); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonKillReapsNodeGroup: a node's background child (same process
// group) does not outlive a daemon killed with SIGKILL and restarted.
func TestDaemonKillReapsNodeGroup(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	d := e.daemon("", "")
	c := e.client()
	childFile := filepath.Join(e.dir, "child.pid")
	e.write("parent.sh", "#!/bin/sh\nsleep 300 &\necho $! > "+childFile+"\nexec sleep 300\n", 0o755)
	rep, err := e.startFlow(c, "family", "nodes:\n  - id: parent\n    path: ./parent.sh\n")
	if err != nil {
		t.Fatal(err)
	}
	var pid, child int
	e.waitFor(10*time.Second, "node and its child", func() bool {
		pid = e.nodePID("", rep.DataflowID, "parent")
		b, _ := readFile(childFile)
		child, _ = strconv.Atoi(strings.TrimSpace(b))
		return alive(pid) && alive(child)
	})
	d.kill()
	e.waitFor(5*time.Second, "node to die with its daemon", func() bool { return !alive(pid) })
	if !alive(child) {
		t.Fatal("the child died with the node: nothing left for the restarted daemon to reap")
	}
	e.daemon("", "")
	e.waitFor(10*time.Second, "the node's child to be reaped by the restarted daemon", func() bool { return !alive(child) })
	if _, err := c.Stop(ctx(t), rep.DataflowID, time.Second, true); err != nil {
		t.Fatal(err)
	}
}
