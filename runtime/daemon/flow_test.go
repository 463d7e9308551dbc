package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/supervisor"
)

// fakeRouter records how a Flow drives its router.
type fakeRouter struct {
	mu        sync.Mutex
	connected map[string]bool
	stops     []string
	exits     []string
	closed    bool
}

func (r *fakeRouter) PrepareNode(id string, restarts int) ([]string, []*os.File, error) {
	return []string{"FROM_ROUTER=" + id}, nil, nil
}

func (r *fakeRouter) RequestStop(id string) {
	r.mu.Lock()
	r.stops = append(r.stops, id)
	r.mu.Unlock()
}

func (r *fakeRouter) NodeExited(id string, restarting, failed bool) {
	r.mu.Lock()
	r.exits = append(r.exits, id)
	r.mu.Unlock()
}

func (r *fakeRouter) Drops() map[string]uint64 { return map[string]uint64{"a": 7} }

func (r *fakeRouter) InputTimeouts() uint64 { return 3 }

func (r *fakeRouter) Connected(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connected[id]
}

func (r *fakeRouter) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func TestFlowDrivesRouter(t *testing.T) {
	fr := &fakeRouter{connected: map[string]bool{"sdk": true}}
	var mu sync.Mutex
	var lines []string
	df := shDataflow(map[string]string{
		// "sdk" stands for a connected node: it ends when told (stop flag).
		"sdk":   `echo "$FROM_ROUTER"; exec sleep 30`,
		"plain": `echo "$FROM_ROUTER"; exec sleep 30`,
	})
	f, err := StartFlow(FlowConfig{
		ID: "f1", Dataflow: &df, WorkingDir: t.TempDir(), StateDir: t.TempDir(),
		NewRouter: func(cfg RouterConfig) (Router, error) {
			if len(cfg.Local) != 2 || cfg.DataflowID != "f1" || cfg.SocketDir == "" {
				t.Errorf("router config %+v", cfg)
			}
			return fr, nil
		},
		OnLog: func(l supervisor.LogLine) {
			mu.Lock()
			lines = append(lines, l.Line)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sockDir := f.SocketDir()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nodes did not print")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	slices.Sort(lines)
	got := slices.Clone(lines)
	mu.Unlock()
	if !slices.Equal(got, []string{"plain", "sdk"}) {
		t.Fatalf("router env reached nodes as %q", got)
	}
	if d := f.Drops(); d["a"] != 7 {
		t.Fatalf("drops %v", d)
	}
	if n := f.InputTimeouts(); n != 3 {
		t.Fatalf("input timeouts %d", n)
	}
	start := time.Now()
	// The connected node gets the stop request and, ignoring it, SIGTERM
	// after the grace; the plain one gets SIGTERM at once.
	f.Stop(300*time.Millisecond, false)
	select {
	case <-f.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("flow did not stop")
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("stopped after %v, before the connected node's grace", el)
	}
	f.Close()
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if !slices.Equal(fr.stops, []string{"sdk"}) {
		t.Fatalf("stop requests %v, want only the connected node", fr.stops)
	}
	if len(fr.exits) != 2 || !fr.closed {
		t.Fatalf("exits %v closed %v", fr.exits, fr.closed)
	}
	if _, err := os.Stat(sockDir); !os.IsNotExist(err) {
		t.Fatalf("socket dir left: %v", err)
	}
	for _, r := range f.Results() {
		if r.Failed || !r.Stopped {
			t.Fatalf("result %+v", r)
		}
	}
}

// TestFlowNoRestartWhenInputsClosed: a node with restart_policy always
// is not restarted once every node it reads from has ended for good.
func TestFlowNoRestartWhenInputsClosed(t *testing.T) {
	df := config.Dataflow{Nodes: []config.Node{
		{ID: "src", Path: "/bin/sh", Args: []string{"-c", "exit 0"}, Outputs: []string{"out"}},
		{ID: "dst", Path: "/bin/sh", Args: []string{"-c", "sleep 0.2; exit 0"},
			Inputs:  []config.Input{{ID: "in", Source: config.Source{Node: "src", Output: "out"}}},
			Restart: config.RestartPolicy{Mode: config.RestartAlways}},
		{ID: "ticking", Path: "/bin/sh", Args: []string{"-c", "sleep 0.2; exit 0"},
			Inputs:  []config.Input{{ID: "t", Source: config.Source{Node: "adora", Output: "timer/millis/10", Timer: 10 * time.Millisecond}}},
			Restart: config.RestartPolicy{Mode: config.RestartAlways, MaxRestarts: 2}},
	}}
	f, err := StartFlow(FlowConfig{ID: "f2", Dataflow: &df, WorkingDir: t.TempDir(), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	select {
	case <-f.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("flow did not end: %+v", f.Nodes())
	}
	byID := map[string]supervisor.Result{}
	for _, r := range f.Results() {
		byID[r.Node] = r
	}
	if r := byID["dst"]; r.Failed || r.Restarts > 1 {
		t.Fatalf("dst %+v: restarted although its only input was closed", r)
	}
	// A timer input never closes: the policy applies (max_restarts 2).
	if r := byID["ticking"]; r.Restarts != 2 {
		t.Fatalf("ticking %+v, want 2 restarts", r)
	}
}

func TestPruneLogs(t *testing.T) {
	state := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i := range 6 {
		dir := filepath.Join(state, "logs", fmt.Sprintf("df%d", i))
		os.MkdirAll(dir, 0o755)
		mod := base.Add(time.Duration(i) * time.Minute)
		os.Chtimes(dir, mod, mod)
	}
	// df0 is the oldest but still running: it stays.
	if n := PruneLogs(state, 3, map[string]bool{"df0": true}); n != 2 {
		t.Fatalf("removed %d, want 2", n)
	}
	ents, _ := os.ReadDir(filepath.Join(state, "logs"))
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"df0", "df3", "df4", "df5"}) {
		t.Fatalf("left %v", left)
	}
	if n := PruneLogs(t.TempDir(), 3, nil); n != 0 {
		t.Fatalf("pruned %d in an empty state dir", n)
	}
}
