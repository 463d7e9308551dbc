package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

var (
	nodesOnce sync.Once
	nodesDir  string
	nodesErr  error
)

// goNodes builds the test node programs in testdata once and returns the
// directory holding them.
func goNodes(t *testing.T) string {
	t.Helper()
	nodesOnce.Do(func() {
		nodesDir = filepath.Join(filepath.Dir(adoraBin), "nodes")
		for _, name := range []string{"sender", "receiver"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(nodesDir, name), "./testdata/"+name)
			if out, err := cmd.CombinedOutput(); err != nil {
				nodesErr = &buildError{name, err, string(out)}
				return
			}
		}
	})
	if nodesErr != nil {
		t.Fatal(nodesErr)
	}
	return nodesDir
}

type buildError struct {
	name string
	err  error
	out  string
}

func (e *buildError) Error() string { return "build " + e.name + ": " + e.err.Error() + "\n" + e.out }

// TestRunGoNodes: adora run of a timer-driven Go sender and a Go receiver
// that checks order and count through the data plane.
func TestRunGoNodes(t *testing.T) {
	e := newEnv(t)
	dir := goNodes(t)
	e.write("pipeline.yml", `
nodes:
  - id: sender
    path: `+filepath.Join(dir, "sender")+`
    env:
      COUNT: "30"
    inputs:
      tick: adora/timer/millis/10
    outputs:
      - count
  - id: receiver
    path: `+filepath.Join(dir, "receiver")+`
    inputs:
      count:
        source: sender/count
        queue_policy: backpressure
`, 0o644)
	out, code := e.adora(60*time.Second, "run", "pipeline.yml")
	if code != 0 || !strings.Contains(out, "sender   | sent 30") || !strings.Contains(out, "receiver | received 30") {
		t.Fatalf("adora run: exit %d:\n%s", code, out)
	}
}

// TestCrossMachineGoNodes: the sender runs under daemon robot and the
// receiver under daemon gpu-server; the data crosses between the daemons
// over Zenoh on loopback, in order and complete (the sender starts at
// once: publications wait for the remote receiver), and the receiver
// learns that the sender's output closed.
func TestCrossMachineGoNodes(t *testing.T) {
	e := newEnv(t)
	dir := goNodes(t)
	e.coordinator("--store", "memory")
	for _, m := range []string{"robot", "gpu-server"} {
		e.daemonArgs(m, "--zenoh-listen", loopbackZenoh)
	}
	c := e.client()
	rep, err := e.startFlow(c, "split", `
nodes:
  - id: sender
    _unstable_deploy:
      machine: robot
    path: `+filepath.Join(dir, "sender")+`
    env:
      COUNT: "25"
    inputs:
      tick: adora/timer/millis/10
    outputs:
      - count
  - id: receiver
    _unstable_deploy:
      machine: gpu-server
    path: `+filepath.Join(dir, "receiver")+`
    inputs:
      count:
        source: sender/count
        queue_policy: backpressure
`)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "dataflow to end", func() bool {
		st := flowStatus(t, c, rep.DataflowID)
		return st == proto.FlowSucceeded || st == proto.FlowFailed
	})
	lines, err := c.Logs(ctx(t), rep.DataflowID, "receiver", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lines {
		if l.Stream != proto.System {
			got = append(got, l.Line)
		}
	}
	if st := flowStatus(t, c, rep.DataflowID); st != proto.FlowSucceeded || !containsLine(got, "received 25") {
		t.Fatalf("status %s; receiver output %q", st, got)
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// daemonArgs starts a daemon with extra flags and waits for it.
func (e *env) daemonArgs(machineID string, extra ...string) *proc {
	e.t.Helper()
	args := append([]string{"daemon", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(e.port), "--machine-id", machineID}, extra...)
	p := e.start("daemon "+machineID, args...)
	e.waitFor(15*time.Second, machineID+" registered", func() bool { return e.daemonID(machineID) != "" })
	return p
}

// TestRunReceiverKilledMidStream: kill -9 of a receiver under adora run;
// its restart policy brings it back, the sender never stops, and the new
// receiver sees the rest of the stream in order.
func TestRunReceiverKilledMidStream(t *testing.T) {
	e := newEnv(t)
	dir := goNodes(t)
	e.write("faulty.yml", `
nodes:
  - id: sender
    path: `+filepath.Join(dir, "sender")+`
    env:
      COUNT: "100"
    inputs:
      tick: adora/timer/millis/20
    outputs:
      - count
  - id: receiver
    path: `+filepath.Join(dir, "receiver")+`
    restart_policy: on-failure
    env:
      FROM_ANY: "1"
    inputs:
      count:
        source: sender/count
        queue_policy: backpressure
`, 0o644)
	p := e.startIn(e.dir, "adora run", "run", "faulty.yml")
	var pid int
	e.waitFor(15*time.Second, "receiver running", func() bool {
		files, _ := filepath.Glob(filepath.Join(e.home, "run", "pids", "*", "receiver.pid"))
		if len(files) != 1 {
			return false
		}
		b, _ := readFile(files[0])
		f := strings.Fields(b)
		if len(f) > 0 {
			pid, _ = strconv.Atoi(f[0])
		}
		return alive(pid)
	})
	time.Sleep(500 * time.Millisecond)
	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("adora run did not finish:\n%s", p.out.String())
	}
	out := p.out.String()
	for _, want := range []string{"receiver | [adora] killed by signal killed", "receiver | [adora] spawned", "restart 1)", "sender   | sent 100", "receiver | received 100"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || t.Failed() {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestRunSenderKilled: kill -9 of a sender under adora run; its receiver
// learns the input closed and ends cleanly, and adora run reports the
// sender's failure.
func TestRunSenderKilled(t *testing.T) {
	e := newEnv(t)
	dir := goNodes(t)
	e.write("orphaned.yml", `
nodes:
  - id: sender
    path: `+filepath.Join(dir, "sender")+`
    env:
      COUNT: "100000"
    inputs:
      tick: adora/timer/millis/10
    outputs:
      - count
  - id: receiver
    path: `+filepath.Join(dir, "receiver")+`
    inputs:
      count: sender/count
`, 0o644)
	p := e.startIn(e.dir, "adora run", "run", "orphaned.yml")
	var pid int
	e.waitFor(15*time.Second, "sender running", func() bool {
		files, _ := filepath.Glob(filepath.Join(e.home, "run", "pids", "*", "sender.pid"))
		if len(files) != 1 {
			return false
		}
		b, _ := readFile(files[0])
		if f := strings.Fields(b); len(f) > 0 {
			pid, _ = strconv.Atoi(f[0])
		}
		return alive(pid)
	})
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("adora run did not finish:\n%s", p.out.String())
	}
	out := p.out.String()
	if code := p.cmd.ProcessState.ExitCode(); code != 1 ||
		!strings.Contains(out, "receiver | received ") ||
		!strings.Contains(out, "dataflow failed: sender: killed by signal killed") ||
		strings.Contains(out, "receiver: got") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
