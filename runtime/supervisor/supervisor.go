// Package supervisor runs the node processes of one dataflow on one
// machine: spawn (own process group, null stdin, merged environment), log
// capture to rotated per-node files whose lines are numbered (LogFile, the
// one numbering point of a node's log in this process), graceful stop
// (stop request, SIGTERM, SIGKILL) and restart policies with backoff.
//
// Node lifecycle, one goroutine per node:
//
//	Pending -> Running -> (exit) -> policy -> Restarting -> Running ...
//	                                      \-> Finished | Failed (final)
//	Running -> Stopping -> (exit) -> Finished (a stopped node did not fail)
//
// Orphans: every node is spawned from one goroutine locked to its OS thread
// for the supervisor's life, with Pdeathsig SIGTERM. If the daemon process
// dies (even by SIGKILL), the kernel sends SIGTERM to each node. The thread
// matters because Pdeathsig fires when the spawning thread exits, and Go
// may retire other threads at any time. Members of a node's process group
// that outlive it are reaped on the next daemon start from the pid files
// (see PIDDir and ReapStale).
package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
)

// DefaultGrace is how long a stopping node gets after the stop request
// before SIGTERM (and half of it again before SIGKILL).
const DefaultGrace = 10 * time.Second

// Status is a node's state as the supervisor sees it.
type Status string

const (
	Pending    Status = "pending"
	Running    Status = "running"
	Restarting Status = "restarting"
	Stopping   Status = "stopping"
	Finished   Status = "finished"
	Failed     Status = "failed"
)

// EventKind names a supervision event.
type EventKind string

const (
	EventStarted    EventKind = "started"
	EventExited     EventKind = "exited"
	EventRestarting EventKind = "restarting"
	EventFinished   EventKind = "finished" // final, success (or stopped)
	EventFailed     EventKind = "failed"   // final, failure
)

// Event reports one step of a node's lifecycle.
type Event struct {
	Kind     EventKind
	Node     string
	Time     time.Time
	PID      int
	Restarts int           // restarts of this node so far
	ExitCode int           // EventExited: -1 when killed by a signal
	Signal   string        // EventExited: the signal that killed it, if any
	Delay    time.Duration // EventRestarting: backoff before the spawn
	Stopped  bool          // EventFinished: the node ended because it was stopped
	Reason   string
}

// Result is a node's final outcome.
type Result struct {
	Node     string `json:"node"`
	Failed   bool   `json:"failed"`
	Stopped  bool   `json:"stopped,omitempty"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	Restarts int    `json:"restarts"`
	Error    string `json:"error,omitempty"`
}

// NodeState is a snapshot of one node.
type NodeState struct {
	ID       string
	PID      int // 0 when no process runs
	Status   Status
	Restarts int
}

// NodeSpec says how to run one node.
type NodeSpec struct {
	ID      string
	Path    string // resolved against Dir, see ResolvePath
	Args    []string
	Dir     string   // working directory
	Env     []string // KEY=VALUE; build it with BaseEnv, MapEnv and MergeEnv
	Restart config.RestartPolicy
	LogPath string // per-node log file; "" keeps no file
}

// Hooks connect the supervisor to the data plane. Any of them may be nil.
type Hooks struct {
	// Prepare runs before every spawn; env is merged last (it wins) and
	// files become the child's fds 3, 4, ... The supervisor closes files
	// after the spawn.
	Prepare func(node string, restartCount int) (env []string, files []*os.File, err error)
	// RequestStop asks a node to stop (step 1 of a graceful stop) and
	// reports whether the request reached the node. When it is nil or
	// returns false, step 1 is SIGTERM.
	RequestStop func(node string) bool
	// Exited is called after each process exit, before any restart.
	Exited func(node string, restarting, failed bool)
	// MayRestart is asked before a restart the policy allows, and again
	// after the backoff; false (with the reason) makes the exit final,
	// for example when every input of the node is closed.
	MayRestart func(node string) (bool, string)
}

// Clock is the time source for backoff and stop grace periods.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Supervisor.
type Config struct {
	Logger *slog.Logger
	Clock  Clock // nil: real time
	Hooks  Hooks
	// OnEvent and OnLog are called from node goroutines, concurrently for
	// different nodes; they must not block for long. A node with a
	// LogPath has each line numbered (LogLine.Seq) by its LogFile, and
	// OnLog runs under that file's lock, in numbering order: it should
	// return at once, and must not record to the node's log file.
	OnEvent func(Event)
	OnLog   func(LogLine)
	// LogMaxSize and LogKeep configure log rotation (0: defaults).
	LogMaxSize int64
	LogKeep    int
	// PIDDir, if set, holds one file per running node ("<pid> <start>
	// <boot id>")
	// so that ReapStale can clean up after a crashed daemon.
	PIDDir string
}

// Supervisor runs the nodes of one dataflow. Its methods are safe for
// concurrent use. Close must be called to release the spawner thread.
type Supervisor struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	spawnCh     chan spawnReq
	quit        chan struct{}
	spawnerDone chan struct{}

	mu      sync.Mutex
	nodes   map[string]*node
	active  int
	started bool
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

type node struct {
	spec NodeSpec
	logf *LogFile

	// guarded by Supervisor.mu
	status   Status
	pid      int
	restarts int
	grace    time.Duration
	stopping bool
	result   Result

	stopCh  chan struct{}
	forceCh chan struct{}
}

// New starts a Supervisor with no nodes.
func New(cfg Config) *Supervisor {
	s := &Supervisor{
		cfg:         cfg,
		log:         cfg.Logger,
		clock:       cfg.Clock,
		spawnCh:     make(chan spawnReq),
		quit:        make(chan struct{}),
		spawnerDone: make(chan struct{}),
		nodes:       map[string]*node{},
		done:        make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	go s.spawner()
	return s
}

// spawner starts every child from one locked OS thread; see the package
// comment. It never unlocks: when it returns, the thread exits.
func (s *Supervisor) spawner() {
	runtime.LockOSThread()
	defer close(s.spawnerDone)
	for {
		select {
		case r := <-s.spawnCh:
			r.done <- r.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

func (s *Supervisor) spawn(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	select {
	case s.spawnCh <- r:
		return <-r.done
	case <-s.quit:
		return errors.New("supervisor closed")
	}
}

// Start starts supervising a node. It fails for a duplicate id or after
// all nodes have finished.
func (s *Supervisor) Start(spec NodeSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(spec)
}

func (s *Supervisor) startLocked(spec NodeSpec) error {
	switch {
	case s.closed:
		return errors.New("start node: supervisor closed")
	case s.started && s.active == 0:
		return errors.New("start node: all nodes have finished")
	case s.nodes[spec.ID] != nil:
		return fmt.Errorf("start node %s: already supervised", spec.ID)
	}
	n := &node{spec: spec, status: Pending, stopCh: make(chan struct{}), forceCh: make(chan struct{})}
	if spec.LogPath != "" {
		lf, err := OpenLogFile(spec.LogPath, s.cfg.LogMaxSize, s.cfg.LogKeep)
		if err != nil {
			return fmt.Errorf("start node %s: %w", spec.ID, err)
		}
		n.logf = lf
	}
	s.nodes[spec.ID] = n
	s.active++
	s.started = true
	s.wg.Add(1)
	go s.runNode(n)
	return nil
}

// Stop stops every node: step 1 is the stop request, SIGTERM follows after
// grace and SIGKILL after grace/2 more; force kills at once. grace <= 0
// means DefaultGrace. Stop does not wait; use Done.
func (s *Supervisor) Stop(grace time.Duration, force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		s.stopLocked(n, grace, force)
	}
}

// StopNode stops one node like Stop; it reports whether the node exists.
func (s *Supervisor) StopNode(id string, grace time.Duration, force bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil {
		return false
	}
	s.stopLocked(n, grace, force)
	return true
}

func (s *Supervisor) stopLocked(n *node, grace time.Duration, force bool) {
	if grace <= 0 {
		grace = DefaultGrace
	}
	if !n.stopping {
		n.stopping = true
		n.grace = grace
		close(n.stopCh)
	}
	if force {
		select {
		case <-n.forceCh:
		default:
			close(n.forceCh)
		}
	}
}

// Done is closed when every started node has reached a final state.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Results returns the final outcome of every node that finished, by id.
func (s *Supervisor) Results() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Result
	for _, n := range s.nodes {
		if n.status == Finished || n.status == Failed {
			out = append(out, n.result)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Nodes returns a snapshot of every node, sorted by id.
func (s *Supervisor) Nodes() []NodeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeState, 0, len(s.nodes))
	for id, n := range s.nodes {
		out = append(out, NodeState{ID: id, PID: n.pid, Status: n.status, Restarts: n.restarts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close kills every node still running (SIGKILL), waits for all node
// goroutines and releases the spawner thread.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, n := range s.nodes {
		s.stopLocked(n, 0, true)
	}
	s.mu.Unlock()
	s.wg.Wait()
	close(s.quit)
	<-s.spawnerDone
	return nil
}

func (s *Supervisor) emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = s.clock.Now()
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

func (s *Supervisor) setStatus(n *node, st Status, pid int) {
	s.mu.Lock()
	n.status, n.pid = st, pid
	s.mu.Unlock()
}

func (s *Supervisor) isStopping(n *node) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return n.stopping
}

// runNode is the lifecycle loop of one node.
func (s *Supervisor) runNode(n *node) {
	defer s.wg.Done()
	id := n.spec.ID
	tr := newTracker(n.spec.Restart, s.clock.Now())
	for restarts := 0; ; restarts++ {
		if restarts == 0 && s.isStopping(n) {
			// Stopped before it ever ran: nothing to spawn.
			s.finish(n, Result{Node: id, Stopped: true})
			return
		}
		ex, err := s.runOnce(n, restarts)
		if err != nil {
			s.log.Error("node spawn failed", "node", id, "err", err)
			s.callExited(id, false, true)
			s.finish(n, Result{Node: id, Failed: true, ExitCode: -1, Restarts: restarts, Error: err.Error()})
			return
		}
		stopping := s.isStopping(n)
		failed := !ex.success() && !stopping
		d := tr.next(s.clock.Now(), failed, stopping)
		if ok, why := s.mayRestart(id); d.Restart && !ok {
			d = Decision{Reason: why}
		}
		s.emit(Event{Kind: EventExited, Node: id, PID: ex.pid, Restarts: restarts, ExitCode: ex.code, Signal: ex.signal, Reason: d.Reason})
		s.callExited(id, d.Restart, failed && !d.Restart)
		if !d.Restart {
			res := Result{Node: id, Failed: failed, Stopped: stopping, ExitCode: ex.code, Signal: ex.signal, Restarts: restarts}
			if failed {
				res.Error = ex.String()
				if d.Reason != "" && n.spec.Restart.Mode != "" && n.spec.Restart.Mode != config.RestartNever {
					res.Error += "; " + d.Reason
				}
			}
			s.finish(n, res)
			return
		}
		s.log.Info(d.Reason, "node", id, "delay", d.Delay)
		s.mu.Lock()
		n.status, n.pid, n.restarts = Restarting, 0, restarts+1
		s.mu.Unlock()
		s.emit(Event{Kind: EventRestarting, Node: id, Restarts: restarts + 1, Delay: d.Delay, Reason: d.Reason})
		if !s.sleep(n, d.Delay) {
			s.callExited(id, false, false)
			s.finish(n, Result{Node: id, Stopped: true, ExitCode: ex.code, Signal: ex.signal, Restarts: restarts})
			return
		}
		if ok, why := s.mayRestart(id); !ok {
			s.callExited(id, false, failed)
			res := Result{Node: id, Failed: failed, ExitCode: ex.code, Signal: ex.signal, Restarts: restarts}
			if failed {
				res.Error = ex.String() + "; restart cancelled: " + why
			}
			s.finish(n, res)
			return
		}
	}
}

func (s *Supervisor) mayRestart(id string) (bool, string) {
	if s.cfg.Hooks.MayRestart == nil {
		return true, ""
	}
	return s.cfg.Hooks.MayRestart(id)
}

func (s *Supervisor) callExited(id string, restarting, failed bool) {
	if s.cfg.Hooks.Exited != nil {
		s.cfg.Hooks.Exited(id, restarting, failed)
	}
}

// sleep waits d unless the node is stopped first (then it returns false).
func (s *Supervisor) sleep(n *node, d time.Duration) bool {
	if d <= 0 {
		return !s.isStopping(n)
	}
	select {
	case <-s.clock.After(d):
		return !s.isStopping(n)
	case <-n.stopCh:
		return false
	}
}

func (s *Supervisor) finish(n *node, res Result) {
	if n.logf != nil {
		n.logf.Close()
	}
	s.removePIDFile(n.spec.ID)
	s.mu.Lock()
	n.result = res
	n.pid = 0
	if res.Failed {
		n.status = Failed
	} else {
		n.status = Finished
	}
	s.active--
	last := s.active == 0
	s.mu.Unlock()
	kind := EventFinished
	if res.Failed {
		kind = EventFailed
	}
	s.emit(Event{Kind: kind, Node: res.Node, Restarts: res.Restarts, ExitCode: res.ExitCode, Signal: res.Signal, Stopped: res.Stopped, Reason: res.Error})
	if last {
		close(s.done)
	}
}

// exitInfo describes how a process ended.
type exitInfo struct {
	pid    int
	code   int
	signal string
}

func (e exitInfo) success() bool { return e.code == 0 && e.signal == "" }

func (e exitInfo) String() string {
	if e.signal != "" {
		return "killed by signal " + e.signal
	}
	return fmt.Sprintf("exited with code %d", e.code)
}

func exitOf(pid int, st *os.ProcessState) exitInfo {
	ex := exitInfo{pid: pid, code: -1}
	if st == nil {
		return ex
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		ex.signal = ws.Signal().String()
	default:
		ex.code = st.ExitCode()
	}
	return ex
}
