package dataplane

import (
	"fmt"
	"os"
	"slices"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/transport/shm"
	"golang.org/x/sys/unix"
)

// region is a shared-memory region a node announced. Its memfd is passed on
// to receivers the first time they get a message in it. live counts the
// samples still referencing it: at zero the owner may reuse it (DROPPED),
// or, if the owner is gone or retired it, the region is closed and
// receivers are told to unmap it (REGION_CLOSED).
type region struct {
	id        uint32    // router-wide id, used towards receivers
	localID   uint32    // the owner's id
	owner     *nodeConn // nil: the router's own region (remote data)
	own       *shm.Region
	file      *os.File
	size      uint64
	live      int
	ownerGone bool
	retireReq bool
	sentTo    map[*nodeConn]bool
	mapping   []byte // read-only, only when published to a Remote
}

// sample is one shared-memory message. refs counts queue entries, nodes
// holding its drop token and routing in progress.
type sample struct {
	token          uint64
	region         *region
	offset, length uint64
	refs           int
}

func (g *region) closeLocked() {
	if g.own != nil {
		g.own.Close()
		g.own, g.file = nil, nil
		return
	}
	if g.mapping != nil {
		unix.Munmap(g.mapping)
		g.mapping = nil
	}
	if g.file != nil {
		g.file.Close()
		g.file = nil
	}
}

// bytesLocked maps the region for reading (to publish it remotely).
func (g *region) bytesLocked() ([]byte, error) {
	if g.mapping == nil {
		m, err := shm.MapRegion(g.file, g.size)
		if err != nil {
			return nil, err
		}
		g.mapping = m
	}
	return g.mapping, nil
}

func (r *Router) addRegion(c *nodeConn, localID uint32, size uint64, f *os.File) error {
	if err := shm.CheckRegionFile(f, size); err != nil {
		f.Close()
		return fmt.Errorf("region %d: %w", localID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.owned[localID] != nil {
		f.Close()
		return fmt.Errorf("region %d announced twice", localID)
	}
	r.nextReg++
	g := &region{id: r.nextReg, localID: localID, owner: c, file: f, size: size, sentTo: map[*nodeConn]bool{}}
	r.regions[g.id] = g
	c.owned[localID] = g
	return nil
}

func (r *Router) retireOwned(c *nodeConn, localID uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := c.owned[localID]; g != nil {
		g.retireReq = true
		if g.live == 0 {
			r.retireLocked(g)
		}
	}
}

func (r *Router) retireLocked(g *region) {
	delete(r.regions, g.id)
	if g.owner != nil {
		delete(g.owner.owned, g.localID)
	}
	for c := range g.sentTo {
		if !c.closed {
			c.control = append(c.control, outFrame{m: &shm.Msg{Type: shm.MsgRegionClosed, Region: g.id}})
			delete(c.mapped, g.id)
			c.kick()
		}
	}
	g.sentTo = nil
	g.closeLocked()
}

func (r *Router) unrefSampleLocked(s *sample) {
	s.refs--
	if s.refs > 0 {
		return
	}
	delete(r.samples, s.token)
	g := s.region
	g.live--
	if g.live > 0 {
		return
	}
	switch {
	case g.owner == nil:
		r.ownFree = append(r.ownFree, g)
	case g.ownerGone || g.retireReq:
		r.retireLocked(g)
	case !g.owner.closed:
		g.owner.dropped = append(g.owner.dropped, g.localID)
		r.kickLocked(g.owner)
	}
}

// kickLocked wakes c's writer, unless a reader collects connections to
// pump itself (r.pumpLater): then c joins that list, which saves waking a
// goroutine on the release path.
func (r *Router) kickLocked(c *nodeConn) {
	if r.pumpLater != nil {
		if !slices.Contains(*r.pumpLater, c) {
			*r.pumpLater = append(*r.pumpLater, c)
		}
		return
	}
	c.kick()
}

// releaseTokens releases drop tokens of c; owners whose regions became
// free are added to touched for the caller to pump.
func (r *Router) releaseTokens(c *nodeConn, tokens []uint64, touched *[]*nodeConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pumpLater = touched
	defer func() { r.pumpLater = nil }()
	for _, t := range tokens {
		n := c.outstanding[t]
		if n == 0 {
			continue // unknown or already released: ignore
		}
		if n == 1 {
			delete(c.outstanding, t)
		} else {
			c.outstanding[t] = n - 1
		}
		if s := r.samples[t]; s != nil {
			r.unrefSampleLocked(s)
		}
	}
}

// handleOutput routes one OUTPUT frame of node c. Receivers it queued for
// are added to touched; the caller pumps them (after a batch of frames).
func (r *Router) handleOutput(c *nodeConn, m *shm.Msg, touched *[]*nodeConn) error {
	r.mu.Lock()
	ns := c.node
	if !ns.outputs[m.ID] {
		r.mu.Unlock()
		return fmt.Errorf("output %q is not declared for node %s", m.ID, ns.id)
	}
	ns.metrics.MessagesOut++
	var s *sample
	if m.Shm != nil {
		g := c.owned[m.Shm.Region]
		if g == nil || m.Shm.Offset+m.Shm.Len > g.size || m.Shm.Offset+m.Shm.Len < m.Shm.Offset {
			r.mu.Unlock()
			return fmt.Errorf("output %q references unknown region %d or bytes outside it", m.ID, m.Shm.Region)
		}
		r.nextTok++
		s = &sample{token: r.nextTok, region: g, offset: m.Shm.Offset, length: m.Shm.Len, refs: 1}
		g.live++
		r.samples[s.token] = s
	}
	key := outKey{ns.id, m.ID}
	for _, in := range r.routes[key] {
		if in.edge != nil && in.edge.src == c {
			continue // the sender delivers to this input over its edge
		}
		r.enqueueLocked(in, m.Meta, m.Data, s, c, true)
		if rc := in.node.conn; rc != nil && !slices.Contains(*touched, rc) {
			*touched = append(*touched, rc)
		}
	}
	remote := r.cfg.Remote
	var data []byte
	var rerr error
	if remote != nil && r.remoteOut[key] {
		data = m.Data
		if s != nil {
			var all []byte
			if all, rerr = s.region.bytesLocked(); rerr == nil {
				data = all[s.offset : s.offset+s.length]
			}
		}
	} else {
		remote = nil
	}
	r.mu.Unlock()
	if remote != nil && rerr == nil {
		rerr = remote.Publish(ns.id, m.ID, shm.AppendMeta(nil, &m.Meta), data)
	}
	if rerr != nil {
		r.log.Warn("publish output to remote daemons", "node", ns.id, "output", m.ID, "err", rerr)
	}
	if s != nil {
		r.mu.Lock()
		r.unrefSampleLocked(s)
		r.mu.Unlock()
	}
	return nil
}

// enqueueLocked queues a data message for input in, applying its queue
// policy. With backpressure and canBlock it waits for room; without
// canBlock (timers) a full queue drops the new message. sender is the
// sending connection (nil for timers and remote data): its reader pumps the
// receivers after routing, so they are not kicked here; a node's output to
// its own input is never held, it falls back to drop_oldest.
func (r *Router) enqueueLocked(in *inputState, meta shm.Meta, data []byte, s *sample, sender *nodeConn, canBlock bool) {
	ns := in.node
	if ns.gone {
		return
	}
	if meta.Flushes() {
		r.flushInputLocked(in)
	}
	if len(in.items) >= in.size {
		switch {
		case in.spec.QueuePolicy != config.Backpressure,
			sender != nil && sender.node == ns: // a node feeding itself would wait for its own acks forever
			old := in.items[0]
			in.items = in.items[1:]
			ns.fifo.Remove(old.elem)
			ns.metrics.Dropped++
			if old.sample != nil {
				r.unrefSampleLocked(old.sample)
			}
		case !canBlock:
			ns.metrics.Dropped++
			return
		default:
			r.kickPendingLocked() // deferred pumps must not wait behind us
			for len(in.items) >= in.size && !r.closed && !ns.gone {
				r.cond.Wait()
			}
			if r.closed || ns.gone {
				return
			}
		}
	}
	in.closed = false
	r.touchInputLocked(in)
	it := &item{in: in, msg: &shm.Msg{ID: in.spec.ID, Meta: meta, Data: data}, data: true, sample: s}
	if s != nil {
		s.refs++
	}
	it.elem = ns.fifo.PushBack(it)
	in.items = append(in.items, it)
	if ns.conn != nil && sender == nil {
		ns.conn.kick() // a sender's reader pumps its receivers itself
	}
}

// kickPendingLocked wakes the writer of every node with something to send
// (queued items, DROPPED or control frames a reader meant to pump later).
func (r *Router) kickPendingLocked() {
	for _, ns := range r.nodes {
		if c := ns.conn; c != nil && (ns.fifo.Len() > 0 || len(c.dropped) > 0 || len(c.control) > 0) {
			c.kick()
		}
	}
}

func (r *Router) pushEventLocked(ns *nodeState, m *shm.Msg, front bool) {
	it := &item{msg: m}
	if front {
		it.elem = ns.fifo.PushFront(it)
	} else {
		it.elem = ns.fifo.PushBack(it)
	}
	if ns.conn != nil {
		ns.conn.kick()
	}
}

// closeInputLocked queues INPUT_CLOSED, and ALL_INPUTS_CLOSED when it was
// the last open input.
func (r *Router) closeInputLocked(in *inputState) {
	if in.closed || in.node.gone {
		return
	}
	in.closed = true
	if in.timeout != nil {
		in.timeout.Stop()
	}
	ns := in.node
	if !in.broken { // a timed-out input was already reported closed
		r.pushEventLocked(ns, &shm.Msg{Type: shm.MsgInputClosed, ID: in.spec.ID}, false)
	}
	in.broken = false
	if ns.allClosed {
		return
	}
	for _, other := range ns.inputs {
		if !other.closed {
			return
		}
	}
	ns.allClosed = true
	r.pushEventLocked(ns, &shm.Msg{Type: shm.MsgAllInputsClosed}, false)
}

func (r *Router) closeOutputs(c *nodeConn, ids []string) {
	r.mu.Lock()
	ns := c.node
	var closed []string
	for _, id := range ids {
		if !ns.outputs[id] || ns.closedOut[id] {
			continue
		}
		ns.closedOut[id] = true
		closed = append(closed, id)
		for _, in := range r.routes[outKey{ns.id, id}] {
			r.closeInputLocked(in)
		}
	}
	remote := r.cfg.Remote
	r.mu.Unlock()
	if remote == nil {
		return
	}
	for _, id := range closed {
		if r.remoteOut[outKey{ns.id, id}] {
			if err := remote.PublishEvent(RemoteEvent{Kind: OutputClosed, Node: ns.id, Output: id}); err != nil {
				r.log.Warn("publish output closed to remote daemons", "node", ns.id, "output", id, "err", err)
			}
		}
	}
}

// maxOwnRegions bounds the free regions the router keeps for remote data.
const maxOwnRegions = 8

// ownSampleLocked takes one of the router's own regions for n bytes of
// remote data (the caller copies the data in, outside the lock), so local
// receivers read it in place, whatever its size. The sample holds one
// routing reference.
func (r *Router) ownSampleLocked(n int) (*sample, error) {
	var g *region
	for i, f := range r.ownFree {
		if f.size >= uint64(n) {
			g = f
			r.ownFree = append(r.ownFree[:i], r.ownFree[i+1:]...)
			break
		}
	}
	if g == nil {
		if len(r.ownFree) >= maxOwnRegions {
			r.retireLocked(r.ownFree[0])
			r.ownFree = r.ownFree[1:]
		}
		reg, err := shm.NewRegion("adora-remote", n)
		if err != nil {
			return nil, err
		}
		r.nextReg++
		g = &region{id: r.nextReg, own: reg, file: reg.File(), size: uint64(reg.Size()), sentTo: map[*nodeConn]bool{}}
		r.regions[g.id] = g
	}
	g.live++
	r.nextTok++
	s := &sample{token: r.nextTok, region: g, length: uint64(n), refs: 1}
	r.samples[s.token] = s
	return s, nil
}

// flushInputLocked discards the queued (not yet sent) messages of in.
func (r *Router) flushInputLocked(in *inputState) {
	for _, old := range in.items {
		in.node.fifo.Remove(old.elem)
		if old.sample != nil {
			r.unrefSampleLocked(old.sample)
		}
	}
	in.items = nil
	r.cond.Broadcast()
}
