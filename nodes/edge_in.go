package node

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// edgeIn is the receiving end of a direct edge. Its frames are read by its
// own goroutine and, for the drain rule, by the daemon reader: mu
// serialises the two, and everything read is dispatched under it, so the
// edge's messages keep their order. maps is guarded by mu; held, eof and
// pendingRel by Node.mu.
type edgeIn struct {
	id     uint32
	input  string
	source string
	conn   *shm.Conn

	mu   sync.Mutex
	maps regionMaps // the sender's regions, by its ids

	held       int // shared events of this edge not yet released
	eof        bool
	pendingRel []uint64

	ringMem  *os.File  // RING memory, until its eventfd arrives
	ring     *shm.Ring // guarded by mu
	onSocket *shm.Msg  // a marked INPUT read from the socket early (mu)
}

// directIn is a direct input's queue in the SDK (values from EDGE_IN) and
// its counters, guarded by Node.mu.
type directIn struct {
	size         int
	backpressure bool
	queued       int // in the backlog, not yet taken by the application
	in, dropped  uint64
}

// errQueueFull stops reading an edge whose backpressure input is full.
var errQueueFull = errors.New("input queue full")

// onEdgeIn handles EDGE_IN (daemon reader): the input now also arrives
// over this edge. Older edges of the same input (a restarted sender's) are
// drained first: their sender is gone, so everything it wrote is there.
func (n *Node) onEdgeIn(m *shm.Msg) error {
	f, err := n.conn.TakeFile()
	if err != nil {
		return fmt.Errorf("EDGE_IN %d: %w", m.Edge, err)
	}
	if !n.direct || !n.hasInput(m.ID) {
		f.Close()
		return fmt.Errorf("EDGE_IN %d for input %q not expected", m.Edge, m.ID)
	}
	conn, err := shm.FileConn(f)
	if err != nil {
		return fmt.Errorf("EDGE_IN %d: %w", m.Edge, err)
	}
	n.drainInputs(func(id string) bool { return id == m.ID })
	e := &edgeIn{id: m.Edge, input: m.ID, source: m.Source, conn: conn, maps: regionMaps{}}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		conn.Close()
		return nil
	}
	d := n.directIns[m.ID]
	if d == nil {
		d = &directIn{}
		n.directIns[m.ID] = d
	}
	d.size, d.backpressure = max(1, int(m.QueueSize)), m.Policy == shm.PolicyBackpressure
	n.edgesIn = append(n.edgesIn, e)
	n.mu.Unlock()
	n.wg.Add(1)
	go n.edgeInLoop(e)
	return nil
}

func (n *Node) hasInput(id string) bool {
	for _, in := range n.cfg.Inputs {
		if in.ID == id {
			return true
		}
	}
	return false
}

// edgeInLoop reads the edge until EOF: frames as they come, pausing while
// a backpressure input is full (the sender's writes then block). EOF makes
// no event: the daemon decides whether the source restarts or is gone.
func (n *Node) edgeInLoop(e *edgeIn) {
	defer n.wg.Done()
	for {
		if !n.waitRoom(e) {
			break
		}
		e.mu.Lock()
		err := n.readEdgeLocked(e, true)
		e.mu.Unlock()
		if err == errQueueFull {
			continue
		}
		if err == shm.ErrWouldBlock {
			n.flushDue() // releases of events the application took meanwhile
			e.mu.Lock()
			ring := e.ring
			e.mu.Unlock()
			if ring == nil {
				if e.conn.WaitReadable() != nil {
					break
				}
				continue
			}
			if !ring.PrepareSleep() {
				continue
			}
			werr := e.conn.WaitReadableOr(ring.EventFd())
			ring.Woke()
			if werr != nil {
				break
			}
			continue
		}
		// A sender killed mid-write leaves a partial frame: that is its end.
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			select {
			case <-n.done:
			default:
				n.dispatch(&Event{Type: Error, Err: fmt.Sprintf("direct edge %d from %s: %v", e.id, e.source, err)})
			}
		}
		break
	}
	n.edgeInGone(e)
}

// waitRoom waits while e's input is a full backpressure queue; false when
// the node is closing.
func (n *Node) waitRoom(e *edgeIn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for n.fullLocked(e.input) && !n.closing && !n.stopped {
		n.room.Wait()
	}
	return !n.closing
}

func (n *Node) fullLocked(input string) bool {
	d := n.directIns[input]
	return d != nil && d.backpressure && d.queued >= d.size
}

// readEdgeLocked reads and dispatches e's frames until the socket has no
// more for now (ErrWouldBlock), EOF or an error; bounded stops early at a
// full backpressure queue. With e.mu held.
func (n *Node) readEdgeLocked(e *edgeIn, bounded bool) error {
	for {
		serr := n.readSocketLocked(e, bounded)
		// At the socket's end (also a partial frame of a sender killed
		// mid-write) the ring still holds what the sender published.
		if serr != shm.ErrWouldBlock && serr != io.EOF && serr != io.ErrUnexpectedEOF {
			return serr
		}
		if e.ring == nil {
			return serr
		}
		got, err := n.readRingLocked(e, bounded)
		if err != nil {
			return err
		}
		if !got {
			return serr
		}
	}
}

// readSocketLocked reads and dispatches the frames on e's socket until it
// would block.
//
// With a ring, an INPUT on the socket is one a ring marker announces: it
// is held back (e.onSocket) until the ring reaches its marker, and the
// socket is not read past it meanwhile, so the stream keeps its order.
func (n *Node) readSocketLocked(e *edgeIn, bounded bool) error {
	for {
		if e.onSocket != nil {
			return shm.ErrWouldBlock
		}
		if bounded && n.queueFull(e) {
			return errQueueFull
		}
		if err := n.socketFrameLocked(e); err != nil {
			return err
		}
	}
}

// socketFrameLocked reads one frame of e's socket without blocking and
// handles it; with a ring, an INPUT is held in e.onSocket instead.
func (n *Node) socketFrameLocked(e *edgeIn) error {
	body, err := e.conn.ReadFrameNow()
	if err != nil {
		return err
	}
	m, err := shm.Decode(body)
	if err != nil {
		return err
	}
	if m.Type == shm.MsgInput && e.ring != nil {
		e.onSocket = m
		return nil
	}
	return n.edgeFrameLocked(e, m)
}

// nextSocketInputLocked reads e's socket, handling the frames before it,
// up to the INPUT a ring marker announced; the sender is writing it, so
// the wait is short (EOF if the sender dies).
func (n *Node) nextSocketInputLocked(e *edgeIn) (*shm.Msg, error) {
	for e.onSocket == nil {
		err := n.socketFrameLocked(e)
		if err == shm.ErrWouldBlock {
			err = e.conn.WaitReadable()
		}
		if err != nil {
			return nil, err
		}
	}
	m := e.onSocket
	e.onSocket = nil
	return m, nil
}

func (n *Node) queueFull(e *edgeIn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fullLocked(e.input) && !n.stopped
}

// readRingLocked dispatches the frames in e's ring; got says whether there
// were any. A frame naming a region not mapped yet has its REGION on the
// socket, written before the frame was published.
func (n *Node) readRingLocked(e *edgeIn, bounded bool) (bool, error) {
	got := false
	for {
		if bounded && n.queueFull(e) {
			return got, errQueueFull
		}
		body, err := e.ring.Next()
		if err != nil || body == nil {
			return got, err
		}
		got = true
		m, err := shm.Decode(body)
		if err != nil {
			return got, err
		}
		if m.Type == shm.MsgRing && m.Count == shm.RingOnSocket {
			if m, err = n.nextSocketInputLocked(e); err != nil {
				return got, err
			}
		}
		if m.Shm != nil {
			for !e.maps.has(m.Shm.Region) {
				if e.onSocket != nil {
					return got, fmt.Errorf("INPUT names region %d, which is not announced before the next marked frame", m.Shm.Region)
				}
				if err := n.socketFrameLocked(e); err != nil {
					return got, fmt.Errorf("INPUT names region %d before its REGION: %w", m.Shm.Region, err)
				}
			}
		}
		if err := n.edgeFrameLocked(e, m); err != nil {
			return got, err
		}
	}
}

// edgeFrameLocked handles one frame from a direct edge, with e.mu held.
func (n *Node) edgeFrameLocked(e *edgeIn, m *shm.Msg) error {
	switch m.Type {
	case shm.MsgRing:
		f, err := e.conn.TakeFile()
		if err != nil {
			return fmt.Errorf("RING: %w", err)
		}
		switch {
		case m.Count == 0 && e.ringMem == nil && e.ring == nil:
			e.ringMem = f
			return nil
		case m.Count != 1 || e.ringMem == nil || e.ring != nil:
			f.Close()
			return fmt.Errorf("RING %d out of order", m.Count)
		}
		r, err := shm.OpenRing(e.ringMem, f, m.Size)
		if err != nil {
			return err
		}
		e.ring, e.ringMem = r, nil
	case shm.MsgRegion:
		return e.maps.add(e.conn, m)
	case shm.MsgRegionClosed:
		e.maps.remove(m.Region)
	case shm.MsgInput:
		if m.ID != e.input {
			return fmt.Errorf("INPUT for %q on the edge of input %q", m.ID, e.input)
		}
		ev := &Event{n: n, Type: Input, ID: m.ID, Metadata: metadataFromWire(m.Meta), Data: m.Data, edge: e}
		if m.Shm != nil {
			data, err := e.maps.payload(m)
			if err != nil {
				return err
			}
			ev.Data = data
			ev.shared, ev.token = true, m.Token
		}
		n.arrive(ev, m.Meta.Flushes())
	default:
		return fmt.Errorf("unexpected frame %s on a direct edge", m.Type)
	}
	return nil
}

// arrive counts a direct input and hands it on; flush first discards the
// messages of that input still queued (not counted as drops).
func (n *Node) arrive(ev *Event, flush bool) {
	n.mu.Lock()
	if ev.shared {
		ev.edge.held++
	}
	d := n.directIns[ev.ID]
	d.in++
	n.statsDirty = true
	if flush {
		n.discardQueuedLocked(ev.ID, -1, func(*Event) { d.in-- })
	}
	n.mu.Unlock()
	n.dispatch(ev)
}

// queueDirectLocked enforces the queue of a direct input before ev joins
// the backlog: drop_oldest evicts the oldest queued message of the input.
// Backpressure is applied by not reading the edge (waitRoom); the drain
// rule may exceed the bound briefly.
func (n *Node) queueDirectLocked(ev *Event) {
	d := n.directIns[ev.ID]
	if !d.backpressure && d.queued >= d.size {
		n.discardQueuedLocked(ev.ID, 1, func(*Event) {
			d.in--
			d.dropped++
		})
	}
	d.queued++
	n.statsDirty = true
}

// discardQueuedLocked removes up to limit (all when negative) queued
// direct events of input id from the backlog, oldest first, releasing
// their tokens.
func (n *Node) discardQueuedLocked(id string, limit int, count func(*Event)) {
	d := n.directIns[id]
	kept := n.backlog[:0]
	for _, ev := range n.backlog {
		if limit != 0 && ev.edge != nil && ev.Type == Input && ev.ID == id {
			limit--
			d.queued--
			count(ev)
			if ev.shared && !ev.released.Swap(true) {
				n.releaseLocked(ev)
			}
			continue
		}
		kept = append(kept, ev)
	}
	clear(n.backlog[len(kept):])
	n.backlog = kept
	n.room.Broadcast()
}

// discardAllDirectLocked drops every queued direct input (STOP goes
// ahead of them and ends the stream), releasing their tokens.
func (n *Node) discardAllDirectLocked() {
	for id := range n.directIns {
		n.discardQueuedLocked(id, -1, func(*Event) {})
	}
}

// unqueueDirectLocked runs when a direct event leaves the backlog for the
// application.
func (n *Node) unqueueDirectLocked(ev *Event) {
	if d := n.directIns[ev.ID]; d != nil && ev.Type == Input {
		d.queued--
		n.statsDirty = true
		n.room.Broadcast()
	}
}

// drainFor applies the drain rule before a daemon event is delivered:
// for the direct inputs it concerns, everything already written to their
// edges is read and queued first (a write that returned put its bytes in
// our socket buffer), so a source's last messages precede its
// INPUT_CLOSED, NODE_RESTARTED or NODE_FAILED.
func (n *Node) drainFor(ev *Event) {
	switch ev.Type {
	case InputClosed:
		n.drainInputs(func(id string) bool { return id == ev.ID })
	case NodeRestarted, NodeFailed:
		n.drainInputs(func(id string) bool { return slices.Contains(ev.Inputs, id) })
	case AllInputsClosed:
		n.drainInputs(func(string) bool { return true })
	}
}

func (n *Node) drainInputs(match func(input string) bool) {
	n.mu.Lock()
	var edges []*edgeIn
	for _, e := range n.edgesIn {
		if match(e.input) {
			edges = append(edges, e)
		}
	}
	n.mu.Unlock()
	for _, e := range edges {
		e.mu.Lock()
		n.readEdgeLocked(e, false) // errors end the edge in its own goroutine
		e.mu.Unlock()
	}
}

// edgeInGone forgets an edge at EOF (or error); its regions are unmapped
// once no event of it is held.
func (n *Node) edgeInGone(e *edgeIn) {
	e.conn.Close()
	e.mu.Lock()
	e.ring.Close()
	e.ring = nil
	if e.ringMem != nil {
		e.ringMem.Close()
		e.ringMem = nil
	}
	e.mu.Unlock()
	n.mu.Lock()
	e.eof = true
	if i := slices.Index(n.edgesIn, e); i >= 0 {
		n.edgesIn = slices.Delete(n.edgesIn, i, i+1)
	}
	unmap := e.held == 0
	n.mu.Unlock()
	if unmap {
		e.unmapAll()
	}
}

func (e *edgeIn) unmapAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.maps.clear()
}

type edgeRelease struct {
	e      *edgeIn
	tokens []uint64
}

// takeEdgeReleasesLocked collects the RELEASE frames due on edges.
func (n *Node) takeEdgeReleasesLocked() []edgeRelease {
	var out []edgeRelease
	add := func(e *edgeIn) {
		if len(e.pendingRel) > 0 {
			out = append(out, edgeRelease{e, e.pendingRel})
			e.pendingRel = nil
		}
	}
	for _, e := range n.edgesIn {
		add(e)
	}
	return out
}

// closeEdges closes every edge socket (Close): their goroutines end.
func (n *Node) closeEdges() {
	n.closingOut.Store(true) // onEdgeOut checks it under outMu
	n.mu.Lock()
	n.closing = true
	n.room.Broadcast()
	in := slices.Clone(n.edgesIn)
	n.mu.Unlock()
	for _, e := range in {
		e.conn.Close()
	}
	n.outMu.Lock()
	var out []*edgeOut
	for _, es := range n.outEdges {
		out = append(out, es...)
	}
	n.outMu.Unlock()
	for _, e := range out {
		e.conn.Close()
	}
}

// unmapEdges unmaps the regions of every incoming edge (after Close
// stopped the goroutines).
func (n *Node) unmapEdges() {
	n.mu.Lock()
	edges := append(slices.Clone(n.edgesIn), n.unmapLater...)
	n.unmapLater = nil
	n.mu.Unlock()
	for _, e := range edges {
		e.unmapAll()
	}
}

// statsLoop reports the edge counters every statsEvery while they change.
func (n *Node) statsLoop() {
	defer n.wg.Done()
	t := time.NewTicker(statsEvery)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
			if st := n.statsDue(false); st != nil {
				n.conn.WriteMsg(st, nil)
			}
		}
	}
}

// statsDue builds a STATS frame when the counters changed and the last one
// is statsEvery old (or at once with force); nil otherwise.
func (n *Node) statsDue(force bool) *shm.Msg {
	if !n.direct {
		return nil
	}
	n.outMu.Lock()
	var out []shm.OutStat
	for _, id := range slices.Sorted(maps.Keys(n.directOut)) {
		out = append(out, shm.OutStat{Output: id, Out: n.directOut[id]})
	}
	dirty := n.outDirty
	n.outDirty = false
	n.outMu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if dirty {
		n.statsDirty = true
	}
	if !n.statsDirty || (!force && now.Sub(n.lastStats) < statsEvery) {
		return nil
	}
	n.statsDirty = false
	m := &shm.Msg{Type: shm.MsgStats, OutStats: out}
	for _, id := range slices.Sorted(maps.Keys(n.directIns)) {
		d := n.directIns[id]
		m.InStats = append(m.InStats, shm.InStat{Input: id, In: d.in, Dropped: d.dropped, Pending: uint32(max(0, d.queued))})
	}
	if len(m.OutStats) == 0 && len(m.InStats) == 0 {
		return nil
	}
	n.lastStats = now
	return m
}
