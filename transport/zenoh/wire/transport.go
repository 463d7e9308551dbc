package wire

import (
	"fmt"
	"time"
)

// Transport message ids.
const (
	IDTransportOAM = 0x00
	IDInit         = 0x01
	IDOpen         = 0x02
	IDClose        = 0x03
	IDKeepAlive    = 0x04
	IDFrame        = 0x05
	IDFragment     = 0x06
	IDJoin         = 0x07
)

// WhatAmI is the role of a Zenoh node.
type WhatAmI uint8

// Roles as they appear in the two low bits of the INIT flags byte.
const (
	Router WhatAmI = 0b00
	Peer   WhatAmI = 0b01
	Client WhatAmI = 0b10
)

func (w WhatAmI) String() string {
	switch w {
	case Router:
		return "router"
	case Peer:
		return "peer"
	case Client:
		return "client"
	}
	return fmt.Sprintf("whatami(%d)", uint8(w))
}

// MaxZIDLen is the longest Zenoh id.
const MaxZIDLen = 16

// DefaultResolution is 32-bit frame and request sequence numbers.
const DefaultResolution = 0x0A

// DefaultBatchSize is the largest unicast batch.
const DefaultBatchSize = 65535

// SNMask returns the sequence-number mask for the frame resolution bits
// (bits 0-1 of the resolution byte). The masks keep every value within 1,
// 2, 4 or 9 VLE bytes.
func SNMask(resolution byte) uint64 {
	switch resolution & 0b11 {
	case 0:
		return 0x7f
	case 1:
		return 0x3fff
	case 2:
		return 0x0fffffff
	}
	return 1<<63 - 1
}

// Init is INIT Syn (Ack false) or INIT Ack (Ack true).
type Init struct {
	Ack        bool
	Version    byte
	WhatAmI    WhatAmI
	ZID        []byte
	Resolution byte   // DefaultResolution unless the S flag was set
	BatchSize  uint16 // DefaultBatchSize unless the S flag was set
	Cookie     []byte // Ack only
	// Auth is the body of the Auth extension (see auth.go); nil when
	// the extension is absent.
	Auth []byte
}

const (
	flagInitA = flagF1
	flagInitS = flagF2
)

// AppendInit appends an INIT message. The only extension it writes is
// Auth, when m.Auth is not nil.
func AppendInit(b []byte, m *Init) []byte {
	h := byte(IDInit)
	if m.Ack {
		h |= flagInitA
	}
	if m.Auth != nil {
		h |= FlagZ
	}
	sizes := m.Resolution != DefaultResolution || m.BatchSize != DefaultBatchSize
	if sizes {
		h |= flagInitS
	}
	b = append(b, h, m.Version, byte(len(m.ZID)-1)<<4|byte(m.WhatAmI))
	b = append(b, m.ZID...)
	if sizes {
		b = append(b, m.Resolution, byte(m.BatchSize), byte(m.BatchSize>>8))
	}
	if m.Ack {
		b = AppendSlice(b, m.Cookie)
	}
	if m.Auth != nil {
		b = appendExtZBuf(b, extAuth, m.Auth, false)
	}
	return b
}

func readInit(r *Reader, h byte) *Init {
	m := &Init{Ack: h&flagInitA != 0, Resolution: DefaultResolution, BatchSize: DefaultBatchSize}
	m.Version = r.Byte()
	f := r.Byte()
	if f&0b11 == 0b11 {
		r.Failf("INIT: invalid whatami")
		return nil
	}
	m.WhatAmI = WhatAmI(f & 0b11)
	m.ZID = r.Bytes(int(f>>4) + 1)
	if h&flagInitS != 0 {
		m.Resolution = r.Byte() & 0x3f
		lo, hi := r.Byte(), r.Byte()
		m.BatchSize = uint16(lo) | uint16(hi)<<8
	}
	if m.Ack {
		m.Cookie = r.Slice(maxZ16, "INIT cookie")
	}
	if h&FlagZ != 0 {
		readExts(r, "INIT", m.authExt)
	}
	return m
}

func (m *Init) authExt(e Ext) bool { return keepAuth(&m.Auth, e) }

// keepAuth stores the body of an Auth extension (never nil, so that an
// empty one is told apart from none) and reports whether e was one.
func keepAuth(dst *[]byte, e Ext) bool {
	if e.Key != extAuth {
		return false
	}
	*dst = e.Body
	if *dst == nil {
		*dst = []byte{}
	}
	return true
}

// Open is OPEN Syn (Ack false) or OPEN Ack (Ack true).
type Open struct {
	Ack       bool
	Lease     time.Duration
	InitialSN uint64
	Cookie    []byte // Syn only
	// Auth is the body of the Auth extension (see auth.go); nil when
	// the extension is absent.
	Auth []byte
}

const (
	flagOpenA = flagF1
	flagOpenT = flagF2
)

// AppendOpen appends an OPEN message. The lease goes in seconds when it
// is a whole number of seconds (flag T), in milliseconds otherwise. The
// only extension it writes is Auth, when m.Auth is not nil.
func AppendOpen(b []byte, m *Open) []byte {
	h := byte(IDOpen)
	if m.Ack {
		h |= flagOpenA
	}
	if m.Auth != nil {
		h |= FlagZ
	}
	ms := uint64(m.Lease / time.Millisecond)
	lease := ms
	if ms%1000 == 0 {
		h |= flagOpenT
		lease = ms / 1000
	}
	b = append(b, h)
	b = AppendVLE(b, lease)
	b = AppendVLE(b, m.InitialSN)
	if !m.Ack {
		b = AppendSlice(b, m.Cookie)
	}
	if m.Auth != nil {
		b = appendExtZBuf(b, extAuth, m.Auth, false)
	}
	return b
}

// maxLease bounds a lease read from the wire (one year).
const maxLease = 365 * 24 * time.Hour

func readOpen(r *Reader, h byte) *Open {
	m := &Open{Ack: h&flagOpenA != 0}
	v := r.VLE()
	unit := time.Millisecond
	if h&flagOpenT != 0 {
		unit = time.Second
	}
	if v > uint64(maxLease/unit) {
		r.Failf("OPEN: lease %d too large", v)
		return nil
	}
	m.Lease = time.Duration(v) * unit
	m.InitialSN = r.VLE()
	if !m.Ack {
		m.Cookie = r.Slice(maxZ16, "OPEN cookie")
	}
	if h&FlagZ != 0 {
		readExts(r, "OPEN", func(e Ext) bool { return keepAuth(&m.Auth, e) })
	}
	return m
}

// Close reasons.
const (
	CloseGeneric        = 0x00
	CloseUnsupported    = 0x01
	CloseInvalid        = 0x02
	CloseMaxSessions    = 0x03
	CloseMaxLinks       = 0x04
	CloseExpired        = 0x05
	CloseUnresponsive   = 0x06
	CloseConnectionSelf = 0x07
)

// Close is the CLOSE message.
type Close struct {
	Session bool // close the whole session, not only the link
	Reason  byte
}

const flagCloseS = flagF1

// AppendClose appends a CLOSE message.
func AppendClose(b []byte, m *Close) []byte {
	h := byte(IDClose)
	if m.Session {
		h |= flagCloseS
	}
	return append(b, h, m.Reason)
}

func readClose(r *Reader, h byte) *Close {
	m := &Close{Session: h&flagCloseS != 0, Reason: r.Byte()}
	if h&FlagZ != 0 {
		readExts(r, "CLOSE", nil)
	}
	return m
}

// KeepAlive is the KEEPALIVE message.
type KeepAlive struct{}

// AppendKeepAlive appends a KEEPALIVE message.
func AppendKeepAlive(b []byte) []byte { return append(b, IDKeepAlive) }

// Frame is a FRAME: a run of network messages on one reliability lane.
type Frame struct {
	Reliable bool
	SN       uint64
	Msgs     []NetworkMessage
}

const (
	flagFrameR    = flagF1
	flagFragmentM = flagF2
)

// AppendFrameHeader appends the header of a FRAME; network messages
// follow it in the same batch.
func AppendFrameHeader(b []byte, reliable bool, sn uint64) []byte {
	h := byte(IDFrame)
	if reliable {
		h |= flagFrameR
	}
	b = append(b, h)
	return AppendVLE(b, sn)
}

// Fragment is one FRAGMENT of a network message larger than a batch.
type Fragment struct {
	Reliable bool
	More     bool
	SN       uint64
	Body     []byte // aliases the batch
}

// AppendFragmentHeader appends the header of a FRAGMENT; its body runs to
// the end of the batch.
func AppendFragmentHeader(b []byte, reliable, more bool, sn uint64) []byte {
	h := byte(IDFragment)
	if reliable {
		h |= flagFrameR
	}
	if more {
		h |= flagFragmentM
	}
	b = append(b, h)
	return AppendVLE(b, sn)
}

// FragmentHeaderLen reports the size of a fragment header carrying sn.
func FragmentHeaderLen(sn uint64) int { return 1 + VLELen(sn) }

func frameExt(e Ext) bool {
	return e.Key == extQoSFrame || e.Key == extFragFirst || e.Key == extFragDrop
}

func readFrame(r *Reader, h byte) *Frame {
	m := &Frame{Reliable: h&flagFrameR != 0, SN: r.VLE()}
	if h&FlagZ != 0 {
		readExts(r, "FRAME", frameExt)
	}
	for r.err == nil {
		nh, ok := r.Peek()
		if !ok || !IsNetworkID(MsgID(nh)) {
			break
		}
		msg := ReadNetworkMessage(r)
		if r.err != nil {
			return nil
		}
		m.Msgs = append(m.Msgs, msg)
	}
	return m
}

func readFragment(r *Reader, h byte) *Fragment {
	m := &Fragment{Reliable: h&flagFrameR != 0, More: h&flagFragmentM != 0, SN: r.VLE()}
	if h&FlagZ != 0 {
		readExts(r, "FRAGMENT", frameExt)
	}
	m.Body = r.Rest()
	return m
}

// TransportMessage is one of *Init, *Open, *Close, *KeepAlive, *Frame,
// *Fragment or *Unsupported.
type TransportMessage any

// Unsupported stands for a transport message we decode only to skip
// (transport OAM, JOIN).
type Unsupported struct{ ID byte }

// ReadTransportMessage decodes the next transport message of a batch.
func ReadTransportMessage(r *Reader) TransportMessage {
	h := r.Byte()
	if r.err != nil {
		return nil
	}
	var m TransportMessage
	switch MsgID(h) {
	case IDInit:
		m = readInit(r, h)
	case IDOpen:
		m = readOpen(r, h)
	case IDClose:
		m = readClose(r, h)
	case IDKeepAlive:
		if h&FlagZ != 0 {
			readExts(r, "KEEPALIVE", nil)
		}
		m = &KeepAlive{}
	case IDFrame:
		m = readFrame(r, h)
	case IDFragment:
		m = readFragment(r, h)
	default:
		r.Failf("unexpected transport message id 0x%02x", MsgID(h))
		return nil
	}
	if r.err != nil {
		return nil
	}
	return m
}

// DecodeBatch decodes every transport message of one batch and calls fn
// for each. Decoding stops at the first error (the link should then be
// closed) or the first error fn returns.
func DecodeBatch(batch []byte, fn func(TransportMessage) error) error {
	r := NewReader(batch)
	for r.Len() > 0 {
		m := ReadTransportMessage(r)
		if err := r.Err(); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}
