package dataplane

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"iter"
	"net"
	"os"
	"slices"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// registerTimeout bounds how long a fresh connection may take to register.
const registerTimeout = 10 * time.Second

// nodeConn is one registered connection of a node process. Its reader
// goroutine handles the node's frames; its writer goroutine sends events
// and inputs. Fields are guarded by Router.mu.
type nodeConn struct {
	node        *nodeState
	c           *shm.Conn
	ready       bool // the start barrier passed: READY may be sent
	readySent   bool
	closed      bool // nothing more is sent to the node
	reading     bool // the reader still routes the node's frames
	exit        *exitInfo
	inflight    int                // data items sent but not acknowledged
	outstanding map[uint64]int     // drop tokens held by the node
	owned       map[uint32]*region // regions the node announced, by its id
	mapped      map[uint32]bool    // regions (router ids) already sent to it
	control     []outFrame         // frames sent ahead of the FIFO
	direct      bool               // registered with FlagDirect and offered edges
	needs       map[string]bool    // ROUTES last sent, per output (absent = true)
	stats       connStats          // the node's last STATS
	dropped     []uint32           // owned regions to report in DROPPED
	wake        chan struct{}
	writing     bool   // a goroutine is pumping frames to the node
	wbuf        []byte // owned by the pumping goroutine
}

func (c *nodeConn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (r *Router) allConnsLocked() iter.Seq[*nodeConn] {
	return func(yield func(*nodeConn) bool) {
		for _, ns := range r.nodes {
			if ns.conn != nil && !yield(ns.conn) {
				return
			}
		}
	}
}

func (r *Router) acceptLoop() {
	defer r.wg.Done()
	for {
		uc, err := r.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error("dataplane accept", "err", err)
			}
			return
		}
		r.wg.Add(1)
		go r.serve(shm.NewConn(uc))
	}
}

// serve owns one connection: registration, then the read loop.
func (r *Router) serve(sc *shm.Conn) {
	defer r.wg.Done()
	stop := closeOnQuit(r.quit, sc)
	defer stop()
	c, err := r.register(sc)
	if err != nil {
		r.log.Warn("node registration refused", "err", err)
		sc.WriteMsg(&shm.Msg{Type: shm.MsgError, Error: err.Error()}, nil)
		sc.Close()
		return
	}
	r.wg.Add(1)
	go r.writeLoop(c)
	err = r.readLoop(c)
	r.connClosed(c, err)
}

// closeOnQuit closes sc when quit closes; the returned func stops watching.
func closeOnQuit(quit chan struct{}, sc *shm.Conn) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-quit:
			sc.Close()
		case <-done:
		}
	}()
	return func() { close(done) }
}

func (r *Router) register(sc *shm.Conn) (*nodeConn, error) {
	sc.SetReadDeadline(time.Now().Add(registerTimeout))
	m, err := sc.ReadMsg()
	if err != nil {
		return nil, fmt.Errorf("read registration: %w", err)
	}
	sc.SetReadDeadline(time.Time{})
	if m.Type != shm.MsgRegister {
		return nil, fmt.Errorf("expected REGISTER, got %s", m.Type)
	}
	if m.Version != shm.ProtocolVersion {
		return nil, fmt.Errorf("node %s speaks node protocol %d, this daemon speaks %d: rebuild the node with a matching SDK", m.Node, m.Version, shm.ProtocolVersion)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("router is closed")
	}
	if m.Dataflow != r.cfg.DataflowID {
		return nil, fmt.Errorf("node %s registered for dataflow %q, this socket serves %q", m.Node, m.Dataflow, r.cfg.DataflowID)
	}
	ns := r.nodes[m.Node]
	if ns == nil {
		return nil, fmt.Errorf("node %q does not run on this daemon", m.Node)
	}
	if ns.secret == "" || subtle.ConstantTimeCompare([]byte(m.Secret), []byte(ns.secret)) != 1 {
		return nil, fmt.Errorf("node %s: registration secret does not match its latest spawn", m.Node)
	}
	ns.secret = "" // one registration per spawn
	if old := ns.conn; old != nil {
		r.detachLocked(old) // its reader drains what the old process sent
	}
	c := &nodeConn{node: ns, c: sc, reading: true, outstanding: map[uint64]int{}, owned: map[uint32]*region{},
		mapped: map[uint32]bool{}, wake: make(chan struct{}, 1), needs: map[string]bool{},
		direct: m.Flags&shm.FlagDirect != 0 && !r.cfg.DisableDirect}
	ns.conn = c
	ns.lastConn = c
	ns.everJoined = true
	clear(ns.closedOut)
	delete(r.waiting, ns.id)
	r.checkBarrierLocked()
	if len(r.waiting) == 0 {
		c.ready = true
	}
	r.linkEdgesLocked(c)
	c.kick()
	return c, nil
}

// checkBarrierLocked releases every waiting node once all local nodes have
// registered or exited.
func (r *Router) checkBarrierLocked() {
	if len(r.waiting) > 0 {
		return
	}
	for c := range r.allConnsLocked() {
		if !c.ready {
			c.ready = true
			c.kick()
		}
	}
}

// pumpBatch bounds how many OUTPUT frames the reader routes before it
// pumps the receivers (it pumps sooner when no more bytes are buffered).
const pumpBatch = 32

func (r *Router) readLoop(c *nodeConn) error {
	var touched []*nodeConn
	routed := 0
	defer func() {
		for _, rc := range touched {
			r.pump(rc)
		}
	}()
	for {
		if len(touched) > 0 && (c.c.Buffered() == 0 || routed >= pumpBatch) {
			// One write per receiver for the whole batch; with a single
			// message this happens right away (no added latency).
			for _, rc := range touched {
				r.pump(rc)
			}
			touched, routed = touched[:0], 0
		}
		m, err := c.c.ReadMsg()
		if err != nil {
			return err
		}
		switch m.Type {
		case shm.MsgOutput:
			err = r.handleOutput(c, m, &touched)
			routed++
		case shm.MsgRegion:
			var f *os.File
			if f, err = c.c.TakeFile(); err == nil {
				err = r.addRegion(c, m.Region, m.Size, f)
			}
		case shm.MsgRegionClosed:
			r.retireOwned(c, m.Region)
		case shm.MsgAck:
			r.ack(c, int(m.Count))
			if !slices.Contains(touched, c) {
				touched = append(touched, c)
			}
		case shm.MsgRelease:
			r.releaseTokens(c, m.Tokens, &touched)
		case shm.MsgCloseOutputs:
			r.closeOutputs(c, m.IDs)
		case shm.MsgCutover:
			err = r.cutover(c, m.Edge)
		case shm.MsgStats:
			r.addStats(c, m)
		default:
			err = fmt.Errorf("unexpected frame %s", m.Type)
		}
		if err != nil {
			c.c.WriteMsg(&shm.Msg{Type: shm.MsgError, Error: err.Error()}, nil)
			return err
		}
	}
}

// connClosed runs when a connection's reader ends: everything the node
// sent has been routed. The node's drop tokens are released, its regions
// are retired once unused, and an exit NodeExited reported earlier is
// applied now, so receivers see INPUT_CLOSED after the last data.
func (r *Router) connClosed(c *nodeConn, cause error) {
	r.mu.Lock()
	r.detachLocked(c)
	c.reading = false
	r.dropSenderEdgesLocked(c)
	for _, g := range c.owned {
		g.ownerGone = true
		if g.live == 0 {
			r.retireLocked(g)
		}
	}
	var remote func()
	if e := c.exit; e != nil {
		c.exit = nil
		remote = r.applyExitLocked(c.node.id, e.restarting, e.failed)
	}
	r.mu.Unlock()
	c.c.Close()
	if remote != nil {
		remote()
	}
	r.log.Debug("node disconnected", "node", c.node.id, "cause", cause)
}

// detachLocked stops sending to c: its drop tokens and window are released.
// Its reader keeps routing what the node already sent.
func (r *Router) detachLocked(c *nodeConn) {
	if c.closed {
		return
	}
	c.closed = true
	c.kick()
	if c.node.conn == c {
		c.node.conn = nil
	}
	closeFrames(c.control)
	c.control = nil
	r.dropReceiverEdgesLocked(c)
	for tok, n := range c.outstanding {
		if s := r.samples[tok]; s != nil {
			for range n {
				r.unrefSampleLocked(s)
			}
		}
	}
	clear(c.outstanding)
	c.inflight = 0
	r.cond.Broadcast()
}

// ack frees window slots. The caller (c's reader) pumps c afterwards.
func (r *Router) ack(c *nodeConn, n int) {
	r.mu.Lock()
	c.inflight = max(0, c.inflight-n)
	r.mu.Unlock()
}

// writeLoop pumps c whenever it is kicked (acks, timers, events).
func (r *Router) writeLoop(c *nodeConn) {
	defer r.wg.Done()
	for {
		select {
		case <-c.wake:
		case <-r.quit:
			return
		}
		if r.pump(c) {
			return
		}
	}
}

// pump sends everything that may be sent to c now. One goroutine pumps a
// connection at a time: a caller that finds another one pumping returns at
// once (that one collects again before it stops). The router calls it
// directly from the sender's reader after routing, which saves a goroutine
// hand-off on the latency path. done reports that c is finished.
func (r *Router) pump(c *nodeConn) (done bool) {
	r.mu.Lock()
	if c.writing {
		r.mu.Unlock()
		return false
	}
	c.writing = true
	for {
		out, done := r.collectLocked(c)
		if done || len(out) == 0 {
			c.writing = false
			r.mu.Unlock()
			return done
		}
		r.mu.Unlock()
		var err error
		c.wbuf, err = writeOut(c.c, c.wbuf[:0], out)
		r.mu.Lock()
		if err != nil {
			// The node is gone or broken; its reader still routes what
			// it sent and cleans up at EOF.
			r.log.Debug("write to node", "node", c.node.id, "err", err)
			c.writing = false
			r.detachLocked(c)
			r.mu.Unlock()
			return true
		}
	}
}

// outFrame is a frame to send, with a descriptor to attach; closeAfter
// says the router's copy of the descriptor is closed once the frame is
// written (or cannot be).
type outFrame struct {
	m          *shm.Msg
	f          *os.File
	closeAfter bool
}

func writeOut(sc *shm.Conn, buf []byte, out []outFrame) ([]byte, error) {
	for i, o := range out {
		if o.f != nil {
			if len(buf) > 0 {
				if err := sc.WriteFrames(buf); err != nil {
					closeFrames(out[i:])
					return buf, err
				}
				buf = buf[:0]
			}
			err := sc.WriteMsg(o.m, o.f)
			if o.closeAfter {
				o.f.Close()
			}
			if err != nil {
				closeFrames(out[i+1:])
				return buf, err
			}
			continue
		}
		buf = shm.AppendFrame(buf, o.m)
	}
	if len(buf) > 0 {
		return buf, sc.WriteFrames(buf)
	}
	return buf, nil
}

// closeFrames closes the router's descriptors of frames that will not be
// sent.
func closeFrames(out []outFrame) {
	for _, o := range out {
		if o.closeAfter && o.f != nil {
			o.f.Close()
		}
	}
}

// collectLocked takes what may be sent to c now. done reports that the
// connection is finished.
func (r *Router) collectLocked(c *nodeConn) (out []outFrame, done bool) {
	if c.closed || r.closed {
		return nil, true
	}
	if !c.ready {
		return nil, false
	}
	if !c.readySent {
		c.readySent = true
		ready := &shm.Msg{Type: shm.MsgReady, Count: uint32(c.node.window)}
		if c.direct {
			ready.Flags = shm.FlagDirect
		}
		out = append(out, outFrame{m: ready})
	}
	out = append(out, c.control...)
	c.control = nil
	if len(c.dropped) > 0 {
		out = append(out, outFrame{m: &shm.Msg{Type: shm.MsgDropped, Regions: c.dropped}})
		c.dropped = nil
	}
	ns := c.node
	popped := false
	for e := ns.fifo.Front(); e != nil; e = ns.fifo.Front() {
		it := e.Value.(*item)
		if it.data && c.inflight >= ns.window {
			break
		}
		ns.fifo.Remove(e)
		if it.edge != nil {
			out = r.appendEdgeInLocked(out, c, it.edge)
			continue
		}
		if !it.data {
			out = append(out, outFrame{m: it.msg})
			continue
		}
		popped = true
		it.in.items = it.in.items[1:]
		c.inflight++
		ns.metrics.MessagesIn++
		out = r.appendInputLocked(out, c, it)
	}
	if popped {
		r.cond.Broadcast()
	}
	return out, false
}

// appendInputLocked renders a data item; a shared-memory payload hands its
// drop token to the node (and the region's memfd, the first time).
func (r *Router) appendInputLocked(out []outFrame, c *nodeConn, it *item) []outFrame {
	m := &shm.Msg{Type: shm.MsgInput, ID: it.in.spec.ID, Meta: it.msg.Meta, Data: it.msg.Data}
	if s := it.sample; s != nil {
		reg := s.region
		if !c.mapped[reg.id] {
			c.mapped[reg.id] = true
			reg.sentTo[c] = true
			out = append(out, outFrame{m: &shm.Msg{Type: shm.MsgRegion, Region: reg.id, Size: reg.size}, f: reg.file})
		}
		m.Data = nil
		m.Shm = &shm.ShmRef{Region: reg.id, Offset: s.offset, Len: s.length}
		m.Token = s.token
		c.outstanding[s.token]++ // the queue's reference moves to the node
	}
	return append(out, outFrame{m: m})
}
