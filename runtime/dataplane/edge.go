package dataplane

import (
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/transport/shm"
)

// Direct edges: for a local route S.output -> R.input between two nodes
// that registered with DIRECT, data travels from S's process straight
// into R's over a unix socket pair the router creates (S sets up a
// shared-memory ring on it, docs/node-protocol.md §10.4), one hop
// instead of two. The router stays in control: it creates the pair,
// decides when each side uses it, and keeps lifecycle events and
// accounting.
//
//	created (both registered)   EDGE_OUT(S's end) queued to S; router keeps R's end
//	   | CUTOVER from S          (ordered after every OUTPUT S sent before)
//	   v
//	cut                         the router stops routing S.output to R.input,
//	   |                         queues EDGE_IN(R's end) in R's FIFO behind what
//	   |                         it already queued for R, sends ROUTES to S
//	   v
//	delivered                   R reads the edge; the router holds no descriptor
//
// R's connection going away kills the edge (its end is closed, S sees
// EOF or EPIPE and falls back to the daemon path). S's connection ending
// after a cut-over leaves the edge to R: R reads what S wrote, then EOF.
type edge struct {
	id      uint32
	src     *nodeConn // the sender's connection that got EDGE_OUT
	dst     *nodeConn // the receiver's connection
	in      *inputState
	output  string
	recvEnd *os.File // R's end, until EDGE_IN is written
	cut     bool     // CUTOVER received
	dead    bool
}

// connStats are the cumulative counters a node last reported in STATS.
type connStats struct {
	out     map[string]uint64
	in      map[string]shm.InStat
	pending map[string]uint32
}

// edgeEligibleLocked says whether input in of a local node can be fed over
// a direct edge: a local node output (not a timer, not a remote node),
// another node, and no input_timeout (that breaker stays in the daemon).
func (r *Router) edgeEligibleLocked(in *inputState) bool {
	src := in.spec.Source
	if src.IsTimer() || in.spec.InputTimeout > 0 || src.Node == in.node.id || in.node.gone {
		return false
	}
	return r.nodes[src.Node] != nil
}

// linkEdgesLocked creates the edges a newly registered direct node takes
// part in, as sender and as receiver.
func (r *Router) linkEdgesLocked(c *nodeConn) {
	if !c.direct {
		return
	}
	ns := c.node
	for _, id := range slices.Sorted(maps.Keys(ns.inputs)) {
		in := ns.inputs[id]
		if !r.edgeEligibleLocked(in) {
			continue
		}
		if sc := r.nodes[in.spec.Source.Node].conn; sc != nil && sc.direct && !sc.closed {
			r.newEdgeLocked(sc, c, in)
		}
	}
	for _, o := range ns.spec.Outputs {
		for _, in := range r.routes[outKey{ns.id, o}] {
			if !r.edgeEligibleLocked(in) {
				continue
			}
			if rc := in.node.conn; rc != nil && rc.direct && !rc.closed {
				r.newEdgeLocked(c, rc, in)
			}
		}
	}
}

func (r *Router) newEdgeLocked(src, dst *nodeConn, in *inputState) {
	send, recv, err := shm.SocketPair()
	if err != nil {
		r.log.Warn("direct edge: the route stays on the daemon path", "from", in.spec.Source.String(), "to", in.node.id+"/"+in.spec.ID, "err", err)
		return
	}
	r.nextEdge++
	e := &edge{id: r.nextEdge, src: src, dst: dst, in: in, output: in.spec.Source.Output, recvEnd: recv}
	r.edges[e.id] = e
	m := &shm.Msg{Type: shm.MsgEdgeOut, Edge: e.id, ID: e.output, Node: in.node.id, Input: in.spec.ID}
	src.control = append(src.control, outFrame{m: m, f: send, closeAfter: true})
	r.kickLocked(src)
	r.log.Debug("direct edge offered", "edge", e.id, "from", src.node.id+"/"+e.output, "to", in.node.id+"/"+in.spec.ID)
}

// cutover handles CUTOVER from the edge's sender: every OUTPUT it sent
// before has been routed, so the input leaves the daemon path and the
// receiver gets its end behind what is already queued for it.
func (r *Router) cutover(c *nodeConn, id uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.edges[id]
	if e == nil {
		if id == 0 || id > r.nextEdge {
			return fmt.Errorf("CUTOVER of unknown edge %d", id)
		}
		return nil // the edge died meanwhile (its receiver went away)
	}
	if e.src != c {
		return fmt.Errorf("CUTOVER of edge %d, which belongs to another node", id)
	}
	if e.cut {
		return nil
	}
	e.cut = true
	e.in.edge = e
	it := &item{edge: e}
	it.elem = e.in.node.fifo.PushBack(it)
	r.kickLocked(e.dst)
	r.updateRoutesLocked()
	return nil
}

// appendEdgeInLocked renders EDGE_IN for c, handing over the router's
// copy of the receiving end. A dead edge (or one of an earlier connection
// of the node) is skipped.
func (r *Router) appendEdgeInLocked(out []outFrame, c *nodeConn, e *edge) []outFrame {
	if e.dead || e.recvEnd == nil || e.dst != c {
		e.closeRecvEndLocked() // the receiver it was meant for is gone
		return out
	}
	policy := shm.PolicyDropOldest
	if e.in.spec.QueuePolicy == config.Backpressure {
		policy = shm.PolicyBackpressure
	}
	m := &shm.Msg{Type: shm.MsgEdgeIn, Edge: e.id, ID: e.in.spec.ID, Source: e.in.spec.Source.String(),
		QueueSize: uint32(e.in.size), Policy: policy}
	f := e.recvEnd
	e.recvEnd = nil
	return append(out, outFrame{m: m, f: f, closeAfter: true})
}

// killEdgeLocked forgets an edge and closes the router's end if it still
// holds it (the sender then sees EOF or EPIPE).
func (r *Router) killEdgeLocked(e *edge) {
	if e.dead {
		return
	}
	e.dead = true
	delete(r.edges, e.id)
	if e.in.edge == e {
		e.in.edge = nil
	}
	e.closeRecvEndLocked()
}

// closeRecvEndLocked closes the router's copy of the receiving end, if it
// still holds it (the sender then sees EOF once its receiver has none).
func (e *edge) closeRecvEndLocked() {
	if e.recvEnd != nil {
		e.recvEnd.Close()
		e.recvEnd = nil
	}
}

// dropReceiverEdgesLocked kills the edges into c (nothing more is sent to
// it); their inputs go back to the daemon path.
func (r *Router) dropReceiverEdgesLocked(c *nodeConn) {
	changed := false
	for _, e := range r.edges {
		if e.dst == c {
			r.killEdgeLocked(e)
			changed = true
		}
	}
	if changed {
		r.updateRoutesLocked()
	}
}

// dropSenderEdgesLocked runs when c's reader ended: edges not cut over
// die; cut-over edges stay with their receivers (they read what the
// sender wrote, then EOF), and their inputs go back to the daemon path
// for the sender's next process.
func (r *Router) dropSenderEdgesLocked(c *nodeConn) {
	for _, e := range r.edges {
		if e.src != c {
			continue
		}
		if !e.cut {
			r.killEdgeLocked(e)
			continue
		}
		delete(r.edges, e.id)
		if e.in.edge == e {
			e.in.edge = nil
		}
	}
	r.updateRoutesLocked()
}

func (r *Router) closeEdgesLocked() {
	for _, e := range r.edges {
		r.killEdgeLocked(e)
	}
	for _, ns := range r.nodes {
		for el := ns.fifo.Front(); el != nil; el = el.Next() {
			if it := el.Value.(*item); it.edge != nil {
				it.edge.closeRecvEndLocked()
			}
		}
	}
}

// needsDaemonLocked says whether the router still needs OUTPUT frames of
// node id's output o: for remote subscribers, receivers on the daemon path
// (including ones not connected or restarting), or when nobody receives
// it (so the daemon keeps counting it).
func (r *Router) needsDaemonLocked(c *nodeConn, o string) bool {
	key := outKey{c.node.id, o}
	if r.remoteOut[key] || len(r.routes[key]) == 0 {
		return true
	}
	for _, in := range r.routes[key] {
		if in.node.gone {
			continue
		}
		if in.edge == nil || in.edge.src != c {
			return true
		}
	}
	return false
}

// updateRoutesLocked sends ROUTES to every direct sender whose need for
// the daemon path changed.
func (r *Router) updateRoutesLocked() {
	for _, ns := range r.nodes {
		c := ns.conn
		if c == nil || !c.direct || c.closed {
			continue
		}
		for _, o := range ns.spec.Outputs {
			need := r.needsDaemonLocked(c, o)
			last, ok := c.needs[o]
			if !ok {
				last = true
			}
			if need == last {
				continue
			}
			c.needs[o] = need
			c.control = append(c.control, outFrame{m: &shm.Msg{Type: shm.MsgRoutes, ID: o, NeedsDaemon: need}})
			r.kickLocked(c)
		}
	}
}

// addStats folds a node's cumulative edge counters into its metrics.
func (r *Router) addStats(c *nodeConn, m *shm.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &c.stats
	if st.out == nil {
		st.out, st.in, st.pending = map[string]uint64{}, map[string]shm.InStat{}, map[string]uint32{}
	}
	ns := c.node
	for _, s := range m.OutStats {
		if !ns.outputs[s.Output] {
			continue
		}
		ns.metrics.MessagesOut += delta(s.Out, st.out[s.Output])
		st.out[s.Output] = max(s.Out, st.out[s.Output])
	}
	for _, s := range m.InStats {
		if ns.inputs[s.Input] == nil {
			continue
		}
		old := st.in[s.Input]
		in := delta(s.In, old.In)
		ns.metrics.MessagesIn += in
		ns.metrics.DirectIn += in
		ns.metrics.Dropped += delta(s.Dropped, old.Dropped)
		st.in[s.Input] = shm.InStat{Input: s.Input, In: max(s.In, old.In), Dropped: max(s.Dropped, old.Dropped)}
		st.pending[s.Input] = s.Pending
	}
}

func delta(now, before uint64) uint64 {
	if now < before {
		return 0
	}
	return now - before
}
