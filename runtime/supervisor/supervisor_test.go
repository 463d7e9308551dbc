package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/adora-rs/adora/config"
)

// helperEnv makes the test binary act as a tiny daemon (see TestMain).
const helperEnv = "ADORA_SUPERVISOR_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperDaemon()
		return
	}
	goleak.VerifyTestMain(m)
}

// helperDaemon supervises one long-running node, prints its pid and blocks
// until killed.
func helperDaemon() {
	started := make(chan int, 1)
	ready := make(chan struct{}, 1)
	s := New(Config{
		PIDDir: os.Getenv(helperEnv),
		OnEvent: func(ev Event) {
			if ev.Kind == EventStarted {
				started <- ev.PID
			}
		},
		OnLog: func(l LogLine) { ready <- struct{}{} },
	})
	if err := s.Start(NodeSpec{ID: "sleeper", Path: "/bin/sh", Args: []string{"-c", "sleep 60 & echo ready; exec sleep 60"}, Env: BaseEnv()}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	pid := <-started
	<-ready
	fmt.Println(pid)
	select {}
}

// recorder collects events and log lines.
type recorder struct {
	mu     sync.Mutex
	events []Event
	lines  []LogLine
}

func (r *recorder) event(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) line(l LogLine) {
	r.mu.Lock()
	r.lines = append(r.lines, l)
	r.mu.Unlock()
}

func (r *recorder) kinds(node string) []EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []EventKind
	for _, ev := range r.events {
		if ev.Node == node {
			out = append(out, ev.Kind)
		}
	}
	return out
}

func (r *recorder) count(node string, k EventKind) int {
	n := 0
	for _, got := range r.kinds(node) {
		if got == k {
			n++
		}
	}
	return n
}

func (r *recorder) texts(node string, s Stream) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if l.Node == node && l.Stream == s {
			out = append(out, l.Line)
		}
	}
	return out
}

func newTestSupervisor(t *testing.T, cfg Config) (*Supervisor, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.OnEvent = rec.event
	cfg.OnLog = rec.line
	s := New(cfg)
	t.Cleanup(func() { s.Close() })
	return s, rec
}

func waitDone(t *testing.T, s *Supervisor, d time.Duration) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(d):
		t.Fatalf("nodes did not finish within %v: %+v", d, s.Nodes())
	}
}

func shNode(id, script string) NodeSpec {
	return NodeSpec{ID: id, Path: "/bin/sh", Args: []string{"-c", script}, Env: BaseEnv()}
}

func TestRunCapturesOutputAndFinishes(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "logs", "n.jsonl")
	s, rec := newTestSupervisor(t, Config{})
	spec := shNode("n", `echo out1; echo err1 >&2; printf 'no-newline'; exit 0`)
	spec.LogPath = logPath
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 10*time.Second)
	if got, want := rec.kinds("n"), []EventKind{EventStarted, EventExited, EventFinished}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if got := rec.texts("n", Stdout); !slices.Equal(got, []string{"out1", "no-newline"}) {
		t.Fatalf("stdout lines %q", got)
	}
	if got := rec.texts("n", Stderr); !slices.Equal(got, []string{"err1"}) {
		t.Fatalf("stderr lines %q", got)
	}
	stored, err := TailLog(logPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 {
		t.Fatalf("log file has %d lines, want 3: %+v", len(stored), stored)
	}
	res := s.Results()
	if len(res) != 1 || res[0].Failed || res[0].ExitCode != 0 {
		t.Fatalf("results %+v", res)
	}
	if err := s.Start(shNode("late", "true")); err == nil {
		t.Fatal("Start after all nodes finished succeeded")
	}
}

func TestEnvWorkingDirStdin(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "node.sh")
	body := "#!/bin/sh\necho \"A=$A B=$B C=$C\"\npwd\nif read x; then echo stdin-had-data; else echo stdin-eof; fi\n[ -e /proc/self/fd/3 ] && cat <&3\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	fdR, fdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(fdW, "from-fd3\n")
	fdW.Close()
	var gotCount int
	s, rec := newTestSupervisor(t, Config{Hooks: Hooks{
		Prepare: func(node string, restartCount int) ([]string, []*os.File, error) {
			gotCount = restartCount
			return []string{"C=router"}, []*os.File{fdR}, nil
		},
	}})
	spec := NodeSpec{
		ID:   "envnode",
		Path: "node.sh", // bare name, found in the working directory
		Dir:  dir,
		Env:  MergeEnv(BaseEnv(), MapEnv(map[string]string{"A": "dataflow", "B": "dataflow", "C": "dataflow"}), MapEnv(map[string]string{"B": "node", "C": "node"})),
	}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 10*time.Second)
	want := []string{"A=dataflow B=node C=router", dir, "stdin-eof", "from-fd3"}
	if got := rec.texts("envnode", Stdout); !slices.Equal(got, want) {
		t.Fatalf("stdout %q, want %q (stderr %q)", got, want, rec.texts("envnode", Stderr))
	}
	if gotCount != 0 {
		t.Fatalf("restart count %d", gotCount)
	}
}

func TestSpawnErrorIsFinalFailure(t *testing.T) {
	s, rec := newTestSupervisor(t, Config{})
	if err := s.Start(NodeSpec{ID: "missing", Path: "./does-not-exist", Dir: t.TempDir(), Restart: config.RestartPolicy{Mode: config.RestartAlways}}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 10*time.Second)
	res := s.Results()
	if len(res) != 1 || !res[0].Failed || res[0].Error == "" {
		t.Fatalf("results %+v", res)
	}
	if got := rec.kinds("missing"); !slices.Equal(got, []EventKind{EventFailed}) {
		t.Fatalf("events %v", got)
	}
}

func TestOnFailureMaxRestartsExactly(t *testing.T) {
	s, rec := newTestSupervisor(t, Config{})
	var mu sync.Mutex
	var counts []int
	var exits [][2]bool
	s.cfg.Hooks = Hooks{
		Prepare: func(node string, restartCount int) ([]string, []*os.File, error) {
			mu.Lock()
			counts = append(counts, restartCount)
			mu.Unlock()
			return []string{"ADORA_RESTART_COUNT=" + strconv.Itoa(restartCount)}, nil, nil
		},
		Exited: func(node string, restarting, failed bool) {
			mu.Lock()
			exits = append(exits, [2]bool{restarting, failed})
			mu.Unlock()
		},
	}
	spec := shNode("crash", `echo "attempt $ADORA_RESTART_COUNT"; exit 3`)
	spec.Restart = config.RestartPolicy{Mode: config.RestartOnFailure, MaxRestarts: 3}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 20*time.Second)
	if n := rec.count("crash", EventStarted); n != 4 {
		t.Fatalf("started %d times, want 4 (1 + 3 restarts)", n)
	}
	if n := rec.count("crash", EventRestarting); n != 3 {
		t.Fatalf("restarting events %d, want 3", n)
	}
	kinds := rec.kinds("crash")
	if kinds[len(kinds)-1] != EventFailed {
		t.Fatalf("last event %v, want failed", kinds[len(kinds)-1])
	}
	if !slices.Equal(counts, []int{0, 1, 2, 3}) {
		t.Fatalf("restart counts %v", counts)
	}
	if got := rec.texts("crash", Stdout); !slices.Equal(got, []string{"attempt 0", "attempt 1", "attempt 2", "attempt 3"}) {
		t.Fatalf("stdout %q", got)
	}
	wantExits := [][2]bool{{true, false}, {true, false}, {true, false}, {false, true}}
	if !slices.Equal(exits, wantExits) {
		t.Fatalf("Exited hook calls %v, want %v", exits, wantExits)
	}
	res := s.Results()
	if len(res) != 1 || !res[0].Failed || res[0].ExitCode != 3 || res[0].Restarts != 3 ||
		!strings.Contains(res[0].Error, "max restarts (3) exceeded") {
		t.Fatalf("result %+v", res)
	}
}

// fakeClock fires every timer at once and records the requested delays.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	delays []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delays = append(c.delays, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestBackoffUsesClock(t *testing.T) {
	clk := &fakeClock{now: time.Unix(5000, 0)}
	s, _ := newTestSupervisor(t, Config{Clock: clk})
	spec := shNode("flappy", "exit 1")
	spec.Restart = config.RestartPolicy{Mode: config.RestartAlways, MaxRestarts: 5, RestartDelay: time.Second, MaxRestartDelay: 5 * time.Second}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 20*time.Second)
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if !slices.Equal(clk.delays, want) {
		t.Fatalf("backoff delays %v, want %v", clk.delays, want)
	}
}

func TestStopGracefulWithHook(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "stop-requested")
	var stopCalls int
	var mu sync.Mutex
	s, rec := newTestSupervisor(t, Config{Hooks: Hooks{RequestStop: func(node string) bool {
		mu.Lock()
		stopCalls++
		mu.Unlock()
		os.WriteFile(flag, nil, 0o644)
		return true
	}}})
	// The node polls for the stop flag the way a node waits for STOP.
	spec := shNode("polite", fmt.Sprintf(`echo up; while [ ! -e %q ]; do sleep 0.05; done; echo bye`, flag))
	spec.Restart = config.RestartPolicy{Mode: config.RestartAlways}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitLine(t, rec, "polite", "up")
	s.Stop(5*time.Second, false)
	waitDone(t, s, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if stopCalls != 1 {
		t.Fatalf("RequestStop called %d times", stopCalls)
	}
	res := s.Results()
	if len(res) != 1 || res[0].Failed || !res[0].Stopped || res[0].Signal != "" {
		t.Fatalf("result %+v", res)
	}
	rec.mu.Lock()
	last := rec.events[len(rec.events)-1]
	rec.mu.Unlock()
	if last.Kind != EventFinished || !last.Stopped {
		t.Fatalf("last event %+v, want finished and stopped", last)
	}
	if n := rec.count("polite", EventStarted); n != 1 {
		t.Fatalf("restarted after stop: %d starts", n)
	}
}

func waitLine(t *testing.T, rec *recorder, node, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(rec.texts(node, Stdout), line) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s never printed %q", node, line)
}

func TestStopEscalatesToSIGTERMThenSIGKILL(t *testing.T) {
	t.Run("SIGTERM after grace", func(t *testing.T) {
		s, rec := newTestSupervisor(t, Config{Hooks: Hooks{RequestStop: func(string) bool { return true }}})
		if err := s.Start(shNode("deaf", `echo up; exec sleep 30`)); err != nil {
			t.Fatal(err)
		}
		waitLine(t, rec, "deaf", "up")
		start := time.Now()
		s.Stop(200*time.Millisecond, false)
		waitDone(t, s, 10*time.Second)
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Fatalf("stopped after %v, before the grace period", el)
		}
		if res := s.Results(); res[0].Signal != syscall.SIGTERM.String() || res[0].Failed {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("SIGTERM at once when the request cannot be delivered", func(t *testing.T) {
		s, rec := newTestSupervisor(t, Config{Hooks: Hooks{RequestStop: func(string) bool { return false }}})
		if err := s.Start(shNode("plain", `echo up; exec sleep 30`)); err != nil {
			t.Fatal(err)
		}
		waitLine(t, rec, "plain", "up")
		start := time.Now()
		s.Stop(time.Hour, false)
		waitDone(t, s, 10*time.Second)
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("stopped after %v: waited for the grace period", el)
		}
		if res := s.Results(); res[0].Signal != syscall.SIGTERM.String() {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("SIGKILL when SIGTERM is ignored", func(t *testing.T) {
		s, rec := newTestSupervisor(t, Config{})
		if err := s.Start(shNode("stubborn", `trap '' TERM; echo up; while true; do sleep 0.05; done`)); err != nil {
			t.Fatal(err)
		}
		waitLine(t, rec, "stubborn", "up")
		s.Stop(200*time.Millisecond, false)
		waitDone(t, s, 10*time.Second)
		if res := s.Results(); res[0].Signal != syscall.SIGKILL.String() {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("force kills at once", func(t *testing.T) {
		s, rec := newTestSupervisor(t, Config{Hooks: Hooks{RequestStop: func(string) bool { t.Error("stop requested on force"); return true }}})
		if err := s.Start(shNode("victim", `trap '' TERM; echo up; while true; do sleep 0.05; done`)); err != nil {
			t.Fatal(err)
		}
		waitLine(t, rec, "victim", "up")
		s.Stop(time.Hour, true)
		waitDone(t, s, 5*time.Second)
		if res := s.Results(); res[0].Signal != syscall.SIGKILL.String() {
			t.Fatalf("result %+v", res)
		}
	})
}

func TestStopDuringBackoff(t *testing.T) {
	s, rec := newTestSupervisor(t, Config{})
	spec := shNode("slow", "exit 1")
	spec.Restart = config.RestartPolicy{Mode: config.RestartOnFailure, RestartDelay: time.Hour}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rec.count("slow", EventRestarting) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Nodes()[0].Status; st != Restarting {
		t.Fatalf("status %s, want restarting", st)
	}
	s.StopNode("slow", 0, false)
	waitDone(t, s, 5*time.Second)
	if res := s.Results(); res[0].Failed || !res[0].Stopped {
		t.Fatalf("result %+v", res)
	}
}

func TestProcessGroupIsKilledWithNode(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	s, _ := newTestSupervisor(t, Config{})
	// The node leaves a background child in its group and exits.
	if err := s.Start(shNode("parent", fmt.Sprintf(`sleep 30 & echo $! > %q; exit 0`, pidFile))); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 10*time.Second)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitGone(t, pid)
}

// waitGone waits until pid no longer runs (zombies count as gone).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still running", pid)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}

// TestNoOrphansWhenDaemonIsKilled runs the test binary as a daemon that
// supervises a node, kills it with SIGKILL, and checks that the node dies
// (Pdeathsig) and that ReapStale removes what is left of its group.
func TestNoOrphansWhenDaemonIsKilled(t *testing.T) {
	pidDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+pidDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var nodePID int
	if _, err := fmt.Fscan(out, &nodePID); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("read node pid: %v", err)
	}
	if !alive(nodePID) {
		t.Fatalf("node %d not running", nodePID)
	}
	if _, err := os.Stat(filepath.Join(pidDir, "sleeper.pid")); err != nil {
		t.Fatalf("pid file: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone(t, nodePID)
	// The background sleep of the node survived in the node's process
	// group; the next daemon start reaps it.
	if err := syscall.Kill(-nodePID, 0); err != nil {
		t.Fatalf("expected a leftover group member: %v", err)
	}
	n, err := ReapStale(pidDir, nil)
	if err != nil || n != 1 {
		t.Fatalf("ReapStale = %d, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-nodePID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("group still alive after ReapStale")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(pidDir, "sleeper.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left: %v", err)
	}
}

func TestReapStaleIgnoresReusedPID(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	start, err := ProcessStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// A record with another start time describes another process, and
	// one from another boot too.
	os.WriteFile(filepath.Join(dir, "x.pid"), fmt.Appendf(nil, "%d %d %s\n", pid, start+1, bootID()), 0o644)
	os.WriteFile(filepath.Join(dir, "y.pid"), fmt.Appendf(nil, "%d %d other-boot\n", pid, start), 0o644)
	if n, err := ReapStale(dir, nil); err != nil || n != 0 {
		t.Fatalf("ReapStale = %d, %v", n, err)
	}
	if !alive(pid) {
		t.Fatal("killed a process whose start time did not match")
	}
	os.WriteFile(filepath.Join(dir, "x.pid"), fmt.Appendf(nil, "%d %d %s\n", pid, start, bootID()), 0o644)
	if n, err := ReapStale(dir, nil); err != nil || n != 1 {
		t.Fatalf("ReapStale = %d, %v", n, err)
	}
	cmd.Wait()
	if cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("process state %v", cmd.ProcessState)
	}
}

func TestProcStat(t *testing.T) {
	st, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS == 0 || st.StartTime == 0 {
		t.Fatalf("stat %+v", st)
	}
	if _, err := ReadProcStat(1 << 30); err == nil {
		t.Fatal("no error for a missing process")
	}
}

func TestLongLinesAreSplit(t *testing.T) {
	s, rec := newTestSupervisor(t, Config{})
	// 200,000 'x' then a newline, then a short line.
	if err := s.Start(shNode("long", `head -c 200000 /dev/zero | tr '\0' x; echo; echo short`)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 10*time.Second)
	lines := rec.texts("long", Stdout)
	if len(lines) < 4 || lines[len(lines)-1] != "short" {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	total := 0
	for _, l := range lines[:len(lines)-1] {
		if len(l) > maxLineBytes {
			t.Fatalf("line of %d bytes exceeds %d", len(l), maxLineBytes)
		}
		total += len(l)
	}
	if total != 200000 {
		t.Fatalf("long line carried %d bytes, want 200000", total)
	}
}

func TestMayRestartHook(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	// Allowed when asked at the exit, refused after the backoff.
	s, rec := newTestSupervisor(t, Config{Hooks: Hooks{MayRestart: func(string) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return calls == 1, "all inputs closed"
	}}})
	spec := shNode("n", "exit 5")
	spec.Restart = config.RestartPolicy{Mode: config.RestartOnFailure, RestartDelay: 50 * time.Millisecond}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 10*time.Second)
	res := s.Results()[0]
	if !res.Failed || res.ExitCode != 5 || !strings.Contains(res.Error, "restart cancelled: all inputs closed") {
		t.Fatalf("result %+v", res)
	}
	if n := rec.count("n", EventStarted); n != 1 {
		t.Fatalf("started %d times", n)
	}
}

func TestNodeOutputRotates(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "chatty.jsonl")
	s, rec := newTestSupervisor(t, Config{LogMaxSize: 64 << 10, LogKeep: 3})
	spec := shNode("chatty", `i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done`)
	spec.LogPath = logPath
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 30*time.Second)
	if n := len(rec.texts("chatty", Stdout)); n != 20000 {
		t.Fatalf("callback saw %d lines, want 20000", n)
	}
	for _, p := range []string{logPath, logPath + ".1", logPath + ".2"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 64<<10 {
			t.Fatalf("%s: %v (size over the limit?)", p, err)
		}
	}
	if _, err := os.Stat(logPath + ".3"); !os.IsNotExist(err) {
		t.Fatalf("kept more than 3 files: %v", err)
	}
	tail, err := TailLog(logPath, 2)
	if err != nil || len(tail) != 2 || tail[0].Line != "line 19998" || tail[1].Line != "line 19999" {
		t.Fatalf("tail %+v, %v", tail, err)
	}
}

func TestStopBeforeSpawn(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	s, rec := newTestSupervisor(t, Config{})
	s.mu.Lock() // hold the node goroutine back until the stop is recorded
	if err := s.startLocked(shNode("late", "touch "+marker)); err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	for _, n := range s.nodes {
		s.stopLocked(n, 0, false)
	}
	s.mu.Unlock()
	waitDone(t, s, 5*time.Second)
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("a node stopped before its start was spawned anyway")
	}
	if res := s.Results(); len(res) != 1 || !res[0].Stopped || res[0].Failed {
		t.Fatalf("results %+v", res)
	}
	if n := rec.count("late", EventStarted); n != 0 {
		t.Fatalf("%d start events", n)
	}
}
