package zenoh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// The receive side of a link: one reader goroutine per link reads
// batches, checks sequence numbers, reassembles fragments and hands
// network messages to routing.go.

// errLease is the cause of a link closed for silence.
var errLease = errors.New("lease expired")

// readLoop reads batches until the link fails, expires or closes.
func (l *link) readLoop() {
	var buf []byte
	for {
		var err error
		buf, err = l.readOne(buf)
		if err == nil {
			continue
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded):
			l.close(wire.CloseGeneric, false, err)
		default:
			var ce *closeError
			if errors.As(err, &ce) {
				l.close(0, false, err)
			} else {
				l.s.stats.dropped.Add(1)
				l.close(wire.CloseInvalid, true, err)
			}
		}
		return
	}
}

// readOne reads and handles one batch. Fragments are read straight into
// the reassembly buffer.
func (l *link) readOne(buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(l.r, hdr[:]); err != nil {
		return buf, err
	}
	n := int(binary.LittleEndian.Uint16(hdr[:]))
	l.s.stats.bytesReceived.Add(uint64(n + 2))
	l.stats.bytesReceived.Add(uint64(n + 2))
	l.lastRx.Store(time.Now().UnixNano())
	if first, err := l.r.Peek(1); err == nil && n > 1 && first[0]&^0x60 == wire.IDFragment {
		return buf, l.readFragment(n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if err := l.r.readBody(buf, 0); err != nil {
		return buf, err
	}
	return buf, wire.DecodeBatch(buf, l.handleTransport)
}

// readFragment handles a batch that holds one FRAGMENT without
// extensions: the header is parsed from the stream and the body appended
// to the lane's reassembly buffer.
func (l *link) readFragment(n int) error {
	var hb [10]byte
	h, _ := l.r.ReadByte()
	hb[0] = h
	k := 1
	for k < len(hb) && k < n {
		c, err := l.r.ReadByte()
		if err != nil {
			return err
		}
		hb[k] = c
		k++
		if c&0x80 == 0 {
			break
		}
	}
	rd := wire.NewReader(hb[1:k])
	sn := rd.VLE()
	if err := rd.Err(); err != nil {
		return fmt.Errorf("fragment header: %w", err)
	}
	lane := laneBestEffort
	if h&0x20 != 0 {
		lane = laneReliable
	}
	bodyLen := n - k
	ok := l.acceptSN(lane, sn)
	cur := l.frag[lane]
	if !ok || l.fragBad[lane] || len(cur)+bodyLen > l.s.cfg.MaxMessageSize {
		if ok && !l.fragBad[lane] {
			l.fragBad[lane] = true
			l.s.stats.dropped.Add(1)
			l.log.Warn("zenoh: message exceeds the size cap, dropped", "cap", l.s.cfg.MaxMessageSize)
		}
		if _, err := l.r.Discard(bodyLen); err != nil {
			return err
		}
		if h&0x40 == 0 {
			l.fragBad[lane] = false
			l.frag[lane] = cur[:0]
		}
		return nil
	}
	// While more fragments follow, the body read may also take the next
	// fragment's length and header: 2 + 1 + the VLE of the next SN.
	ahead := 0
	if h&0x40 != 0 {
		ahead = 3 + wire.VLELen((sn+1)&l.p.snMask)
	}
	cur = growTo(cur, len(cur)+bodyLen, ahead)
	if err := l.r.readBody(cur[len(cur)-bodyLen:], ahead); err != nil {
		return err
	}
	l.frag[lane] = cur
	if h&0x40 != 0 {
		return nil // more fragments follow
	}
	err := l.handleReassembled(cur)
	if cap(cur) > 16<<20 {
		cur = nil // do not keep very large buffers
	}
	l.frag[lane] = cur[:0]
	return err
}

// growTo returns b resized to n with at least spare bytes of capacity
// beyond n.
func growTo(b []byte, n, spare int) []byte {
	if n+spare <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n, max(n+spare, 2*cap(b)))
	copy(nb, b)
	return nb
}

// handleReassembled decodes a reassembled message. One that does not
// decode is dropped and counted, but the link stays: batch framing is
// intact, and a Zenoh sender may legitimately abandon the rest of a
// fragmented message under congestion (without the Patch extension,
// which we decline, the receiver cannot tell), leaving a truncated or
// spliced message behind.
func (l *link) handleReassembled(b []byte) error {
	r := wire.NewReader(b)
	m := wire.ReadNetworkMessage(r)
	if err := r.Err(); err != nil || r.Len() != 0 {
		l.s.stats.dropped.Add(1)
		l.log.Debug("zenoh: reassembled message dropped", "err", err, "trailing", r.Len())
		return nil
	}
	return l.handleNetwork(m)
}

// acceptSN reports whether sn is ahead of the lane's last SN within half
// the window, and records it.
func (l *link) acceptSN(lane int, sn uint64) bool {
	mask := l.p.snMask
	if sn > mask {
		return false
	}
	gap := (sn - l.rxSN[lane]) & mask
	if gap == 0 || gap > (mask+1)/2 {
		l.s.stats.dropped.Add(1)
		return false
	}
	l.rxSN[lane] = sn
	return true
}

func (l *link) handleTransport(m wire.TransportMessage) error {
	switch m := m.(type) {
	case *wire.KeepAlive:
	case *wire.Frame:
		lane := laneBestEffort
		if m.Reliable {
			lane = laneReliable
		}
		if !l.acceptSN(lane, m.SN) {
			return nil
		}
		if len(l.frag[lane]) > 0 || l.fragBad[lane] {
			// a frame interrupts a fragmented message: drop the partial one
			l.frag[lane], l.fragBad[lane] = l.frag[lane][:0], false
			l.s.stats.dropped.Add(1)
		}
		for _, nm := range m.Msgs {
			if err := l.handleNetwork(nm); err != nil {
				return err
			}
		}
	case *wire.Fragment:
		return l.handleFragment(m)
	case *wire.Close:
		return &closeError{reason: m.Reason}
	default:
		return fmt.Errorf("%w: unexpected %T after open", errProtocol, m)
	}
	return nil
}

// handleFragment reassembles a FRAGMENT found inside a batch (one with
// extensions, or following other messages).
func (l *link) handleFragment(f *wire.Fragment) error {
	lane := laneBestEffort
	if f.Reliable {
		lane = laneReliable
	}
	if !l.acceptSN(lane, f.SN) {
		return nil
	}
	cur := l.frag[lane]
	if l.fragBad[lane] || len(cur)+len(f.Body) > l.s.cfg.MaxMessageSize {
		if !l.fragBad[lane] {
			l.s.stats.dropped.Add(1)
		}
		l.fragBad[lane] = f.More
		l.frag[lane] = cur[:0]
		return nil
	}
	cur = append(cur, f.Body...)
	if f.More {
		l.frag[lane] = cur
		return nil
	}
	err := l.handleReassembled(cur)
	l.frag[lane] = cur[:0]
	return err
}
