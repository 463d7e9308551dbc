package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/internal/testutil"
)

// coarseDaemon builds adora with the adora_coarse_log_clock tag (the
// daemon stamps node lines to 10 ms, so many share a timestamp, as on a
// machine whose clock ticks coarsely) and starts its daemon.
func (e *env) coarseDaemon(machineID string) *proc {
	e.t.Helper()
	bin := filepath.Join(e.t.TempDir(), "adora-coarse")
	build := exec.Command("go", "build", "-tags", "adora_coarse_log_clock", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		e.t.Fatalf("build adora with a coarse log clock: %v\n%s", err, out)
	}
	p := &proc{name: "daemon " + machineID + " (coarse log clock)", out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "daemon", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(e.port),
		"--zenoh-listen", loopbackZenoh, "--machine-id", machineID)
	p.cmd.Env = e.environ()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			e.t.Logf("---- %s output ----\n%s", p.name, p.out.String())
		}
	})
	e.waitFor(60*time.Second, p.name+" registered", func() bool { return e.daemonID(machineID) != "" })
	return p
}

// TestLogsFollowAfterHistoryShowsEachLineOnce: adora logs --follow joins
// a dataflow after its node printed a history, while it prints more, on a
// daemon whose clock gives many lines one timestamp and whose node prints
// the same text again and again. Lines are told apart and ordered by the
// daemon's numbering (LogLine.Seq), not by time and text: every line
// shows exactly once, in order.
func TestLogsFollowAfterHistoryShowsEachLineOnce(t *testing.T) {
	e := newEnv(t)
	e.coordinator()
	e.coarseDaemon("robot")
	port := strconv.Itoa(e.port)
	// Each step prints a numbered line and a "tick" like many before it.
	// The first steps come at once; the rest, in bursts, once "go" exists.
	// All of them fit in one history reply, however late the follow
	// starts.
	const before, after = 400, 400
	script := fmt.Sprintf(`#!/bin/sh
i=0
while [ $i -lt %d ]; do i=$((i+1)); echo line$i; echo tick; done
while [ ! -e go ]; do sleep 0.05; done
while [ $i -lt %d ]; do
  j=0
  while [ $j -lt 10 ]; do i=$((i+1)); j=$((j+1)); echo line$i; echo tick; done
  sleep 0.05
done
`, before, before+after)
	e.write("talker.sh", script, 0o755)
	e.write("seq.yml", "nodes:\n  - id: talker\n    path: ./talker.sh\n", 0o644)
	if out, code := e.adora(time.Minute, "start", "seq.yml", "--name", "seq", "--detach", "--coordinator-port", port); code != 0 {
		t.Fatalf("start: exit %d:\n%s", code, out)
	}
	var flowID string
	e.waitFor(time.Minute, "the first lines in the node's log file", func() bool {
		if flowID == "" {
			ents, _ := os.ReadDir(filepath.Join(e.home, "daemon", "robot", "logs"))
			if len(ents) != 1 {
				return false
			}
			flowID = ents[0].Name()
		}
		s, _ := readFile(filepath.Join(e.home, "daemon", "robot", "logs", flowID, "talker.jsonl"))
		return strings.Contains(s, fmt.Sprintf(`"line%d"`, before))
	})
	// The node prints on while the follow fetches the history.
	e.write("go", "", 0o644)
	follow := e.start("logs --follow", "logs", "seq", "--follow", "--coordinator-port", port)
	select {
	case <-follow.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("logs --follow did not end with the dataflow")
	}
	if code := follow.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("logs --follow: exit %d:\n%s", code, follow.out)
	}
	next, ticks := 1, 0
	for _, l := range strings.Split(follow.out.String(), "\n") {
		switch text := strings.TrimPrefix(l, "talker: "); {
		case text == "tick":
			ticks++
		case strings.HasPrefix(text, "line"):
			if text != fmt.Sprint("line", next) {
				t.Fatalf("%q where line%d was due; logs --follow showed:\n%s", text, next, follow.out)
			}
			next++
		}
	}
	if next != before+after+1 || ticks != before+after {
		t.Fatalf("logs --follow showed %d numbered lines and %d ticks, want %d of each:\n%s", next-1, ticks, before+after, follow.out)
	}
	// The history did share timestamps (else this test proves little).
	s, err := readFile(filepath.Join(e.home, "daemon", "robot", "logs", flowID, "talker.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	times := map[string]int{}
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, `"time":"`); i >= 0 {
			times[l[i:i+40]]++
		}
	}
	if len(times) > (before+after)/2 {
		t.Fatalf("%d distinct timestamps for %d lines: the clock is not coarse", len(times), 2*(before+after))
	}
}

// TestUnknownDataflowStopReasonInNodeLog: a coordinator back with an empty
// memory store stops what a daemon runs for nobody, and says why; the
// daemon writes that reason to the node's log (where adora logs reads)
// and to its own log.
func TestUnknownDataflowStopReasonInNodeLog(t *testing.T) {
	e := newEnv(t)
	coord := e.coordinator("--store", "memory", "--unknown-grace", "1s")
	daemon := e.daemon("robot", "")
	c := e.client()
	rep, err := e.startFlow(c, "forgotten", "nodes:\n  - id: sleeper\n    path: /bin/sleep\n    args: \"600\"\n")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	e.waitFor(time.Minute, "sleeper pid", func() bool { pid = e.nodePID("robot", rep.DataflowID, "sleeper"); return alive(pid) })
	coord.kill()
	c.Close()
	e.coordinator("--store", "memory", "--unknown-grace", "1s")
	e.waitFor(time.Minute, "the forgotten dataflow's node stopped", func() bool { return !alive(pid) })
	logPath := filepath.Join(e.home, "daemon", "robot", "logs", rep.DataflowID, "sleeper.jsonl")
	var log string
	e.waitFor(time.Minute, "the stop reason in the node's log", func() bool {
		log, _ = readFile(logPath)
		return strings.Contains(log, `"stopping: no coordinator has a record of dataflow `+rep.DataflowID)
	})
	if !strings.Contains(log, `"seq":`) {
		t.Fatalf("node log lines are not numbered:\n%s", log)
	}
	if out := daemon.out.String(); !strings.Contains(out, `msg="stopping dataflow" dataflow=`+rep.DataflowID) || !strings.Contains(out, "reason=\"no coordinator has a record") {
		t.Fatalf("daemon log lacks the stop and its reason:\n%s", out)
	}
}

// TestDaemonRestartContinuesNumbering: a daemon killed and started again
// numbers the lines of the node it recovers after those its predecessor
// stored, so no number repeats for that node.
func TestDaemonRestartContinuesNumbering(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	d := e.daemon("robot", "")
	c := e.client()
	e.write("counter.sh", "#!/bin/sh\ni=0\nwhile true; do i=$((i+1)); echo \"pid $$ line $i\"; sleep 0.05; done\n", 0o755)
	rep, err := e.startFlow(c, "counted", "nodes:\n  - id: counter\n    path: ./counter.sh\n")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e.home, "daemon", "robot", "logs", rep.DataflowID, "counter.jsonl")
	var pid int
	e.waitFor(time.Minute, "ten lines of the first run", func() bool {
		pid = e.nodePID("robot", rep.DataflowID, "counter")
		s, _ := readFile(logPath)
		return pid > 0 && strings.Contains(s, fmt.Sprintf("pid %d line 10\"", pid))
	})
	d.kill()
	e.waitFor(time.Minute, "the node to die with its daemon", func() bool { return !alive(pid) })
	e.daemon("robot", "")
	var newPID int
	e.waitFor(time.Minute, "ten lines of the recovered node", func() bool {
		newPID = e.nodePID("robot", rep.DataflowID, "counter")
		s, _ := readFile(logPath)
		return newPID != pid && newPID > 0 && strings.Contains(s, fmt.Sprintf("pid %d line 10\"", newPID))
	})
	if _, err := c.Stop(ctx(t), "counted", time.Second, false); err != nil {
		t.Fatal(err)
	}
	s, err := readFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var prev uint64
	var lastOld, firstNew uint64
	for _, text := range strings.Split(strings.TrimSpace(s), "\n") {
		var l struct {
			Line string `json:"line"`
			Seq  uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			t.Fatalf("log line %q: %v", text, err)
		}
		if l.Seq <= prev {
			t.Fatalf("seq %d (%q) after %d:\n%s", l.Seq, l.Line, prev, s)
		}
		prev = l.Seq
		switch {
		case strings.HasPrefix(l.Line, fmt.Sprintf("pid %d ", pid)):
			lastOld = l.Seq
		case strings.HasPrefix(l.Line, fmt.Sprintf("pid %d ", newPID)) && firstNew == 0:
			firstNew = l.Seq
		}
	}
	if lastOld == 0 || firstNew <= lastOld {
		t.Fatalf("last line of the first run numbered %d, first of the recovered run %d:\n%s", lastOld, firstNew, s)
	}
}
