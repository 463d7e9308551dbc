package node

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// useDirect says whether the SDK announces DIRECT at registration: with it,
// a daemon that offers direct edges lets this node exchange local messages
// with other DIRECT nodes over node-to-node sockets (one hop instead of
// two). See docs/node-protocol.md, section "Direct edges".
const useDirect = true

// statsEvery is how often a node with direct edges reports its edge
// counters to the daemon (STATS), when they changed.
const statsEvery = 100 * time.Millisecond

// edgeOut is the sending end of a direct edge: output -> node/input.
// conn is written under Node.outMu; tokens and mapped are guarded by the
// pool's mutex.
type edgeOut struct {
	id     uint32
	output string
	node   string
	input  string
	conn   *shm.Conn
	mapped map[uint32]bool        // regions announced on this edge
	tokens map[uint64]*poolRegion // shared-memory messages the receiver still holds
	dead   atomic.Bool
	ring   *shm.Ring // INPUT frames go here (under Node.outMu)
	fbuf   []byte
}

// ringSize is the data area of an edge's ring: room for eight inline
// messages of the largest kind (payload under the shared-memory threshold
// plus 4 KiB of metadata), 64 KiB with the default threshold. Like a small
// socket buffer, it bounds how far a sender runs ahead of a receiver that
// applies backpressure.
func ringSize(threshold int) int {
	size := 16 << 10
	for size < 8*(threshold+4096) && size < 64<<20 {
		size *= 2
	}
	return size
}

// onEdgeOut handles EDGE_OUT (daemon reader): CUTOVER goes to the daemon
// behind every OUTPUT sent so far, and from then on the output reaches
// that receiver over the edge.
func (n *Node) onEdgeOut(m *shm.Msg) error {
	f, err := n.conn.TakeFile()
	if err != nil {
		return fmt.Errorf("EDGE_OUT %d: %w", m.Edge, err)
	}
	if !n.direct || !n.outputs[m.ID] {
		f.Close()
		return fmt.Errorf("EDGE_OUT %d for output %q not expected", m.Edge, m.ID)
	}
	conn, err := shm.FileConn(f)
	if err != nil {
		return fmt.Errorf("EDGE_OUT %d: %w", m.Edge, err)
	}
	e := &edgeOut{id: m.Edge, output: m.ID, node: m.Node, input: m.Input, conn: conn,
		mapped: map[uint32]bool{}, tokens: map[uint64]*poolRegion{}}
	ring, err := shm.NewRing(ringSize(n.cfg.ShmThreshold))
	if err != nil {
		conn.Close()
		return fmt.Errorf("EDGE_OUT %d: %w", m.Edge, err)
	}
	mem, ev := ring.Files()
	for part, f := range []*os.File{mem, ev} { // RING part 0, then part 1
		if err := conn.WriteMsg(&shm.Msg{Type: shm.MsgRing, Count: uint32(part), Size: ring.Size()}, f); err != nil {
			ring.Close()
			conn.Close()
			return fmt.Errorf("EDGE_OUT %d: %w", m.Edge, err)
		}
	}
	e.ring = ring
	n.outMu.Lock()
	if n.closingOut.Load() {
		n.outMu.Unlock()
		conn.Close()
		return nil
	}
	var old *edgeOut
	edges := n.outEdges[e.output]
	for i, o := range edges {
		if o.node == e.node && o.input == e.input {
			old = o
			edges = append(edges[:i:i], edges[i+1:]...)
			break
		}
	}
	if err := n.conn.WriteMsg(&shm.Msg{Type: shm.MsgCutover, Edge: e.id}, nil); err != nil {
		n.outMu.Unlock()
		conn.Close()
		return fmt.Errorf("CUTOVER %d: %w", e.id, err)
	}
	n.outEdges[e.output] = append(edges, e)
	n.pool.addEdge(e)
	n.outMu.Unlock()
	if old != nil {
		old.conn.Close() // its reader releases what it held
	}
	n.wg.Add(1)
	go n.edgeOutLoop(e)
	return nil
}

// edgeOutLoop reads the receiver's RELEASE frames; at EOF or on an error
// the edge is dropped and every token outstanding on it is released.
func (n *Node) edgeOutLoop(e *edgeOut) {
	defer n.wg.Done()
	for {
		m, err := e.conn.ReadMsg()
		if err != nil || m.Type != shm.MsgRelease {
			break
		}
		n.pool.releaseEdge(e, m.Tokens)
	}
	n.dropEdgeOut(e)
}

// dropEdgeOut forgets e: its output goes through the daemon again until
// the daemon says otherwise (ROUTES).
func (n *Node) dropEdgeOut(e *edgeOut) {
	if e.dead.Swap(true) {
		return
	}
	e.conn.Close() // a write blocked on it returns
	n.outMu.Lock()
	edges := n.outEdges[e.output]
	for i, o := range edges {
		if o == e {
			n.outEdges[e.output] = append(edges[:i:i], edges[i+1:]...)
			n.forced[e.output] = true
			break
		}
	}
	n.outMu.Unlock()
	n.pool.removeEdge(e)
	e.ring.Close()
}

// onRoutes handles ROUTES: whether the daemon still needs OUTPUT frames
// for an output. It also ends a fallback after a failed edge.
func (n *Node) onRoutes(m *shm.Msg) {
	n.outMu.Lock()
	n.needs[m.ID] = m.NeedsDaemon
	delete(n.forced, m.ID)
	n.outMu.Unlock()
}

// viaDaemonLocked says whether output id must (also) go to the daemon.
func (n *Node) viaDaemonLocked(id string) bool {
	need, ok := n.needs[id]
	return !ok || need || n.forced[id]
}

// sendEdgesLocked writes an inline message to every edge of output id. A
// failed edge is dropped (the caller then sends through the daemon).
func (n *Node) sendEdgesLocked(id string, meta shm.Meta, data []byte) {
	for _, e := range n.outEdges[id] {
		m := &shm.Msg{Type: shm.MsgInput, ID: e.input, Meta: meta, Data: data}
		if err := n.putLocked(e, m); err != nil {
			n.failEdgeLocked(e)
		}
	}
}

// sendEdgesShmLocked hands a region to every edge of output id: REGION
// the first time, then INPUT with a token the receiver returns in RELEASE.
func (n *Node) sendEdgesShmLocked(id string, meta shm.Meta, r *poolRegion, length int) {
	for _, e := range n.outEdges[id] {
		announce, tok := n.pool.useEdge(e, r)
		var err error
		if announce {
			err = e.conn.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: r.id, Size: uint64(r.r.Size())}, r.r.File())
		}
		if err == nil {
			m := &shm.Msg{Type: shm.MsgInput, ID: e.input, Meta: meta, Shm: &shm.ShmRef{Region: r.id, Len: uint64(length)}, Token: tok}
			err = n.putLocked(e, m)
		}
		if err != nil {
			n.pool.releaseEdge(e, []uint64{tok})
			n.failEdgeLocked(e)
		}
	}
}

// putLocked publishes an INPUT frame in e's ring, waiting while it is full
// (the receiver's backpressure) until the edge dies. A frame too large for
// the ring (huge metadata) goes on the socket, announced by a RING marker
// in the ring so that the receiver reads it in its place.
func (n *Node) putLocked(e *edgeOut, m *shm.Msg) error {
	e.fbuf = shm.AppendFrame(e.fbuf[:0], m)
	if !e.ring.Fits(len(e.fbuf)) {
		if err := n.putFrameLocked(e, shm.AppendFrame(nil, &shm.Msg{Type: shm.MsgRing, Count: shm.RingOnSocket})); err != nil {
			return err
		}
		return e.conn.WriteFrames(e.fbuf)
	}
	return n.putFrameLocked(e, e.fbuf)
}

// putFrameLocked waits while the ring is full: the receiver stopped
// taking messages (backpressure) or is slower. The wait polls with a
// backoff up to 1 ms; it ends when the edge dies.
func (n *Node) putFrameLocked(e *edgeOut, frame []byte) error {
	for wait := time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		if e.dead.Load() {
			return errEdgeDead // the caller falls back to the daemon
		}
		ok, err := e.ring.Put(frame)
		if ok || err != nil {
			return err
		}
		time.Sleep(wait)
	}
}

var errEdgeDead = errors.New("direct edge closed")

// failEdgeLocked drops an edge whose write failed (its receiver died),
// with outMu held.
func (n *Node) failEdgeLocked(e *edgeOut) {
	if e.dead.Swap(true) {
		return
	}
	e.conn.Close()
	edges := n.outEdges[e.output]
	for i, o := range edges {
		if o == e {
			n.outEdges[e.output] = append(edges[:i:i], edges[i+1:]...)
			break
		}
	}
	n.forced[e.output] = true
	n.pool.removeEdge(e)
	e.ring.Close()
}
