package dataplane

import (
	"bufio"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/adora-rs/adora/config"
)

func TestMain(m *testing.M) {
	if name := os.Getenv("DP_TEST_NODE"); name != "" {
		os.Exit(runTestNode(name))
	}
	goleak.VerifyTestMain(m)
}

// harness runs a Router and spawns node processes (this test binary) the
// way the daemon does: PrepareNode, exec with the returned environment,
// NodeExited when the process exits.
type harness struct {
	t   *testing.T
	r   *Router
	dir string

	mu    sync.Mutex
	procs map[string]*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func newHarness(t *testing.T, df *config.Dataflow) *harness {
	t.Helper()
	var local []string
	for _, n := range df.Nodes {
		local = append(local, n.ID)
	}
	return newHarnessWith(t, df, local, nil)
}

// newHarnessWith runs only the local nodes here; the others are remote.
func newHarnessWith(t *testing.T, df *config.Dataflow, local []string, remote Remote) *harness {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("DP_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := NewRouter(Config{DataflowID: "df-" + strconv.Itoa(os.Getpid()), Dataflow: df, Local: local, Logger: logger, Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, r: r, dir: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(h.close)
	return h
}

func (h *harness) logPath(id string) string { return filepath.Join(h.dir, id+".log") }

// spawn starts node id running test node kind with extra DP_* settings.
// onExit decides restarting for NodeExited (nil = never).
func (h *harness) spawn(id, kind string, restarts int, env ...string) *proc {
	h.t.Helper()
	penv, files, err := h.r.PrepareNode(id, restarts)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), penv...)
	cmd.Env = append(cmd.Env, "DP_TEST_NODE="+kind, "DP_LOG="+h.logPath(id))
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	h.mu.Lock()
	h.procs[id] = p
	h.mu.Unlock()
	return p
}

// reap waits for the process and reports the exit to the router.
func (h *harness) reap(id string, restarting bool) error {
	h.mu.Lock()
	p := h.procs[id]
	h.mu.Unlock()
	err := p.cmd.Wait()
	h.r.NodeExited(id, restarting, err != nil)
	return err
}

// reapAll waits for every process in the background, reporting final exits.
func (h *harness) reapAsync(id string) chan error {
	ch := make(chan error, 1)
	go func() { ch <- h.reap(id, false) }()
	return ch
}

func (h *harness) close() {
	h.mu.Lock()
	for _, p := range h.procs {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
		}
	}
	h.mu.Unlock()
	h.r.Close()
}

func waitErr(t *testing.T, ch chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit in time", what)
		return nil
	}
}

// logLines reads a node's event log.
func (h *harness) logLines(id string) []string {
	h.t.Helper()
	f, err := os.Open(h.logPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitLog polls until pred holds for the node's log.
func (h *harness) waitLog(id string, pred func([]string) bool) []string {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines := h.logLines(id)
		if pred(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("node %s log never matched; last lines: %q", id, tail(lines, 10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func contains(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// inputs parses the INPUT lines: sequence numbers in arrival order, and
// whether every payload checked out with the expected size and sharing.
type inputLine struct {
	id     string
	seq    int
	size   int
	ok     bool
	shared bool
}

func parseInputs(lines []string) []inputLine {
	var out []inputLine
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 6 || f[0] != "INPUT" {
			continue
		}
		seq, _ := strconv.Atoi(f[2])
		size, _ := strconv.Atoi(f[3])
		out = append(out, inputLine{id: f[1], seq: seq, size: size, ok: f[4] == "true", shared: f[5] == "true"})
	}
	return out
}

// dataflow builds a dataflow model directly (no parser involved).
func dataflow(nodes ...config.Node) *config.Dataflow {
	return &config.Dataflow{Nodes: nodes}
}

func input(id, src string, size int, policy config.QueuePolicy) config.Input {
	n, o, _ := strings.Cut(src, "/")
	return config.Input{ID: id, Source: config.Source{Node: n, Output: o}, QueueSize: size, QueuePolicy: policy}
}

func timerInput(id string, d time.Duration) config.Input {
	return config.Input{ID: id, Source: config.Source{Node: config.TimerNode, Output: "timer/millis/" + strconv.Itoa(int(d/time.Millisecond)), Timer: d},
		QueueSize: config.DefaultQueueSize, QueuePolicy: config.DropOldest}
}

// regionCount reports live regions and samples, for leak checks.
func (r *Router) regionCount() (regions, samples int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.regions), len(r.samples)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func tail2(ins []inputLine) []inputLine {
	if len(ins) > 3 {
		return ins[len(ins)-3:]
	}
	return ins
}
