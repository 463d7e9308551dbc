package zenoh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/keyexpr"
	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// Lanes: one SN counter per reliability (no QoS negotiated).
const (
	laneBestEffort = 0
	laneReliable   = 1
)

// maxTxAliases bounds the expression ids we declare on one link.
const maxTxAliases = 4096

// maxRemoteDecls bounds what one peer may declare to us.
const maxRemoteDecls = 1 << 16

// link is one established TCP link to a remote Zenoh node.
type link struct {
	s         *Session
	conn      net.Conn
	r         *streamReader
	log       *slog.Logger
	zid       []byte
	whatami   wire.WhatAmI
	initiator bool
	p         *params
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	stats     counters              // this link's share of the session counters
	failErr   atomic.Pointer[error] // first write error
	linkOnly  atomic.Bool           // CLOSE this link only, not the session

	finalTimer *time.Timer // pending initial D_FINAL (accepting side), under mu

	// transmit side (link_tx.go), under txMu
	txMu    sync.Mutex
	txSN    [2]uint64
	writing bool         // a unit is being written (or about to be, by its creator)
	queue   []*txUnit    // units waiting for their turn, in order
	open    *txUnit      // the last queued unit, a FRAME that small messages may join
	free    [][]byte     // batch buffers to reuse
	closing atomic.Bool  // set under txMu: no new units, queued ones are not written
	lastTx  atomic.Int64 // unix nanos of the last write
	lastRx  atomic.Int64 // unix nanos of the last batch read
	// delivering is set while a handler runs on the reader goroutine: a
	// slow handler is not a silent peer.
	delivering atomic.Bool

	abortMu  sync.Mutex // orders write deadlines: see armWrite and abort
	inFlight *txUnit    // the unit being written, under abortMu

	// receive side, owned by the reader goroutine
	rxSN    [2]uint64 // last accepted SN per lane
	frag    [2][]byte
	fragBad [2]bool

	// routerFiltered is set once a router answered our interest in its
	// subscribers (D_FINAL): from then on only matching publications go
	// to it, as with a peer.
	routerFiltered atomic.Bool

	// routing state, under mu
	mu         sync.Mutex
	rxAlias    map[uint16]string // expression ids the peer declared
	remoteSubs map[uint32]string
	matchCache map[string]bool
	txAlias    map[string]uint16
	txKeys     []string // txKeys[id-1] is the key of our alias id
}

func newLink(s *Session, conn net.Conn, r *streamReader, p *params, initiator bool) *link {
	l := &link{
		s: s, conn: conn, r: r, zid: p.zid, whatami: p.whatami, initiator: initiator, p: p,
		done:       make(chan struct{}),
		rxAlias:    map[uint16]string{},
		remoteSubs: map[uint32]string{},
		matchCache: map[string]bool{},
		txAlias:    map[string]uint16{},
	}
	l.log = s.log.With("peer", fmt.Sprintf("%x", p.zid), "whatami", p.whatami.String(), "remote", conn.RemoteAddr().String())
	l.txSN = [2]uint64{p.txSN, p.txSN}
	prev := (p.rxSN - 1) & p.snMask
	l.rxSN = [2]uint64{prev, prev}
	l.lastTx.Store(time.Now().UnixNano())
	l.lastRx.Store(time.Now().UnixNano())
	return l
}

// fail closes the socket after a write error; the reader goroutine then
// finishes the close. It is safe to call from a writer.
func (l *link) fail(err error) {
	l.failErr.CompareAndSwap(nil, &err)
	if peerGone(err) {
		// The peer closed its end. What it sent last, often a CLOSE with
		// its reason (a duplicate link, for one), may still wait in our
		// receive buffer: stop writing and let the reader take it, for at
		// most a second.
		if cw, ok := l.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			l.conn.SetReadDeadline(time.Now().Add(time.Second))
			return
		}
	}
	l.conn.Close()
}

// peerGone reports whether a write failed because the peer closed the
// connection.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// inherit takes over what old (a link to the same peer that l replaces)
// learnt: the peer's aliases and subscribers, and the ids of our own
// aliases. A Zenoh peer that put both links into one transport keeps
// that state per transport and will not declare it again on l; our own
// aliases on l get new ids, so they never clash with the ones old used.
// l must not be serving yet.
func (l *link) inherit(old *link) {
	old.mu.Lock()
	rx, subs, keys := maps.Clone(old.rxAlias), maps.Clone(old.remoteSubs), slices.Clone(old.txKeys)
	filtered := old.routerFiltered.Load()
	old.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range rx {
		if _, ok := l.rxAlias[k]; !ok {
			l.rxAlias[k] = v
		}
	}
	for k, v := range subs {
		if _, ok := l.remoteSubs[k]; !ok {
			l.remoteSubs[k] = v
		}
	}
	l.txKeys = append(keys, l.txKeys...)
	if filtered {
		l.routerFiltered.Store(true)
	}
}

// closeDuplicate closes a link that duplicates another one to the same
// peer. Its CLOSE names only this link: a Zenoh peer that put both links
// into one transport then keeps the other (with the session flag it
// would tear down both).
func (l *link) closeDuplicate(cause error) {
	l.linkOnly.Store(true)
	l.close(wire.CloseMaxLinks, true, cause)
}

// close ends the link once: it sends CLOSE with reason (when sendClose),
// closes the socket and lets the reader goroutine finish. It must not be
// called by a goroutine that has a unit queued or in flight.
func (l *link) close(reason byte, sendClose bool, cause error) {
	l.closeOnce.Do(func() {
		// A write error names the cause, unless the peer said why it
		// closed: its CLOSE, read after our write failed, wins.
		var ce *closeError
		if e := l.failErr.Load(); e != nil && !errors.As(cause, &ce) {
			cause = *e
		}
		l.closeErr = cause
		l.mu.Lock()
		if t := l.finalTimer; t != nil && t.Stop() {
			l.s.wg.Done()
		}
		l.mu.Unlock()
		l.closeTx(reason, sendClose)
		l.conn.Close()
		close(l.done)
	})
}

// maxBatch is the largest batch we send, not counting its 2-byte length.
// Zenoh counts the length prefix of a streamed link within the negotiated
// batch size (its receive buffer is exactly that large).
func (l *link) maxBatch() int { return l.p.batchSize - 2 }

// wants reports whether a publication on key should go to this link.
func (l *link) wants(key string) bool {
	if l.whatami == wire.Router && !l.routerFiltered.Load() {
		return true // until the router has told us its subscribers
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.matchCache[key]; ok {
		return v
	}
	v := false
	for _, e := range l.remoteSubs {
		if keyexpr.Intersects(e, key) {
			v = true
			break
		}
	}
	if len(l.matchCache) > 4096 {
		clear(l.matchCache)
	}
	l.matchCache[key] = v
	return v
}

// writeDeadline bounds a write of n bytes by ctx, and by the peer's
// lease plus one second per MiB (a peer that reads nothing for a lease is
// as good as gone, but a large message needs time to drain).
func (l *link) writeDeadline(ctx context.Context, n int) time.Time {
	d := time.Now().Add(max(l.p.peerLease, time.Second) + time.Duration(n>>20)*time.Second)
	if ctx != nil {
		if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
			d = cd
		}
	}
	return d
}

// ourAlias returns the key of an expression id we declared on this link.
func (l *link) ourAlias(id uint16) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id == 0 || int(id) > len(l.txKeys) {
		return "", false
	}
	return l.txKeys[id-1], true
}

// aliasLocked returns the expression id declared for key on this link
// (0 if none), and whether it is declared now (a D_KEYEXPR must precede
// the message).
func (l *link) aliasLocked(key string) (uint16, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id, ok := l.txAlias[key]; ok {
		return id, false
	}
	if len(l.txKeys) >= maxTxAliases || len(key) < 8 || len(key) > maxAliasKeyLen {
		return 0, false
	}
	id := uint16(len(l.txKeys) + 1)
	l.txAlias[key] = id
	l.txKeys = append(l.txKeys, key)
	return id, true
}

// keepAlive sends KEEPALIVE when nothing was written for a quarter of the
// smaller lease, and closes the link when nothing was read for the
// peer's lease (checked at the same ticks). It returns when the link
// closes.
func (l *link) keepAlive() {
	interval := min(l.p.peerLease, l.s.cfg.Lease) / 4
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case now := <-t.C:
			if now.UnixNano()-l.lastRx.Load() > int64(l.p.peerLease) && !l.delivering.Load() {
				l.close(wire.CloseExpired, true, errLease)
				return
			}
			if now.UnixNano()-l.lastTx.Load() < int64(interval) {
				continue // recent traffic
			}
			if err := l.sendKeepAlive(); err != nil {
				l.close(wire.CloseGeneric, false, err)
				return
			}
		}
	}
}
