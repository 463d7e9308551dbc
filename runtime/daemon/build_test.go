package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/supervisor"
)

func TestBuildLines(t *testing.T) {
	got := BuildLines("  make  \n\n\tgo build -o node .\r\n   \n")
	want := []BuildLine{{1, "make"}, {3, "go build -o node ."}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("BuildLines = %+v, want %+v", got, want)
	}
}

// collector records build lines.
type collector struct {
	mu    sync.Mutex
	lines []supervisor.LogLine
}

func (c *collector) add(l supervisor.LogLine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
}

func (c *collector) has(node string, s supervisor.Stream, text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if l.Node == node && l.Stream == s && l.Line == text {
			return true
		}
	}
	return false
}

func TestBuildRunsLinesInOrderWithEnv(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	df := &config.Dataflow{
		Env: map[string]string{"FLAVOR": "df", "SHARED": "df"},
		Nodes: []config.Node{
			{ID: "b", Build: "echo b >> ../order\necho \"$FLAVOR $SHARED $ADORA_NODE_ID $ADORA_DATAFLOW_ID\"\necho err >&2", Env: map[string]string{"SHARED": "node"},
				Deploy: config.Deploy{WorkingDir: "sub"}},
			{ID: "none"},
			{ID: "a", Build: "echo a >> order"},
		},
	}
	var c collector
	err := Build(context.Background(), BuildConfig{
		DataflowID: "flow-1", Dataflow: df, Nodes: []string{"a", "b", "none"}, WorkingDir: dir,
		LogPath: func(n string) string { return LogPath(dir, "flow-1", n) }, OnLog: c.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Dataflow order (b before a), each in its own working directory.
	if b, _ := os.ReadFile(filepath.Join(dir, "order")); string(b) != "b\na\n" {
		t.Fatalf("order file %q", b)
	}
	if !c.has("b", supervisor.Stdout, "df node b flow-1") || !c.has("b", supervisor.Stderr, "err") ||
		!c.has("b", BuildStream, "build line 1: echo b >> ../order") {
		t.Fatalf("lines %+v", c.lines)
	}
	logged, err := supervisor.TailLog(LogPath(dir, "flow-1", "b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, l := range logged {
		texts = append(texts, l.Line)
	}
	if !strings.Contains(strings.Join(texts, "\n"), "df node b flow-1") {
		t.Fatalf("log file of b: %q", texts)
	}
	if _, err := os.Stat(LogPath(dir, "flow-1", "none")); err == nil {
		t.Fatal("a node without build lines got a log file from the build")
	}
}

func TestBuildFailureNamesTheLine(t *testing.T) {
	dir := t.TempDir()
	df := &config.Dataflow{Nodes: []config.Node{
		{ID: "x", Build: "true\n\nexit 3\ntouch not-reached"},
		{ID: "y", Build: "touch y-built"},
	}}
	var c collector
	err := Build(context.Background(), BuildConfig{Dataflow: df, WorkingDir: dir, OnLog: c.add})
	var be *BuildError
	if !errors.As(err, &be) || be.Node != "x" || be.Line != 3 {
		t.Fatalf("err = %v", err)
	}
	if want := `build of node x failed: line 3 "exit 3": exit status 3`; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	for _, f := range []string{"not-reached", "y-built"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s exists: the build went on after a failure", f)
		}
	}
	if !c.has("x", BuildStream, err.Error()) {
		t.Fatalf("failure not in the node's log: %+v", c.lines)
	}
}

func TestBuildTimeoutKillsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	// The background sleep would keep the line alive if only sh died.
	df := &config.Dataflow{Nodes: []config.Node{{ID: "slow", Build: "sleep 60 & echo $! > child; wait"}}}
	start := time.Now()
	err := Build(context.Background(), BuildConfig{Dataflow: df, WorkingDir: dir, Timeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), `build of node slow failed: line 1`) || !strings.Contains(err.Error(), "timed out after 500ms") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "child"))
	var pid int
	for _, ch := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(ch-'0')
	}
	deadline := time.Now().Add(20 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("build child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildDataflow is a node whose executable exists only after its build:
// the build writes a script and counts its runs in builds.txt.
func buildDataflow(script string) config.Dataflow {
	return config.Dataflow{
		Env: map[string]string{"MSG": "built-by-env"},
		Nodes: []config.Node{{
			ID:    "made",
			Path:  "./made.sh",
			Build: "echo build >> builds.txt\nprintf '#!/bin/sh\\n" + script + "\\n' > made.sh\nchmod +x made.sh",
		}},
	}
}

func TestDaemonBuildsBeforeFirstSpawn(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	wd := t.TempDir()
	m := spawnMsg(buildDataflow(`echo node says $MSG`), "made")
	m.WorkingDir = wd
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fc, proto.TypeLog, func(l proto.Log) bool { return hasLine(l.Lines, proto.Stdout, "node says built-by-env") })
	fin := waitEvent[proto.DataflowFinished](t, fc, proto.TypeDataflowFinished, nil)
	if fin.Failed {
		t.Fatalf("finished %+v", fin)
	}
	var logs proto.LogsReply
	if err := request(t, fc.conn(), proto.TypeLogs, proto.Logs{Dataflow: m.DataflowID, Node: "made"}, &logs); err != nil {
		t.Fatal(err)
	}
	if !hasLine(logs.Lines, proto.System, "build line 1: echo build >> builds.txt") || !hasLine(logs.Lines, proto.System, "build done") {
		t.Fatalf("build lines missing from the node's log: %+v", logs.Lines)
	}
}

func TestDaemonRestartAndRecoveryDoNotRebuild(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	wd := t.TempDir()
	df := buildDataflow("exit 1")
	df.Nodes[0].Restart = config.RestartPolicy{Mode: config.RestartOnFailure, MaxRestarts: 2}
	m := spawnMsg(df, "made")
	m.WorkingDir = wd
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	fin := waitEvent[proto.DataflowFinished](t, fc, proto.TypeDataflowFinished, nil)
	if !fin.Failed || len(fin.Nodes) != 1 || fin.Nodes[0].Restarts != 2 {
		t.Fatalf("finished %+v", fin)
	}
	// A recovery spawn (the coordinator re-spawning lost nodes) reuses
	// the binary too.
	rec := m
	rec.Recovery = true
	if err := request(t, fc.conn(), proto.TypeSpawn, rec, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent[proto.DataflowFinished](t, fc, proto.TypeDataflowFinished, nil)
	if b, _ := os.ReadFile(filepath.Join(wd, "builds.txt")); string(b) != "build\n" {
		t.Fatalf("builds.txt = %q: three starts and a recovery must build once", b)
	}
}

func TestDaemonFailedBuildFailsTheSpawn(t *testing.T) {
	fc := newFakeCoordinator(t)
	rd := startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	wd := t.TempDir()
	df := config.Dataflow{Nodes: []config.Node{
		{ID: "first", Path: "/bin/true", Build: "touch first-built"},
		{ID: "broken", Path: "./never", Build: "echo compiling\necho 'syntax error' >&2; false"},
		{ID: "shipped", Path: "./shipped", Build: "touch must-not-run", Deploy: config.Deploy{Distribute: config.DistributeSCP}},
	}}
	m := spawnMsg(df, "first", "broken", "shipped")
	m.WorkingDir = wd
	err := request(t, fc.conn(), proto.TypeSpawn, m, nil)
	if err == nil || !strings.Contains(err.Error(), `build of node broken failed: line 2 "echo 'syntax error' >&2; false": exit status 1`) {
		t.Fatalf("spawn error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(wd, "first-built")); err != nil {
		t.Fatal("the node before the broken one was not built")
	}
	if _, err := os.Stat(filepath.Join(wd, "must-not-run")); err == nil {
		t.Fatal("a distribute: scp node was built on the target")
	}
	var logs proto.LogsReply
	if err := request(t, fc.conn(), proto.TypeLogs, proto.Logs{Dataflow: m.DataflowID, Node: "broken"}, &logs); err != nil {
		t.Fatal(err)
	}
	if !hasLine(logs.Lines, proto.Stderr, "syntax error") || !hasLine(logs.Lines, proto.System, "build of node broken failed") {
		t.Fatalf("build output missing from the node's log: %+v", logs.Lines)
	}
	// Nothing runs: the dataflow is unknown to the daemon afterwards.
	if rep := rd.d.statusReport(); len(rep.Dataflows) != 0 {
		t.Fatalf("status after a failed build: %+v", rep)
	}
}

func TestDaemonStopDuringBuildSpawnsNothing(t *testing.T) {
	fc := newFakeCoordinator(t)
	rd := startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	wd := t.TempDir()
	df := config.Dataflow{Nodes: []config.Node{{ID: "n", Path: "/bin/sleep", Args: []string{"30"}, Build: "touch started; sleep 60"}}}
	m := spawnMsg(df, "n")
	m.WorkingDir = wd
	errCh := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		errCh <- fc.conn().Request(ctx, proto.TypeSpawn, m, nil)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(wd, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("build never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := request(t, fc.conn(), proto.TypeStop, proto.Stop{DataflowID: m.DataflowID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errCh:
		if err == nil || !strings.Contains(err.Error(), "cancelled") {
			t.Fatalf("spawn after stop = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("spawn still building after stop")
	}
	if rep := rd.d.statusReport(); len(rep.Dataflows) != 0 {
		t.Fatalf("status after a stop during the build: %+v", rep)
	}
}

func TestBuildLineLeavingABackgroundProcessSucceeds(t *testing.T) {
	old := buildWaitDelay
	buildWaitDelay = 200 * time.Millisecond // no test here runs in parallel
	t.Cleanup(func() { buildWaitDelay = old })
	dir := t.TempDir()
	df := &config.Dataflow{Nodes: []config.Node{{ID: "srv", Build: "sleep 60 & echo $! > server.pid\necho next-line-ran"}}}
	var c collector
	err := Build(context.Background(), BuildConfig{Dataflow: df, WorkingDir: dir, OnLog: c.add})
	b, _ := os.ReadFile(filepath.Join(dir, "server.pid"))
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("build with a background process: %v", err)
	}
	if !c.has("srv", supervisor.Stdout, "next-line-ran") {
		t.Fatalf("second line did not run: %+v", c.lines)
	}
}

func TestDaemonBuildsOneDataflowAtATime(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	wd := t.TempDir()
	trace := filepath.Join(wd, "trace")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		df := config.Dataflow{Nodes: []config.Node{{ID: "n", Path: "/bin/true",
			Build: "echo start >> " + trace + "\nsleep 0.3\necho end >> " + trace}}}
		m := spawnMsg(df, "n")
		m.WorkingDir = wd
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs[i] = fc.conn().Request(ctx, proto.TypeSpawn, m, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(trace); string(b) != "start\nend\nstart\nend\n" {
		t.Fatalf("builds of two dataflows overlapped:\n%s", b)
	}
}

func TestDaemonShutdownKillsABuild(t *testing.T) {
	fc := newFakeCoordinator(t)
	rd := startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	wd := t.TempDir()
	df := config.Dataflow{Nodes: []config.Node{{ID: "n", Path: "/bin/true", Build: "echo $$ > build.pid; exec sleep 600"}}}
	m := spawnMsg(df, "n")
	m.WorkingDir = wd
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		fc.conn().Request(ctx, proto.TypeSpawn, m, nil)
	}()
	var pid int
	deadline := time.Now().Add(20 * time.Second)
	for pid == 0 {
		if time.Now().After(deadline) {
			t.Fatal("build never started")
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(filepath.Join(wd, "build.pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	start := time.Now()
	if err := rd.stop(t); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("daemon took %v to stop during a build", d)
	}
	if processAlive(pid) {
		t.Fatalf("build process %d outlived the daemon's Run", pid)
	}
}
