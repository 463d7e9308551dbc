package node

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// DefaultShmPoolBytes caps the shared memory one node keeps for its
// outputs. When every region is in use and the cap is reached, AllocOutput
// waits until a receiver releases one.
const DefaultShmPoolBytes = 64 << 20

// Buffer is shared memory for one output message, from AllocOutput. Write
// the payload into Data, then pass the buffer to SendBuffer (or Free it).
type Buffer struct {
	Data []byte
	reg  *poolRegion
	n    int
	p    *pool
}

// Free returns an unsent buffer to the pool.
func (b *Buffer) Free() {
	if b.reg != nil {
		b.p.put(b.reg)
		b.reg, b.Data = nil, nil
	}
}

type poolRegion struct {
	id        uint32
	r         *shm.Region
	announced bool
	// A sent region is in use while the daemon holds it (until DROPPED),
	// while direct receivers hold tokens of it, or while it is being sent.
	daemonHeld bool
	edgeUses   int
	sending    bool
}

// pool recycles the node's memfd regions. A region is either free or held
// (by a Buffer, by the daemon and its receivers until DROPPED names it,
// or by direct receivers until they RELEASE their tokens).
//
// Lock order: Node.outMu before pool.mu.
type pool struct {
	n    *Node
	mu   sync.Mutex
	cond *sync.Cond

	regions map[uint32]*poolRegion
	free    []*poolRegion
	next    uint32
	total   int64
	max     int64
	closed  bool

	returned chan struct{} // signalled when DROPPED returns regions

	edges      map[*edgeOut]bool
	nextToken  uint64
	edgeCloses []edgeClose // REGION_CLOSED to send on edges, after unlocking
}

// edgeClose is a retired region a direct receiver mapped.
type edgeClose struct {
	e      *edgeOut
	region uint32
}

func newPool(n *Node, max int64) *pool {
	if max <= 0 {
		max = DefaultShmPoolBytes
	}
	p := &pool{n: n, regions: map[uint32]*poolRegion{}, max: max, returned: make(chan struct{}, 1), edges: map[*edgeOut]bool{}}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// AllocOutput returns a shared-memory buffer of size bytes to fill and pass
// to SendBuffer: the payload is written once and never copied again.
func (n *Node) AllocOutput(size int) (*Buffer, error) {
	if size < 0 {
		return nil, errors.New("alloc output: negative size")
	}
	r, err := n.pool.get(size)
	if err != nil {
		return nil, fmt.Errorf("alloc output of %d bytes: %w", size, err)
	}
	return &Buffer{Data: r.r.Data[:size:size], reg: r, n: size, p: n.pool}, nil
}

// growWait is how long AllocOutput waits for a busy region of the right
// size to come back before it creates another one (growWaitSmall below
// growWaitMin bytes): creating a region costs system calls in three
// processes, and first touching a large one costs far more than a release
// takes to arrive.
const (
	growWait      = 2 * time.Millisecond
	growWaitSmall = 200 * time.Microsecond
	growWaitMin   = 256 << 10
)

// MaxShmRegions caps how many regions one node keeps (each is a file
// descriptor in the node, the daemon and every receiver).
const MaxShmRegions = 256

func (p *pool) get(size int) (*poolRegion, error) {
	p.mu.Lock()
	r, err := p.getLocked(size)
	closes := p.edgeCloses
	p.edgeCloses = nil
	p.mu.Unlock()
	for _, c := range closes {
		// Best effort, outside the lock (the write may wait for a slow
		// receiver): a dead edge unmaps everything anyway.
		c.e.conn.WriteMsg(&shm.Msg{Type: shm.MsgRegionClosed, Region: c.region}, nil)
	}
	return r, err
}

func (p *pool) getLocked(size int) (*poolRegion, error) {
	wait := growWait
	if size < growWaitMin {
		wait = growWaitSmall
	}
	deadline := time.Now().Add(wait)
	for {
		if p.closed {
			return nil, errors.New("node is closed")
		}
		if r := p.bestFitLocked(size); r != nil {
			return r, nil
		}
		if wait := time.Until(deadline); wait > 0 && p.busyFitLocked(size) {
			p.waitReturnLocked(wait)
			continue
		}
		need := int64(size)
		for (p.total+need > p.max || len(p.regions) >= MaxShmRegions) && len(p.free) > 0 {
			p.retireLocked(p.free[0]) // too small for this request anyway
			p.free = p.free[1:]
		}
		if (p.total+need <= p.max && len(p.regions) < MaxShmRegions) || len(p.regions) == 0 {
			return p.createLocked(size)
		}
		p.cond.Wait() // every region is in use: wait for one to come back
	}
}

// waitReturnLocked waits up to d for DROPPED to return a region.
func (p *pool) waitReturnLocked(d time.Duration) {
	p.mu.Unlock()
	t := time.NewTimer(d)
	select {
	case <-p.returned:
	case <-t.C:
	}
	t.Stop()
	p.mu.Lock()
}

// busyFitLocked reports whether a region of at least size bytes is in use
// (and so will come back).
func (p *pool) busyFitLocked(size int) bool {
	busy := map[uint32]bool{}
	for id := range p.regions {
		busy[id] = true
	}
	for _, r := range p.free {
		delete(busy, r.id)
	}
	for id := range busy {
		if p.regions[id].r.Size() >= size {
			return true
		}
	}
	return false
}

func (p *pool) bestFitLocked(size int) *poolRegion {
	best := -1
	for i, r := range p.free {
		if r.r.Size() >= size && (best < 0 || r.r.Size() < p.free[best].r.Size()) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	r := p.free[best]
	p.free = append(p.free[:best], p.free[best+1:]...)
	return r
}

func (p *pool) createLocked(size int) (*poolRegion, error) {
	reg, err := shm.NewRegion("adora-"+p.n.cfg.NodeID, size)
	if err != nil {
		return nil, err
	}
	p.next++
	r := &poolRegion{id: p.next, r: reg}
	p.regions[r.id] = r
	p.total += int64(reg.Size())
	return r, nil
}

// retireLocked unmaps a free region and tells the daemon to forget it.
func (p *pool) retireLocked(r *poolRegion) {
	if r.announced {
		p.n.conn.WriteMsg(&shm.Msg{Type: shm.MsgRegionClosed, Region: r.id}, nil)
	}
	for e := range p.edges {
		if e.mapped[r.id] {
			delete(e.mapped, r.id)
			p.edgeCloses = append(p.edgeCloses, edgeClose{e, r.id})
		}
	}
	delete(p.regions, r.id)
	p.total -= int64(r.r.Size())
	r.r.Close()
}

func (p *pool) put(r *poolRegion) {
	p.mu.Lock()
	p.free = append(p.free, r)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// announce sends the region's memfd to the daemon once.
func (p *pool) announce(r *poolRegion) error {
	if r.announced {
		return nil
	}
	m := &shm.Msg{Type: shm.MsgRegion, Region: r.id, Size: uint64(r.r.Size())}
	if err := p.n.conn.WriteMsg(m, r.r.File()); err != nil {
		return fmt.Errorf("announce region: %w", err)
	}
	r.announced = true
	return nil
}

// dropped returns regions the daemon reports unused.
func (p *pool) dropped(ids []uint32) {
	p.mu.Lock()
	for _, id := range ids {
		if r := p.regions[id]; r != nil && r.daemonHeld {
			r.daemonHeld = false
			p.maybeFreeLocked(r)
		}
	}
	p.mu.Unlock()
}

// maybeFreeLocked returns a sent region to the free list once nobody uses
// it any more.
func (p *pool) maybeFreeLocked(r *poolRegion) {
	if r.daemonHeld || r.edgeUses > 0 || r.sending || p.regions[r.id] != r {
		return
	}
	p.free = append(p.free, r)
	p.cond.Broadcast()
	select {
	case p.returned <- struct{}{}:
	default:
	}
}

// beginSend marks a buffer's region as being sent (a fast release must not
// free it before every receiver got it); viaDaemon says the daemon gets it
// too (it comes back with DROPPED, which may arrive before endSend).
func (p *pool) beginSend(r *poolRegion, viaDaemon bool) {
	p.mu.Lock()
	r.sending, r.daemonHeld = true, viaDaemon
	p.mu.Unlock()
}

// endSend ends the send; daemonFailed says the OUTPUT frame could not be
// written (the daemon never holds the region).
func (p *pool) endSend(r *poolRegion, daemonFailed bool) {
	p.mu.Lock()
	r.sending = false
	if daemonFailed {
		r.daemonHeld = false
	}
	p.maybeFreeLocked(r)
	p.mu.Unlock()
}

func (p *pool) addEdge(e *edgeOut) {
	p.mu.Lock()
	p.edges[e] = true
	p.mu.Unlock()
}

// removeEdge forgets a dead edge and releases every token outstanding on
// it (a crashed receiver leaks nothing).
func (p *pool) removeEdge(e *edgeOut) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.edges, e)
	for tok, r := range e.tokens {
		delete(e.tokens, tok)
		r.edgeUses--
		p.maybeFreeLocked(r)
	}
}

// useEdge records that region r is sent over e: it returns whether the
// region must be announced on the edge first, and the message's token.
func (p *pool) useEdge(e *edgeOut, r *poolRegion) (announce bool, token uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !e.mapped[r.id] {
		e.mapped[r.id] = true
		announce = true
	}
	p.nextToken++
	e.tokens[p.nextToken] = r
	r.edgeUses++
	return announce, p.nextToken
}

// releaseEdge handles a RELEASE from a direct receiver (unknown tokens are
// ignored).
func (p *pool) releaseEdge(e *edgeOut, tokens []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tok := range tokens {
		if r := e.tokens[tok]; r != nil {
			delete(e.tokens, tok)
			r.edgeUses--
			p.maybeFreeLocked(r)
		}
	}
}

// stats reports regions and bytes held, for tests.
func (p *pool) stats() (regions, free int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.regions), len(p.free), p.total
}

func (p *pool) shutdown() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for id, r := range p.regions {
		r.r.Close()
		delete(p.regions, id)
	}
	p.free, p.total = nil, 0
	p.cond.Broadcast()
}

// PoolStats reports the node's shared-memory pool: regions held, how many
// of them are free (not referenced by any receiver) and their total size.
func (n *Node) PoolStats() (regions, free int, bytes int64) { return n.pool.stats() }
