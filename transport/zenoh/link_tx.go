package zenoh

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// The transmit side of a link. Everything a link writes after the
// handshake (publications, declarations, KEEPALIVE, CLOSE) is a write
// unit, and units are written one at a time in the order they were
// queued, which is the order of their sequence numbers:
//
//	sendPut / sendNetwork (under txMu)
//	  │ small message, and a queued FRAME has room ──► join that FRAME,
//	  │                                                wait until it is written
//	  ▼
//	new unit: a FRAME batch, or a run of FRAGMENTs (a large message)
//	  │ link idle ──► write it now (no added latency, no timer)
//	  ▼
//	queue it; wait until it is written, or for its turn to write it
//	  ▼
//	written ──► the writer goes on with the queued units that take no more
//	            messages (a few, see maxDrain), then gives the turn to the
//	            next one's creator, or the link is idle
//
// So while a write is in progress, small messages that arrive meanwhile
// gather in one FRAME (up to the batch size) and go out in one write.
// Units that can take no more messages are written by the writer before
// them as soon as its own write returns, so the socket does not wait for
// a goroutine to wake up; the open FRAME goes to its creator, and fills
// while that goroutine wakes.
// Only the last queued unit, and only a FRAME, takes more messages: a
// FRAME queued behind a run of fragments never jumps it, so messages
// leave in the order they were published. Every publisher waits until
// its own message is handed to the kernel (or the write failed), so
// Publish's error, the sent and dropped counters, and back-pressure stay
// exact: a full socket blocks the writer, and everyone queued behind it.

// txUnit is one write: a batch in buf, or a run of batches in bufs.
type txUnit struct {
	buf    []byte      // 2-byte length, then a FRAME (or KEEPALIVE, CLOSE); the length is set at write
	bufs   net.Buffers // instead of buf: batches with their lengths, written with one vectored write
	size   int         // bytes in bufs
	pooled bool        // buf returns to the link's free list after the write
	always bool        // written even while the link closes (the CLOSE itself)

	turn    chan struct{} // closed when the unit may be written, or was; nil: at once
	done    chan struct{} // closed once written; made when a second message joins
	err     error         // the write's result, set before done closes
	written bool          // another writer wrote it (set before turn closes)

	aborted bool // a waiting publisher's ctx ended; under the link's abortMu
}

// maxFreeBatches bounds the batch buffers a link keeps for reuse.
const maxFreeBatches = 4

// A writer goes on with at most maxDrain queued units, of at most
// drainBytes together, before it hands the turn on: enough to keep the
// socket busy, little enough that its own Publish returns soon.
const (
	maxDrain   = 8
	drainBytes = 512 << 10
)

// maxAliasKeyLen is the longest key we declare an alias for: its
// declaration must fit a batch of its own.
const maxAliasKeyLen = 4096

// closeWriteTimeout bounds the CLOSE we send, and cuts short a write in
// progress when the link closes.
const closeWriteTimeout = 100 * time.Millisecond

// closedErr is the error of a send on a link that is closing.
func (l *link) closedErr() error {
	if e := l.failErr.Load(); e != nil {
		return fmt.Errorf("link failed: %w", *e)
	}
	return errors.New("link closed")
}

// sendPut publishes one PUT on this link, in a FRAME with other small
// messages or as FRAGMENTs when it does not fit one batch. It returns
// once the message is handed to the kernel. A fragmented payload is
// written straight from the caller's slice (no copy).
func (l *link) sendPut(ctx context.Context, key string, payload, attachment []byte) error {
	l.txMu.Lock()
	if l.closing.Load() {
		l.txMu.Unlock()
		return fmt.Errorf("send to %x: %w", l.zid, l.closedErr())
	}
	we := wire.WireExpr{Suffix: key}
	id, fresh := l.aliasLocked(key)
	if id != 0 {
		we = wire.WireExpr{Scope: id, SenderMapping: true}
	}
	var decl []byte
	if fresh {
		decl = wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclKeyExpr, ID: uint32(id), Key: wire.WireExpr{Suffix: key}, HasKey: true})
	}
	put := &wire.Put{Attachment: attachment, HasAttachment: attachment != nil}
	// Ask every hop to block rather than drop (Zenoh's default for PUT is
	// to drop under congestion).
	var scratch [128]byte // the header usually fits: no allocation
	pre := wire.AppendPushPutHeader(scratch[:0], &we, wire.QoSPriorityData|wire.QoSBlock, put, len(payload))
	var u *txUnit
	joined := false
	if l.fitsFrameLocked(len(decl) + len(pre) + len(payload)) {
		u, joined = l.appendLocked(decl, pre, payload)
	} else {
		u = l.fragmentsLocked(decl, pre, payload)
	}
	if err := l.complete(ctx, u, joined); err != nil {
		return fmt.Errorf("send to %x: %w", l.zid, err)
	}
	l.s.stats.sent.Add(1)
	l.stats.sent.Add(1)
	return nil
}

// sendNetwork sends small network messages (declarations, answers) in
// one reliable FRAME, which may carry publications too. Errors close the
// link.
func (l *link) sendNetwork(msgs ...any) {
	var body []byte
	for _, m := range msgs {
		switch m := m.(type) {
		case *wire.Declare:
			body = wire.AppendDeclare(body, m)
		case *wire.ResponseFinal:
			body = wire.AppendResponseFinal(body, m)
		case *wire.Interest:
			body = wire.AppendInterest(body, m)
		}
	}
	l.txMu.Lock()
	if l.closing.Load() {
		l.txMu.Unlock()
		return
	}
	if !l.fitsFrameLocked(len(body)) {
		l.txMu.Unlock()
		l.fail(fmt.Errorf("network messages of %d bytes exceed a batch of %d", len(body), l.maxBatch()))
		return
	}
	u, joined := l.appendLocked(body)
	l.complete(context.Background(), u, joined) // a failed write fails the link
}

// fitsFrameLocked reports whether n bytes of network messages fit one
// FRAME batch of their own.
func (l *link) fitsFrameLocked(n int) bool {
	return 1+wire.VLELen(l.p.snMask)+n <= l.maxBatch()
}

// nextSNLocked takes the next reliable sequence number.
func (l *link) nextSNLocked() uint64 {
	sn := l.txSN[laneReliable]
	l.txSN[laneReliable] = (sn + 1) & l.p.snMask
	return sn
}

// appendLocked adds network messages (the concatenation of parts, which
// fits a FRAME) to the queued FRAME when it has room, and reports true;
// else it queues a new FRAME with them (written at once when the link is
// idle).
func (l *link) appendLocked(parts ...[]byte) (*txUnit, bool) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if o := l.open; o != nil && len(o.buf)-2+n <= l.maxBatch() {
		for _, p := range parts {
			o.buf = append(o.buf, p...)
		}
		if o.done == nil {
			o.done = make(chan struct{})
		}
		return o, true
	}
	u := &txUnit{buf: l.batchBufLocked(), pooled: true}
	u.buf = wire.AppendFrameHeader(u.buf, true, l.nextSNLocked())
	for _, p := range parts {
		u.buf = append(u.buf, p...)
	}
	l.enqueueLocked(u, true)
	return u, false
}

// batchBufLocked returns an empty batch (its 2 length bytes) to fill.
func (l *link) batchBufLocked() []byte {
	if k := len(l.free); k > 0 {
		b := l.free[k-1]
		l.free = l.free[:k-1]
		return append(b[:0], 0, 0)
	}
	return append(make([]byte, 0, 4096), 0, 0)
}

// fragmentsLocked queues a message too large for one batch: the alias
// declaration (if any) in a FRAME of its own, then header+payload as a run
// of reliable FRAGMENTs, all in one vectored write.
func (l *link) fragmentsLocked(decl, header, payload []byte) *txUnit {
	pre := bytes.Clone(header) // header may live on the caller's stack
	u := &txUnit{}
	if decl != nil {
		b := wire.AppendFrameHeader([]byte{0, 0}, true, l.nextSNLocked())
		b = append(b, decl...)
		binary.LittleEndian.PutUint16(b, uint16(len(b)-2))
		u.bufs = append(u.bufs, b)
		u.size += len(b)
	}
	total := len(pre) + len(payload)
	hdrs := make([]byte, 0, (total/(l.maxBatch()-16)+2)*16)
	for off := 0; off < total; {
		sn := l.nextSNLocked()
		n := min(l.maxBatch()-wire.FragmentHeaderLen(sn), total-off)
		more := off+n < total
		start := len(hdrs)
		hdrs = append(hdrs, 0, 0)
		hdrs = wire.AppendFragmentHeader(hdrs, true, more, sn)
		h := hdrs[start:len(hdrs):len(hdrs)]
		binary.LittleEndian.PutUint16(h, uint16(len(h)-2+n))
		u.bufs = append(u.bufs, h)
		u.bufs = appendRange(u.bufs, pre, payload, off, off+n)
		u.size += len(h) + n
		off += n
	}
	l.enqueueLocked(u, false)
	return u
}

// enqueueLocked makes u the next unit: written at once by its creator
// when the link is idle, else queued behind the others. Only an
// appendable FRAME at the end of the queue takes more messages.
func (l *link) enqueueLocked(u *txUnit, appendable bool) {
	if !l.writing {
		l.writing = true
		return
	}
	u.turn = make(chan struct{})
	l.queue = append(l.queue, u)
	l.open = nil
	if appendable {
		l.open = u
	}
}

// complete finishes a send begun under txMu (which it releases): a
// message that joined a queued FRAME waits for that FRAME to be written;
// the creator of a unit waits until the writer before it wrote it, or
// gave it the turn: then it writes it and goes on with the queue (see
// writeTurn). It returns the write's result.
func (l *link) complete(ctx context.Context, u *txUnit, joined bool) error {
	l.txMu.Unlock()
	if joined {
		l.await(ctx, u, u.done)
		return u.err
	}
	if u.turn != nil {
		l.await(ctx, u, u.turn)
		if u.written {
			return u.err
		}
	}
	return l.writeTurn(ctx, u)
}

// writeTurn writes u, whose turn it is, then the units queued behind it
// that can take no more messages (runs of fragments, full FRAMEs; up to
// maxDrain and drainBytes), then hands the turn to the creator of the
// next one, or marks the link idle. The FRAME that is still open is
// handed on rather than written at once: it takes the messages that
// arrive while its creator wakes up. It returns u's result.
func (l *link) writeTurn(ctx context.Context, u *txUnit) error {
	err := l.write(ctx, u)
	cur, curErr, byOther := u, err, false
	budget := drainBytes
	for n := 0; ; n++ {
		l.txMu.Lock()
		next := l.popLocked(n, budget)
		// The turn goes on before the messages of cur are released: that
		// order keeps FRAMEs fuller when publishers queue up.
		l.finishLocked(cur, curErr, byOther)
		l.txMu.Unlock()
		if next == nil {
			return err
		}
		budget -= next.len()
		cur, curErr, byOther = next, l.write(context.Background(), next), true
	}
}

// popLocked takes the next queued unit for the writer to write, or
// returns nil after handing the turn to the next unit's creator (the
// open FRAME, or beyond maxDrain or the byte budget) or marking the link
// idle. n units were drained already.
func (l *link) popLocked(n, budget int) *txUnit {
	if len(l.queue) == 0 {
		l.writing = false
		return nil
	}
	next := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	handOn := l.open == next || n >= maxDrain || next.len() > budget
	if l.open == next {
		l.open = nil // sealed: later messages go to a new FRAME
	}
	if handOn {
		close(next.turn)
		return nil
	}
	return next
}

// len is the number of bytes u writes.
func (u *txUnit) len() int {
	if u.buf != nil {
		return len(u.buf)
	}
	return u.size
}

// await waits for ch to close. When ctx ends first, u's write is aborted
// (at once if in progress, else as soon as it starts), which fails the
// link, as a publisher that gives up on a write does; it still waits
// for ch, so that the queue keeps its order.
func (l *link) await(ctx context.Context, u *txUnit, ch <-chan struct{}) {
	var cancel <-chan struct{}
	if ctx != nil {
		cancel = ctx.Done()
	}
	select {
	case <-ch:
		return
	case <-cancel:
	}
	l.abort(u)
	<-ch
}

// abort cuts short the write of u: at once when it is in progress, else
// when it starts.
func (l *link) abort(u *txUnit) {
	l.abortMu.Lock()
	defer l.abortMu.Unlock()
	u.aborted = true
	if l.inFlight == u {
		l.conn.SetWriteDeadline(time.Unix(1, 0))
	}
}

// write writes u, bounded by ctx (its creator's), the peer's lease and
// the aborts of the publishers waiting for it. A unit queued when the
// link began to close is not written. A failed write fails the link.
func (l *link) write(ctx context.Context, u *txUnit) error {
	n := u.size
	if u.buf != nil {
		n = len(u.buf)
		if n-2 > l.maxBatch() {
			err := fmt.Errorf("batch of %d bytes exceeds %d", n-2, l.maxBatch())
			l.fail(err)
			return err
		}
		binary.LittleEndian.PutUint16(u.buf, uint16(n-2))
	}
	if !l.armWrite(ctx, u, n) {
		return l.closedErr()
	}
	var stop func() bool
	if ctx != nil && ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { l.abort(u) })
	}
	var written int64
	var err error
	if u.bufs != nil {
		written, err = u.bufs.WriteTo(l.conn)
	} else {
		var k int
		k, err = l.conn.Write(u.buf)
		written = int64(k)
	}
	l.abortMu.Lock()
	l.inFlight = nil
	l.abortMu.Unlock()
	if stop != nil {
		stop()
	}
	l.lastTx.Store(time.Now().UnixNano())
	l.s.stats.bytesSent.Add(uint64(written))
	l.stats.bytesSent.Add(uint64(written))
	l.s.stats.writes.Add(1)
	if err != nil {
		l.fail(err)
	}
	return err
}

// armWrite sets the write deadline for u and marks it in flight, or
// reports false when u must not be written: the link failed, or is
// closing and u is not the CLOSE. close sets closing before it cuts the
// deadline under abortMu, so either it sees u in flight or u sees
// closing.
func (l *link) armWrite(ctx context.Context, u *txUnit, n int) bool {
	l.abortMu.Lock()
	defer l.abortMu.Unlock()
	if l.failErr.Load() != nil || (l.closing.Load() && !u.always) {
		return false
	}
	d := l.writeDeadline(ctx, n)
	switch {
	case u.aborted:
		d = time.Unix(1, 0)
	case u.always:
		d = time.Now().Add(closeWriteTimeout)
	}
	l.conn.SetWriteDeadline(d)
	l.inFlight = u
	return true
}

// finishLocked releases the messages waiting for u with its result,
// and its creator too when another writer wrote it (byOther).
func (l *link) finishLocked(u *txUnit, err error, byOther bool) {
	u.err = err
	if byOther {
		u.written = true
		close(u.turn)
	}
	if u.done != nil {
		close(u.done)
	}
	if u.pooled && len(l.free) < maxFreeBatches {
		l.free = append(l.free, u.buf)
	}
	u.buf = nil
}

// sendKeepAlive writes a KEEPALIVE unless a write is in progress or
// queued (that traffic keeps the link alive) or the link is closing.
func (l *link) sendKeepAlive() error {
	l.txMu.Lock()
	if l.writing || l.closing.Load() {
		l.txMu.Unlock()
		return nil
	}
	l.writing = true
	u := &txUnit{buf: wire.AppendKeepAlive([]byte{0, 0})}
	l.txMu.Unlock()
	return l.writeTurn(context.Background(), u)
}

// closeTx stops the transmit side: no new unit is accepted, queued ones
// are not written, a write in progress is cut short after
// closeWriteTimeout, and then (when sendClose, and no write failed) a
// CLOSE with reason goes out as the last unit.
func (l *link) closeTx(reason byte, sendClose bool) {
	l.txMu.Lock()
	l.closing.Store(true)
	var u *txUnit
	if sendClose {
		u = &txUnit{buf: wire.AppendClose([]byte{0, 0}, &wire.Close{Session: !l.linkOnly.Load(), Reason: reason}), always: true}
		l.enqueueLocked(u, false)
	}
	l.open = nil
	l.txMu.Unlock()
	l.abortMu.Lock()
	l.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	l.abortMu.Unlock()
	if u == nil {
		return
	}
	if u.turn != nil {
		if <-u.turn; u.written {
			return
		}
	}
	l.writeTurn(context.Background(), u)
}

// appendRange appends the slices covering [from, to) of the virtual
// concatenation a ++ b.
func appendRange(bufs net.Buffers, a, b []byte, from, to int) net.Buffers {
	if from < len(a) {
		bufs = append(bufs, a[from:min(to, len(a))])
	}
	if to > len(a) {
		bufs = append(bufs, b[max(from-len(a), 0):to-len(a)])
	}
	return bufs
}
