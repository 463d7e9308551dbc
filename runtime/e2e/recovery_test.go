package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/client"
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
	e.waitFor(60*time.Second, "first run", func() bool { pid = e.nodePID("robot", rep.DataflowID, "worker"); return alive(pid) })
	d.kill()
	e.waitFor(30*time.Second, "node to die with its daemon", func() bool { return !alive(pid) })
	restarted := time.Now()
	e.daemon("robot", "")
	// The harness's wait may see the killed daemon's session before the
	// coordinator drops it: wait for the new registration itself.
	e.waitFor(60*time.Second, "the restarted daemon's registration", func() bool {
		return e.connectedSince(c, "robot", restarted)
	})

	// The first attempt follows the new daemon's status report; on a
	// loaded machine that can take a while, so the wait is generous. What
	// the test checks is the spacing of attempts, which waiting longer
	// cannot hide: every attempt leaves a crash-now line with its time.
	var crashes []time.Time
	e.waitFor(90*time.Second, "recovery attempt", func() bool {
		crashes = e.stdoutLines("robot", rep.DataflowID, "worker", "crash-now")
		return len(crashes) >= 1
	})
	time.Sleep(5 * time.Second)
	crashes = e.stdoutLines("robot", rep.DataflowID, "worker", "crash-now")
	if len(crashes) > 1 && crashes[1].Sub(crashes[0]) < proto.RecoveryBackoff-time.Second {
		t.Fatalf("%d recovery attempts (at %v) within about 5 s of the first, want 1 (30 s backoff)", len(crashes), crashes)
	}
	e.waitFor(proto.RecoveryBackoff+90*time.Second, "second recovery attempt", func() bool {
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

// connectedSince reports whether a daemon with machineID is connected by a
// registration made after t.
func (e *env) connectedSince(c *client.Client, machineID string, t time.Time) bool {
	rep, err := c.Daemons(ctx(e.t))
	if err != nil {
		return false
	}
	for _, d := range rep.Daemons {
		if d.MachineID == machineID && d.Connected && d.ConnectedAt.After(t) {
			return true
		}
	}
	return false
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
