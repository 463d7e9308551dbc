package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

// loop is a node that prints a line every 200 ms until stopped.
const loop = `while true; do echo "alive $ADORA_NODE_ID"; sleep 0.2; done`

func TestPlacementByMachineAndLabels(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	e.daemon("robot", "role=edge")
	e.daemon("gpu-server", "gpu=true,arch=x86_64")
	e.daemon("", "")
	c := e.client()
	ds, err := c.Daemons(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]map[string]string{}
	for _, d := range ds.Daemons {
		labels[d.MachineID] = d.Labels
	}
	if labels["gpu-server"]["gpu"] != "true" || labels["gpu-server"]["arch"] != "x86_64" || labels["robot"]["role"] != "edge" || len(ds.Daemons) != 3 {
		t.Fatalf("daemons as the coordinator sees them: %+v", ds.Daemons)
	}

	rep, err := e.startFlow(c, "edge-ai", `
nodes:
  - id: camera
    _unstable_deploy:
      machine: robot
    path: /bin/sh
    args: -c 'exec sleep 60'
  - id: inference
    _unstable_deploy:
      labels:
        gpu: "true"
    path: /bin/sh
    args: -c 'exec sleep 60'
  - id: actuator
    _unstable_deploy:
      machine: robot
    path: /bin/sh
    args: -c 'exec sleep 60'
  - id: logger
    path: /bin/sh
    args: -c 'exec sleep 60'
`)
	if err != nil {
		t.Fatal(err)
	}
	// Unassigned nodes go to the unnamed daemon ("" here).
	want := map[string]string{"camera": "robot", "inference": "gpu-server", "actuator": "robot", "logger": ""}
	for _, p := range rep.Placements {
		if want[p.NodeID] != p.MachineID {
			t.Errorf("node %s placed on %q, want %q", p.NodeID, p.MachineID, want[p.NodeID])
		}
	}
	if len(rep.Placements) != 4 {
		t.Fatalf("placements %+v", rep.Placements)
	}
	// The processes run under the daemon the placement names.
	for node, machine := range want {
		e.waitFor(10*time.Second, node+" running on "+machine, func() bool { return alive(e.nodePID(machine, rep.DataflowID, node)) })
	}
	if pid := e.nodePID("gpu-server", rep.DataflowID, "camera"); pid != 0 {
		t.Fatalf("camera also recorded on gpu-server (pid %d)", pid)
	}

	for _, tc := range []struct{ name, deploy, want string }{
		{"bad-machine", "machine: robt", `no matching daemon for machine id "robt"`},
		{"bad-labels", "labels:\n        gpu: \"false\"", `no daemon matches labels {"gpu": "false"}`},
	} {
		_, err := e.startFlow(c, tc.name, `
nodes:
  - id: n
    _unstable_deploy:
      `+tc.deploy+`
    path: /bin/true
`)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %s", tc.name, err, tc.want)
		}
	}
	if _, err := c.Stop(ctx(t), "edge-ai", time.Second, false); err != nil {
		t.Fatal(err)
	}
	for node, machine := range want {
		pid := e.nodePID(machine, rep.DataflowID, node)
		if alive(pid) {
			t.Errorf("node %s (pid %d) still runs after stop", node, pid)
		}
	}
}

func TestCoordinatorKillKeepsNodes(t *testing.T) {
	e := newEnv(t)
	store := "file:" + filepath.Join(e.home, "coordinator.db")
	coord := e.coordinator("--store", store)
	e.daemon("", "")
	c := e.client()
	rep, err := e.startFlow(c, "survivor", "nodes:\n  - id: worker\n    path: /bin/sh\n    args: -c '"+loop+"'\n")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	e.waitFor(10*time.Second, "worker pid", func() bool { pid = e.nodePID("", rep.DataflowID, "worker"); return alive(pid) })
	daemonID := e.daemonID("")

	coord.kill()
	c.Close()
	time.Sleep(500 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("node died with the coordinator")
	}
	e.coordinator("--store", store)
	e.waitFor(20*time.Second, "daemon reconnect", func() bool { return e.daemonID("") == daemonID })
	c = e.client()
	e.waitFor(10*time.Second, "dataflow listed running", func() bool {
		list, err := c.List(ctx(t), false)
		return err == nil && len(list) == 1 && list[0].ID == rep.DataflowID && list[0].Status == proto.FlowRunning
	})
	if now := e.nodePID("", rep.DataflowID, "worker"); now != pid || !alive(pid) {
		t.Fatalf("node pid %d -> %d (alive %v): it was restarted", pid, now, alive(pid))
	}
	lines, err := c.Logs(ctx(t), "survivor", "worker", 3)
	if err != nil || len(lines) == 0 || lines[len(lines)-1].Line != "alive worker" {
		t.Fatalf("logs after the coordinator restart: %v, %+v", err, lines)
	}
	stopped, err := c.Stop(ctx(t), "survivor", time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.DataflowID != rep.DataflowID {
		t.Fatalf("stop reply %+v", stopped)
	}
	e.waitFor(5*time.Second, "node gone after stop", func() bool { return !alive(pid) })
}

func TestDaemonKillNoOrphansAndRecovery(t *testing.T) {
	e := newEnv(t)
	coord := e.coordinator("--store", "memory")
	d := e.daemon("robot", "")
	c := e.client()
	rep, err := e.startFlow(c, "phoenix", `
nodes:
  - id: worker
    _unstable_deploy:
      machine: robot
    path: ./worker.sh
`)
	if err == nil {
		t.Fatal("started with a missing executable")
	}
	e.write("worker.sh", "#!/bin/sh\n"+loop+"\n", 0o755)
	rep, err = e.startFlow(c, "phoenix", `
nodes:
  - id: worker
    _unstable_deploy:
      machine: robot
    path: ./worker.sh
`)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	e.waitFor(10*time.Second, "worker pid", func() bool { pid = e.nodePID("robot", rep.DataflowID, "worker"); return alive(pid) })
	before := e.daemonID("robot")

	d.kill()
	e.waitFor(5*time.Second, "node process to die with its daemon", func() bool { return !alive(pid) })

	// Restarted at once: the coordinator may not have noticed the old
	// connection's end yet; the same identity must be accepted anyway.
	e.daemon("robot", "")
	e.waitFor(10*time.Second, "restarted daemon registered with the same identity "+before, func() bool {
		return e.daemonID("robot") == before
	})
	var newPID int
	e.waitFor(20*time.Second, "auto-recovery to re-spawn the node", func() bool {
		newPID = e.nodePID("robot", rep.DataflowID, "worker")
		return newPID != pid && alive(newPID)
	})
	e.waitFor(5*time.Second, "auto-recovery log line", func() bool {
		return strings.Contains(coord.out.String(), "auto-recovery: re-spawning")
	})
	if st := flowStatus(t, c, "phoenix"); st != proto.FlowRunning {
		t.Fatalf("status %s after recovery", st)
	}
	if _, err := c.Stop(ctx(t), "phoenix", time.Second, false); err != nil {
		t.Fatal(err)
	}
	e.waitFor(5*time.Second, "recovered node gone after stop", func() bool { return !alive(newPID) })
}

func TestCrashingNodeRestartsExactlyMaxRestarts(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	e.daemon("", "")
	c := e.client()
	rep, err := e.startFlow(c, "crashy", `
nodes:
  - id: crasher
    path: /bin/sh
    args: -c 'echo "start $ADORA_NODE_ID"; exit 3'
    restart_policy: on-failure
    max_restarts: 3
`)
	if err != nil {
		t.Fatal(err)
	}
	e.waitFor(20*time.Second, "dataflow to fail", func() bool { return flowStatus(t, c, "crashy") == proto.FlowFailed })
	info, err := c.Info(ctx(t), rep.DataflowID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info.Error, "crasher") || !strings.Contains(info.Error, "max restarts (3) exceeded") {
		t.Errorf("dataflow error %q", info.Error)
	}
	lines, err := c.Logs(ctx(t), rep.DataflowID, "crasher", 0)
	if err != nil {
		t.Fatal(err)
	}
	starts, spawns := 0, 0
	for _, l := range lines {
		if l.Stream == proto.Stdout && l.Line == "start crasher" {
			starts++
		}
		if l.Stream == proto.System && strings.HasPrefix(l.Line, "spawned") {
			spawns++
		}
	}
	if starts != 4 || spawns != 4 {
		t.Fatalf("node ran %d times (%d spawn lines), want 4 (1 + 3 restarts); logs:\n%v", starts, spawns, lines)
	}
}

func TestUpIsIdempotentAndDownStops(t *testing.T) {
	e := newEnv(t)
	port := strconv.Itoa(e.port)
	t.Cleanup(func() {
		// Whatever adora up left behind dies with the test.
		for _, name := range []string{"daemon", "coordinator"} {
			if b, err := os.ReadFile(filepath.Join(e.home, "up", name+".pid")); err == nil {
				if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 1 && alive(pid) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	out, code := e.adora(30*time.Second, "up", "--port", port)
	if code != 0 || !strings.Contains(out, "coordinator started") || !strings.Contains(out, "daemon started") {
		t.Fatalf("first up (exit %d):\n%s", code, out)
	}
	out, code = e.adora(30*time.Second, "up", "--port", port)
	if code != 0 || !strings.Contains(out, "coordinator already running") || !strings.Contains(out, "daemon already running") {
		t.Fatalf("second up (exit %d):\n%s", code, out)
	}
	if h, err := e.health(); err != nil || len(h.Daemons) != 1 {
		t.Fatalf("after two ups: %+v, %v", h, err)
	}
	pids := map[string]int{}
	for _, name := range []string{"daemon", "coordinator"} {
		b, err := os.ReadFile(filepath.Join(e.home, "up", name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pids[name], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	out, code = e.adora(60*time.Second, "down", "--port", port)
	if code != 0 || !strings.Contains(out, "daemon stopped") || !strings.Contains(out, "coordinator stopped") {
		t.Fatalf("down (exit %d):\n%s", code, out)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still runs after down", name, pid)
		}
	}
	out, code = e.adora(30*time.Second, "down", "--port", port)
	if code != 0 || !strings.Contains(out, "no coordinator running") {
		t.Fatalf("second down (exit %d):\n%s", code, out)
	}
}

func TestRunLocal(t *testing.T) {
	e := newEnv(t)
	e.write("count.sh", "#!/bin/sh\nfor i in 1 2 3; do echo \"count $i\"; done\n", 0o755)
	e.write("ok.yml", `
nodes:
  - id: counter
    path: ./count.sh
    _unstable_deploy:
      machine: robot
  - id: forever
    path: /bin/sh
    args: -c 'trap "echo got-term; exit 0" TERM; while true; do sleep 0.05; done'
`, 0o644)
	out, code := e.adora(30*time.Second, "run", "ok.yml", "--stop-after", "1s", "--grace", "500ms")
	if code != 0 {
		t.Fatalf("adora run exit %d:\n%s", code, out)
	}
	for _, want := range []string{"counter | count 1", "counter | count 3", "_unstable_deploy is ignored", "forever | got-term"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	e.write("bad.yml", "nodes:\n  - id: failing\n    path: /bin/sh\n    args: -c 'echo oops >&2; exit 2'\n", 0o644)
	out, code = e.adora(30*time.Second, "run", "bad.yml")
	if code != 1 || !strings.Contains(out, "failing | oops") || !strings.Contains(out, "dataflow failed: failing: exited with code 2") {
		t.Fatalf("failing run: exit %d:\n%s", code, out)
	}
}
