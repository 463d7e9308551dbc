package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunInterrupts: the first Ctrl-C stops adora run's nodes gracefully
// (a Go node gets STOP), the second kills a node that ignores SIGTERM.
func TestRunInterrupts(t *testing.T) {
	e := newEnv(t)
	dir := goNodes(t)
	e.write("ctrlc.yml", `
nodes:
  - id: receiver
    path: `+dir+`/receiver
    env:
      SAY_TICK: "1"
    inputs:
      tick: adora/timer/millis/50
  - id: stubborn
    path: `+dir+`/receiver
    env:
      IGNORE_STOP: "1"
      SAY_TICK: "1"
    inputs:
      tick: adora/timer/millis/50
`, 0o644)
	p := e.startIn(e.dir, "adora run", "run", "ctrlc.yml", "--grace", "30s")
	// A tick proves a node is connected: it can get STOP.
	e.waitFor(15*time.Second, "nodes connected", func() bool {
		out := p.out.String()
		return strings.Contains(out, "receiver | first tick") && strings.Contains(out, "stubborn | first tick")
	})
	p.cmd.Process.Signal(syscall.SIGINT)
	e.waitFor(10*time.Second, "STOP delivered to both nodes", func() bool {
		return strings.Contains(p.out.String(), "receiver | stopped after") && strings.Contains(p.out.String(), "stubborn | ignoring stop")
	})
	time.Sleep(300 * time.Millisecond)
	if !p.running() {
		t.Fatalf("adora run ended before the stubborn node did:\n%s", p.out.String())
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("second Ctrl-C did not end adora run:\n%s", p.out.String())
	}
	if !strings.Contains(p.out.String(), "stubborn | [adora] killed by signal killed") {
		t.Fatalf("stubborn node not killed:\n%s", p.out.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after a requested stop:\n%s", code, p.out.String())
	}
}

// TestDaemonSIGTERMStopsItsNodes: a daemon told to stop stops its nodes
// and exits 0; the coordinator sees it leave.
func TestDaemonSIGTERMStopsItsNodes(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	d := e.daemon("", "")
	c := e.client()
	rep, err := e.startFlow(c, "terminated", "nodes:\n  - id: worker\n    path: /bin/sh\n    args: -c '"+loop+"'\n")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	e.waitFor(10*time.Second, "worker", func() bool { pid = e.nodePID("", rep.DataflowID, "worker"); return alive(pid) })
	d.stop(t, time.Minute)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("daemon exit %d:\n%s", code, d.out.String())
	}
	if alive(pid) {
		t.Fatalf("node %d outlived its daemon", pid)
	}
	e.waitFor(10*time.Second, "coordinator to see the daemon leave", func() bool { return e.daemonID("") == "" })
}
