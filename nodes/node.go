// Package node is the Go SDK for adora node programs.
//
// A node is a process the daemon spawns with ADORA_NODE_CONFIG in its
// environment. It connects to the daemon, then reads events and sends
// outputs:
//
//	n, err := node.Init()
//	if err != nil { log.Fatal(err) }
//	defer n.Close()
//	for ev := range n.Events() {
//		if ev.Type == node.Input {
//			n.SendOutput("out", transform(ev.Data), node.Metadata{})
//		}
//	}
//
// Payloads of at least the shared-memory threshold (4 KiB by default) travel
// through memfd regions: the sender writes them once (AllocOutput +
// SendBuffer writes directly into shared memory) and receivers map the same
// pages read-only. Smaller payloads travel inline over the unix socket. The
// wire protocol is described in docs/node-protocol.md.
//
// Where the daemon offers it, messages between two Go nodes on one machine
// travel over a direct socket between the two processes (one hop instead
// of two through the daemon): the sender writes into the receiver's
// socket, the receiving SDK enforces the input's queue_size and
// queue_policy, and the daemon keeps routing decisions, lifecycle events
// and accounting. Nothing changes for the application.
//
// The package depends on the standard library, golang.org/x/sys and
// transport/shm only.
package node

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// ackBatch is how many consumed events may be acknowledged in one frame.
const ackBatch = 8

// Node is a connection to the daemon. SendOutput, AllocOutput, SendBuffer
// and CloseOutputs may be called from any goroutine; Events is meant for one
// consumer.
type Node struct {
	cfg  Config
	conn *shm.Conn
	pool *pool

	events    chan *Event
	closeOnce sync.Once // closes events
	done      chan struct{}
	doneOnce  sync.Once
	wg        sync.WaitGroup

	mu         sync.Mutex
	cond       *sync.Cond
	backlog    []*Event
	delivering bool
	stopped    bool // a terminal event was queued; later events are discarded
	readerDone bool
	prev       *Event // last event the application took
	pendingAck uint32
	ackEvery   uint32 // acknowledge after this many inputs (half the daemon's window)
	pendingRel []uint64
	relCount   int // releases queued (to the daemon and over edges)

	maps regionMaps // regions received from the daemon (reader goroutine only)

	outputs map[string]bool

	// Direct edges (docs/node-protocol.md). direct: both sides agreed at
	// registration. Sending: outMu serialises sends, so each receiver sees
	// one order, and guards the fields below it.
	direct    bool
	outMu     sync.Mutex
	outEdges  map[string][]*edgeOut
	needs     map[string]bool // ROUTES per output (absent = true)
	forced    map[string]bool // an edge failed: via the daemon until the next ROUTES
	directOut map[string]uint64
	outDirty  bool
	// closingOut is set by Close before it closes the outgoing edges.
	closingOut atomic.Bool
	// Receiving, guarded by mu: per direct input queue settings and
	// counters, the open incoming edges, and edges to unmap.
	directIns  map[string]*directIn
	edgesIn    []*edgeIn
	unmapLater []*edgeIn
	room       *sync.Cond // a direct input's queue got room
	closing    bool
	lastStats  time.Time
	statsDirty bool
}

// Init connects to the daemon using ADORA_NODE_CONFIG and registers. It
// returns once the daemon says every node of the dataflow on this machine
// is connected.
func Init() (*Node, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return InitWith(cfg)
}

// InitWith is Init with an explicit configuration.
func InitWith(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if cfg.ShmThreshold <= 0 {
		cfg.ShmThreshold = shm.DefaultThreshold
	}
	conn, err := shm.Dial(cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("connect to daemon at %s: %w", cfg.Socket, err)
	}
	reg := &shm.Msg{Type: shm.MsgRegister, Version: shm.ProtocolVersion, Dataflow: cfg.DataflowID, Node: cfg.NodeID, Secret: cfg.Secret}
	if useDirect {
		reg.Flags = shm.FlagDirect
	}
	if err := conn.WriteMsg(reg, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("register node %s: %w", cfg.NodeID, err)
	}
	m, err := conn.ReadMsg()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("register node %s: %w", cfg.NodeID, err)
	}
	if m.Type != shm.MsgReady {
		conn.Close()
		if m.Type == shm.MsgError {
			return nil, fmt.Errorf("register node %s: daemon refused: %s", cfg.NodeID, m.Error)
		}
		return nil, fmt.Errorf("register node %s: unexpected %s", cfg.NodeID, m.Type)
	}
	n := &Node{
		ackEvery: max(1, m.Count/2),
		cfg:      cfg,
		conn:     conn,
		events:   make(chan *Event),
		done:     make(chan struct{}),
		maps:     regionMaps{},
		outputs:  map[string]bool{},
		direct:   useDirect && m.Flags&shm.FlagDirect != 0,
		outEdges: map[string][]*edgeOut{}, needs: map[string]bool{}, forced: map[string]bool{},
		directOut: map[string]uint64{}, directIns: map[string]*directIn{},
	}
	n.pool = newPool(n, cfg.ShmPoolBytes)
	n.cond = sync.NewCond(&n.mu)
	n.room = sync.NewCond(&n.mu)
	for _, o := range cfg.Outputs {
		n.outputs[o] = true
	}
	n.wg.Add(2)
	go n.readLoop()
	go n.deliverLoop()
	if n.direct {
		n.wg.Add(1)
		go n.statsLoop()
	}
	return n, nil
}

// Config returns the configuration the node started with (Secret cleared).
func (n *Node) Config() Config {
	c := n.cfg
	c.Secret = ""
	c.Inputs = slices.Clone(c.Inputs)
	c.Outputs = slices.Clone(c.Outputs)
	return c
}

// ID is the node's id in the dataflow.
func (n *Node) ID() string { return n.cfg.NodeID }

// Events returns the event stream. It is closed after Stop,
// AllInputsClosed or Error, or when the node is closed.
func (n *Node) Events() <-chan *Event { return n.events }

// readLoop owns the read side of the connection.
func (n *Node) readLoop() {
	defer n.wg.Done()
	var cause error
	for {
		if n.conn.Buffered() == 0 {
			n.flushDue()
		}
		m, err := n.conn.ReadMsg()
		if err != nil {
			cause = err
			break
		}
		if err := n.handle(m); err != nil {
			cause = err
			break
		}
	}
	select {
	case <-n.done:
	default:
		n.dispatch(&Event{Type: Error, Err: fmt.Sprintf("connection to daemon lost: %v", cause)})
	}
	n.mu.Lock()
	n.readerDone = true
	n.cond.Broadcast()
	n.mu.Unlock()
	n.pool.shutdown()
}

func (n *Node) handle(m *shm.Msg) error {
	switch m.Type {
	case shm.MsgRegion:
		return n.maps.add(n.conn, m)
	case shm.MsgRegionClosed:
		n.maps.remove(m.Region)
	case shm.MsgDropped:
		n.pool.dropped(m.Regions)
	case shm.MsgReady:
	case shm.MsgError:
		n.dispatch(&Event{Type: Error, Err: m.Error})
	case shm.MsgEdgeOut:
		return n.onEdgeOut(m)
	case shm.MsgEdgeIn:
		return n.onEdgeIn(m)
	case shm.MsgRoutes:
		n.onRoutes(m)
	default:
		ev, err := n.toEvent(m)
		if err != nil {
			return err
		}
		n.drainFor(ev)
		n.dispatch(ev)
	}
	return nil
}

func (n *Node) toEvent(m *shm.Msg) (*Event, error) {
	ev := &Event{n: n, ID: m.ID, Inputs: m.IDs, Err: m.Error}
	switch m.Type {
	case shm.MsgInput:
		ev.Type = Input
		ev.Metadata = metadataFromWire(m.Meta)
		ev.Data = m.Data
		if m.Shm != nil {
			data, err := n.maps.payload(m)
			if err != nil {
				return nil, err
			}
			ev.Data = data
			ev.shared, ev.token = true, m.Token
		}
	case shm.MsgInputClosed:
		ev.Type = InputClosed
	case shm.MsgInputRecovered:
		ev.Type = InputRecovered
	case shm.MsgNodeRestarted:
		ev.Type = NodeRestarted
	case shm.MsgNodeFailed:
		ev.Type = NodeFailed
	case shm.MsgStop:
		ev.Type = Stop
	case shm.MsgAllInputsClosed:
		ev.Type = AllInputsClosed
	default:
		return nil, fmt.Errorf("unexpected frame %s from daemon", m.Type)
	}
	return ev, nil
}

func terminal(t EventType) bool { return t == Stop || t == AllInputsClosed || t == Error }

// dispatch hands ev to the application: directly when it is waiting and
// nothing is queued, else through the backlog served by deliverLoop.
func (n *Node) dispatch(ev *Event) {
	n.mu.Lock()
	if n.stopped {
		if ev.Type == Input {
			if ev.edge == nil {
				n.pendingAck++
			}
			if ev.shared && !ev.released.Swap(true) {
				n.releaseLocked(ev)
			}
		}
		n.mu.Unlock()
		return
	}
	if terminal(ev.Type) {
		n.stopped = true
	}
	if ev.Type == Stop {
		// STOP goes ahead of queued inputs: the daemon puts it ahead of
		// its queue, and the direct inputs queued here are discarded.
		n.discardAllDirectLocked()
	}
	if len(n.backlog) == 0 && !n.delivering {
		n.mu.Unlock()
		select {
		case n.events <- ev:
			n.mu.Lock()
			n.consumedLocked(ev)
			n.mu.Unlock()
			if ev.edge != nil {
				// Let the application's goroutine run here and now,
				// before this edge reader's next system calls: it
				// otherwise tends to be woken on the other CPU (measured:
				// p50 15 to 50 µs lower from 2 KB up, docs/benchmarks.md).
				runtime.Gosched()
			}
			return
		default:
		}
		n.mu.Lock()
	}
	if ev.edge != nil {
		n.queueDirectLocked(ev)
	}
	n.backlog = append(n.backlog, ev)
	n.cond.Signal()
	n.mu.Unlock()
}

// consumedLocked records that the application took ev: it is acknowledged,
// the previous event is auto-released, and the stream ends after a
// terminal event.
func (n *Node) consumedLocked(ev *Event) {
	if ev.Type == Input && ev.edge == nil {
		n.pendingAck++
	}
	if p := n.prev; p != nil && p.shared && !p.retained.Load() && !p.released.Swap(true) {
		n.releaseLocked(p)
	}
	n.prev = ev
	if terminal(ev.Type) {
		n.closeOnce.Do(func() { close(n.events) })
	}
}

// deliverLoop serves the backlog when the application is slower than the
// daemon.
func (n *Node) deliverLoop() {
	defer n.wg.Done()
	defer n.closeOnce.Do(func() { close(n.events) })
	for {
		n.mu.Lock()
		for len(n.backlog) == 0 && !n.readerDone {
			n.cond.Wait()
		}
		if len(n.backlog) == 0 {
			n.mu.Unlock()
			return
		}
		ev := n.backlog[0]
		n.backlog = n.backlog[1:]
		if ev.edge != nil {
			n.unqueueDirectLocked(ev)
		}
		n.delivering = true
		n.mu.Unlock()
		select {
		case n.events <- ev:
		case <-n.done:
			return
		}
		n.mu.Lock()
		n.delivering = false
		n.consumedLocked(ev)
		due := n.pendingAck >= n.ackEvery || n.relCount >= ackBatch || (len(n.backlog) == 0 && n.relCount > 0)
		n.mu.Unlock()
		if due {
			n.flush()
		}
	}
}

// release sends an event's drop token at once.
func (n *Node) release(ev *Event) {
	n.mu.Lock()
	n.releaseLocked(ev)
	n.mu.Unlock()
	n.flush()
}

// releaseLocked queues the drop token of a shared event for its sender:
// the daemon, or the direct edge it came over.
func (n *Node) releaseLocked(ev *Event) {
	n.relCount++
	e := ev.edge
	if e == nil {
		n.pendingRel = append(n.pendingRel, ev.token)
		return
	}
	e.pendingRel = append(e.pendingRel, ev.token)
	e.held--
	if e.eof && e.held == 0 {
		n.unmapLater = append(n.unmapLater, e)
	}
}

// flushDue sends acknowledgements once half the daemon's window is
// consumed (so the daemon never stalls on a full window while the node
// waits), and releases at once (so senders get their regions back).
func (n *Node) flushDue() {
	n.mu.Lock()
	due := n.pendingAck >= n.ackEvery || n.relCount > 0
	n.mu.Unlock()
	if due {
		n.flush()
	}
}

// flush sends pending acknowledgements and releases (to the daemon and
// over direct edges), and STATS when due.
func (n *Node) flush() {
	n.mu.Lock()
	ack, rel := n.pendingAck, n.pendingRel
	n.pendingAck, n.pendingRel, n.relCount = 0, nil, 0
	edgeRel := n.takeEdgeReleasesLocked()
	unmap := n.unmapLater
	n.unmapLater = nil
	n.mu.Unlock()
	for _, r := range edgeRel {
		// A dead edge needs no release: its sender released everything.
		r.e.conn.WriteMsg(&shm.Msg{Type: shm.MsgRelease, Tokens: r.tokens}, nil)
	}
	for _, e := range unmap {
		e.unmapAll()
	}
	var b []byte
	if ack > 0 {
		b = shm.AppendFrame(b, &shm.Msg{Type: shm.MsgAck, Count: ack})
	}
	if len(rel) > 0 {
		b = shm.AppendFrame(b, &shm.Msg{Type: shm.MsgRelease, Tokens: rel})
	}
	if st := n.statsDue(false); st != nil {
		b = shm.AppendFrame(b, st)
	}
	if len(b) > 0 {
		n.conn.WriteFrames(b) // a write error surfaces through the read side
	}
}

func (n *Node) checkOutput(id string) error {
	if !n.outputs[id] {
		return fmt.Errorf("send output %q: not an output of node %s (declare it under outputs in the dataflow)", id, n.cfg.NodeID)
	}
	return nil
}

// SendOutput sends data on output id. Data of at least the shared-memory
// threshold is copied once into a shared region; smaller data goes inline.
// The caller may reuse data when SendOutput returns.
func (n *Node) SendOutput(id string, data []byte, meta Metadata) error {
	if err := n.checkOutput(id); err != nil {
		return err
	}
	if len(data) >= n.cfg.ShmThreshold {
		buf, err := n.AllocOutput(len(data))
		if err != nil {
			return err
		}
		copy(buf.Data, data)
		return n.SendBuffer(id, buf, meta)
	}
	w, err := meta.wire()
	if err != nil {
		return fmt.Errorf("send output %q: encode parameters: %w", id, err)
	}
	n.outMu.Lock()
	defer n.outMu.Unlock()
	n.sendEdgesLocked(id, w, data)
	if !n.viaDaemonLocked(id) {
		n.directOut[id]++
		n.outDirty = true
		return nil
	}
	if err := n.conn.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: id, Meta: w, Data: data}, nil); err != nil {
		return fmt.Errorf("send output %q: %w", id, err)
	}
	return nil
}

// SendBuffer sends a buffer from AllocOutput on output id without copying.
// The buffer belongs to adora afterwards: do not touch buf.Data again.
func (n *Node) SendBuffer(id string, buf *Buffer, meta Metadata) error {
	if err := n.checkOutput(id); err != nil {
		return err
	}
	if buf == nil || buf.reg == nil {
		return fmt.Errorf("send output %q: buffer already sent or freed", id)
	}
	w, err := meta.wire()
	if err != nil {
		return fmt.Errorf("send output %q: encode parameters: %w", id, err)
	}
	r := buf.reg
	buf.reg, buf.Data = nil, nil
	n.outMu.Lock()
	defer n.outMu.Unlock()
	n.pool.beginSend(r, false)
	n.sendEdgesShmLocked(id, w, r, buf.n)
	if !n.viaDaemonLocked(id) {
		n.directOut[id]++
		n.outDirty = true
		n.pool.endSend(r, false)
		return nil
	}
	n.pool.beginSend(r, true) // before OUTPUT: DROPPED may come back at once
	err = n.pool.announce(r)
	if err == nil {
		m := &shm.Msg{Type: shm.MsgOutput, ID: id, Meta: w, Shm: &shm.ShmRef{Region: r.id, Len: uint64(buf.n)}}
		err = n.conn.WriteMsg(m, nil)
	}
	n.pool.endSend(r, err != nil)
	if err != nil {
		return fmt.Errorf("send output %q: %w", id, err)
	}
	return nil
}

// CloseOutputs tells the daemon that the given outputs (all when none is
// given) will not send again; their receivers get InputClosed.
func (n *Node) CloseOutputs(ids ...string) error {
	if len(ids) == 0 {
		ids = n.cfg.Outputs
	}
	for _, id := range ids {
		if err := n.checkOutput(id); err != nil {
			return err
		}
	}
	n.outMu.Lock()
	defer n.outMu.Unlock()
	if err := n.conn.WriteMsg(&shm.Msg{Type: shm.MsgCloseOutputs, IDs: ids}, nil); err != nil {
		return fmt.Errorf("close outputs: %w", err)
	}
	return nil
}

// Close disconnects from the daemon and frees the node's shared memory. Events
// taken from the stream must not be used afterwards. Outputs are closed for
// receivers when the process exits.
func (n *Node) Close() error {
	n.doneOnce.Do(func() { close(n.done) })
	n.flush()
	if st := n.statsDue(true); st != nil {
		n.conn.WriteMsg(st, nil)
	}
	err := n.conn.Close()
	n.closeEdges()
	n.wg.Wait()
	n.maps.clear()
	n.unmapEdges()
	n.pool.closeAll()
	return err
}
