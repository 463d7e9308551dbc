// Package dataplane owns the daemon side of the node data plane on one
// machine: the unix socket nodes register on, routing of outputs to local
// inputs (fan-out, per-input queues and policies), built-in timers, the
// input_timeout circuit breaker, shared-memory region bookkeeping (drop
// tokens, reclamation when a node dies) and the hand-off to a Remote for
// receivers on other machines.
//
// One Router serves one dataflow on one daemon. The daemon calls
// PrepareNode before every spawn, passes the returned environment to the
// child, and reports exits with NodeExited:
//
//	spawn:    PrepareNode(id, restarts) -> env -> exec
//	running:  node registers on the socket, gets READY once every local
//	          node is connected (or gone), then events and outputs flow
//	stop:     RequestStop(id) -> STOP event; the daemon kills after a grace
//	exit:     NodeExited(id, restarting, failed)
//
// Messages per receiving node go through one FIFO (events and data in
// arrival order); data items are bounded per input by queue_size and the
// input's policy, and at most a window of data items is in flight to the
// node (acknowledged by ACK frames once the application took them).
//
// Goroutines, all owned by the Router and stopped and waited for by Close:
// one accept loop; per connection a reader (registers the node, routes its
// frames and, after each batch, writes to the receivers it queued for, to
// its own node after an ACK, and DROPPED to the owners of regions a RELEASE
// freed) and a writer (woken for timers, events, remote data and whatever
// a blocked reader left);
// one ticker per distinct timer interval. State is guarded by one mutex;
// socket writes happen outside it, one writer per connection at a time.
//
// Between nodes that registered with DIRECT, local routes move onto direct
// edges (edge.go): socket pairs the router creates and hands to the two
// nodes, so data skips the router; it keeps the decisions, lifecycle
// events and the accounting (the nodes' STATS).
package dataplane

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/adora-rs/adora/config"
	node "github.com/adora-rs/adora/nodes"
	"github.com/adora-rs/adora/transport/shm"
)

// Config configures a Router.
type Config struct {
	DataflowID string
	Dataflow   *config.Dataflow
	// Local lists the ids of the nodes this daemon runs.
	Local []string
	// SocketDir is where the node socket is created ("" = a private
	// temporary directory, removed by Close).
	SocketDir string
	Logger    *slog.Logger
	// Remote carries outputs to and from other machines; nil = single
	// machine.
	Remote Remote
	// ShmThreshold is the payload size from which nodes use shared memory
	// (0 = 4096).
	ShmThreshold int
	// DisableDirect keeps every local message on the daemon path (no
	// direct node-to-node edges, even for nodes that can use them).
	DisableDirect bool
}

// NodeMetrics are per-node data-plane counters.
type NodeMetrics struct {
	MessagesIn    uint64 `json:"messages_in"`    // input messages handed to the node
	MessagesOut   uint64 `json:"messages_out"`   // output messages the node sent
	Dropped       uint64 `json:"dropped"`        // input messages evicted by drop_oldest (or lost to a full timer queue)
	Pending       int    `json:"pending"`        // input messages queued or in flight
	InputTimeouts uint64 `json:"input_timeouts"` // input_timeout trips
	DirectIn      uint64 `json:"direct_in"`      // input messages that came over direct edges (part of MessagesIn)
}

// maxWindow caps the input messages in flight to one node.
const maxWindow = 16

// Router routes one dataflow's messages between the local nodes. All
// methods are safe for concurrent use.
type Router struct {
	cfg      Config
	log      *slog.Logger
	sockPath string
	ownDir   string
	ln       *net.UnixListener

	mu        sync.Mutex
	cond      *sync.Cond // signalled when queue space frees or state changes
	closed    bool
	nodes     map[string]*nodeState
	routes    map[outKey][]*inputState
	remoteOut map[outKey]bool
	waiting   map[string]bool // local nodes the start barrier still waits for
	regions   map[uint32]*region
	nextReg   uint32
	nextTok   uint64
	samples   map[uint64]*sample
	ownFree   []*region    // the router's own free regions (remote data)
	pumpLater *[]*nodeConn // set by a reader that pumps these connections itself
	edges     map[uint32]*edge
	nextEdge  uint32

	delivering sync.RWMutex // held (read) by DeliverRemote; Close takes it before unmapping

	quit chan struct{}
	wg   sync.WaitGroup
}

type outKey struct{ node, output string }

type nodeState struct {
	id         string
	spec       *config.Node
	inputs     map[string]*inputState
	outputs    map[string]bool
	closedOut  map[string]bool
	secret     string
	restarts   int
	conn       *nodeConn // receives events; nil when none is registered
	lastConn   *nodeConn // latest registration, possibly still draining
	gone       bool
	allClosed  bool // ALL_INPUTS_CLOSED was queued
	fifo       *list.List
	window     int
	metrics    NodeMetrics
	everJoined bool
}

type inputState struct {
	node    *nodeState
	spec    config.Input
	size    int
	items   []*item // queued data items, oldest first
	closed  bool
	broken  bool // input_timeout tripped
	gen     uint64
	timeout *time.Timer
	edge    *edge // the cut-over direct edge feeding it; nil = daemon path
}

// item is one entry of a node's FIFO: a data message for an input or an
// event.
type item struct {
	in     *inputState
	msg    *shm.Msg // events; for data: ID, Meta, Data
	data   bool
	sample *sample
	edge   *edge // EDGE_IN to send (the receiving end of a cut-over edge)
	elem   *list.Element
}

// NewRouter validates cfg, listens on the node socket and starts the
// built-in timers.
func NewRouter(cfg Config) (*Router, error) {
	if cfg.Dataflow == nil {
		return nil, errors.New("dataplane: no dataflow")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShmThreshold <= 0 {
		cfg.ShmThreshold = shm.DefaultThreshold
	}
	r := &Router{
		cfg:       cfg,
		log:       cfg.Logger.With("dataflow", cfg.DataflowID),
		nodes:     map[string]*nodeState{},
		routes:    map[outKey][]*inputState{},
		remoteOut: map[outKey]bool{},
		waiting:   map[string]bool{},
		regions:   map[uint32]*region{},
		samples:   map[uint64]*sample{},
		edges:     map[uint32]*edge{},
		quit:      make(chan struct{}),
	}
	r.cond = sync.NewCond(&r.mu)
	if err := r.build(); err != nil {
		return nil, err
	}
	if err := r.listen(); err != nil {
		return nil, err
	}
	r.startTimers()
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

func (r *Router) build() error {
	local := map[string]bool{}
	for _, id := range r.cfg.Local {
		n := r.cfg.Dataflow.Node(id)
		if n == nil {
			return fmt.Errorf("dataplane: local node %q is not in the dataflow", id)
		}
		local[id] = true
		ns := &nodeState{id: id, spec: n, inputs: map[string]*inputState{}, outputs: map[string]bool{},
			closedOut: map[string]bool{}, fifo: list.New(), window: 1}
		for _, o := range n.Outputs {
			ns.outputs[o] = true
		}
		for _, in := range n.Inputs {
			is := &inputState{node: ns, spec: in, size: in.QueueSize}
			if is.size <= 0 {
				is.size = config.DefaultQueueSize
			}
			ns.window = max(ns.window, min(is.size, maxWindow))
			ns.inputs[in.ID] = is
			if !in.Source.IsTimer() {
				k := outKey{in.Source.Node, in.Source.Output}
				r.routes[k] = append(r.routes[k], is)
			}
		}
		r.nodes[id] = ns
		r.waiting[id] = true
	}
	for i := range r.cfg.Dataflow.Nodes {
		n := &r.cfg.Dataflow.Nodes[i]
		if local[n.ID] {
			continue
		}
		for _, in := range n.Inputs {
			if local[in.Source.Node] {
				r.remoteOut[outKey{in.Source.Node, in.Source.Output}] = true
			}
		}
	}
	return nil
}

func (r *Router) listen() error {
	dir := r.cfg.SocketDir
	if dir == "" {
		d, err := os.MkdirTemp("", "adora-dp-")
		if err != nil {
			return fmt.Errorf("dataplane: socket directory: %w", err)
		}
		dir, r.ownDir = d, d
	}
	name := "dataplane.sock"
	if r.cfg.DataflowID != "" {
		id := r.cfg.DataflowID
		if len(id) > 12 {
			id = id[:12]
		}
		name = "dp-" + id + ".sock"
	}
	r.sockPath = filepath.Join(dir, name)
	if len(r.sockPath) >= 108 {
		r.cleanupDir()
		return fmt.Errorf("dataplane: socket path %s is too long for a unix socket (max 107 bytes): choose a shorter socket directory", r.sockPath)
	}
	os.Remove(r.sockPath)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: r.sockPath, Net: "unix"})
	if err != nil {
		r.cleanupDir()
		return fmt.Errorf("dataplane: listen on %s: %w", r.sockPath, err)
	}
	os.Chmod(r.sockPath, 0o600)
	r.ln = ln
	return nil
}

func (r *Router) cleanupDir() {
	if r.ownDir != "" {
		os.RemoveAll(r.ownDir)
	}
}

// SocketPath is the unix socket nodes connect to.
func (r *Router) SocketPath() string { return r.sockPath }

// PrepareNode must be called before every spawn (and respawn) of a local
// node. It returns the environment entries to add to the child's
// environment (ADORA_NODE_CONFIG) and extra files to pass (none today).
func (r *Router) PrepareNode(nodeID string, restartCount int) ([]string, []*os.File, error) {
	var secret [16]byte
	rand.Read(secret[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, errors.New("dataplane: router is closed")
	}
	ns := r.nodes[nodeID]
	if ns == nil {
		return nil, nil, fmt.Errorf("dataplane: node %q does not run on this daemon", nodeID)
	}
	ns.secret = hex.EncodeToString(secret[:])
	ns.restarts = restartCount
	ns.gone = false
	c := node.Config{
		Version:      node.ConfigVersion,
		DataflowID:   r.cfg.DataflowID,
		NodeID:       nodeID,
		Outputs:      slices.Clone(ns.spec.Outputs),
		Socket:       r.sockPath,
		Secret:       ns.secret,
		ShmThreshold: r.cfg.ShmThreshold,
		RestartCount: restartCount,
	}
	for _, in := range ns.spec.Inputs {
		ic := node.InputConfig{ID: in.ID, Source: in.Source.String(), QueueSize: in.QueueSize, QueuePolicy: string(in.QueuePolicy)}
		if in.InputTimeout > 0 {
			ic.InputTimeout = in.InputTimeout.String()
		}
		c.Inputs = append(c.Inputs, ic)
	}
	js, err := c.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("dataplane: encode node config: %w", err)
	}
	return []string{node.ConfigEnv + "=" + js}, nil, nil
}

// Metrics returns a snapshot of every local node's counters. Counters of
// direct edges come from the nodes' STATS frames; for a node whose exit
// was reported, Metrics first waits (briefly) until its connection has
// been read to the end, so its final STATS are included.
func (r *Router) Metrics() map[string]NodeMetrics {
	r.mu.Lock()
	defer r.mu.Unlock()
	for deadline := time.Now().Add(exitedReadWait); r.exitedReadingLocked() && time.Now().Before(deadline); {
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
		r.mu.Lock()
	}
	out := make(map[string]NodeMetrics, len(r.nodes))
	for id, ns := range r.nodes {
		m := ns.metrics
		for _, in := range ns.inputs {
			m.Pending += len(in.items)
		}
		if ns.conn != nil {
			m.Pending += ns.conn.inflight
			for _, p := range ns.conn.stats.pending {
				m.Pending += int(p)
			}
		}
		out[id] = m
	}
	return out
}

// exitedReadWait bounds how long Metrics waits for the connections of
// exited nodes to be read to the end.
const exitedReadWait = time.Second

func (r *Router) exitedReadingLocked() bool {
	for _, ns := range r.nodes {
		if c := ns.lastConn; c != nil && c.reading && c.exit != nil {
			return true
		}
	}
	return false
}

// Close disconnects every node, stops timers and removes the socket.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.quit)
	var conns []*nodeConn
	for _, ns := range r.nodes {
		for _, in := range ns.inputs {
			if in.timeout != nil {
				in.timeout.Stop()
			}
		}
	}
	for c := range r.allConnsLocked() {
		conns = append(conns, c)
	}
	r.cond.Broadcast()
	r.mu.Unlock()
	err := r.ln.Close()
	for _, c := range conns {
		c.c.Close()
	}
	r.wg.Wait()
	r.delivering.Lock()
	defer r.delivering.Unlock()
	r.mu.Lock()
	for id, reg := range r.regions {
		reg.closeLocked()
		delete(r.regions, id)
	}
	r.closeEdgesLocked()
	r.mu.Unlock()
	os.Remove(r.sockPath)
	r.cleanupDir()
	return err
}
