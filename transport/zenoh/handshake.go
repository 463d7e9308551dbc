package zenoh

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// params are what a handshake settles for one link.
type params struct {
	zid       []byte
	whatami   wire.WhatAmI
	snMask    uint64
	batchSize int
	peerLease time.Duration
	txSN      uint64 // our initial SN
	rxSN      uint64 // the peer's initial SN
}

func (s *Session) whatami() wire.WhatAmI {
	if s.cfg.Mode == Client {
		return wire.Client
	}
	return wire.Peer
}

// writeBatch writes one batch with its 2-byte little-endian length.
func writeBatch(w io.Writer, batch []byte) error {
	if len(batch) > wire.DefaultBatchSize {
		return fmt.Errorf("batch of %d bytes exceeds %d", len(batch), wire.DefaultBatchSize)
	}
	b := make([]byte, 2, 2+len(batch))
	binary.LittleEndian.PutUint16(b, uint16(len(batch)))
	_, err := w.Write(append(b, batch...))
	return err
}

// readBatch reads one length-prefixed batch into buf (grown as needed).
func readBatch(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint16(hdr[:]))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// readHandshake reads one batch holding exactly one transport message.
func readHandshake(r *streamReader) (wire.TransportMessage, error) {
	b, err := readBatch(r.Reader, nil)
	if err != nil {
		return nil, err
	}
	rd := wire.NewReader(b)
	m := wire.ReadTransportMessage(rd)
	if err := rd.Err(); err != nil {
		return nil, err
	}
	if c, ok := m.(*wire.Close); ok {
		return nil, &closeError{reason: c.Reason}
	}
	return m, nil
}

// closeError reports a CLOSE received from the peer.
type closeError struct{ reason byte }

func (e *closeError) Error() string { return fmt.Sprintf("peer closed the link (reason %d)", e.reason) }

var errProtocol = errors.New("zenoh handshake: protocol error")

// errSelf is the handshake's verdict on a link to our own session.
var errSelf = errors.New("zenoh handshake: connection to self")

func initialSN(mask uint64) uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) & mask
}

// handshakeInitiator runs INIT/OPEN as the side that dialled.
func (s *Session) handshakeInitiator(conn net.Conn, r *streamReader) (*params, error) {
	a := s.auth.Load()
	syn := &wire.Init{Version: wire.Version, WhatAmI: s.whatami(), ZID: s.zid,
		Resolution: wire.DefaultResolution, BatchSize: wire.DefaultBatchSize}
	if a.dials() {
		syn.Auth = wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdInitSyn})
	}
	if err := writeBatch(conn, wire.AppendInit(nil, syn)); err != nil {
		return nil, fmt.Errorf("send INIT: %w", err)
	}
	m, err := readHandshake(r)
	var ce *closeError
	if errors.As(err, &ce) && ce.reason == wire.CloseConnectionSelf {
		return nil, errSelf
	}
	if err != nil && ce != nil && !a.dials() {
		return nil, fmt.Errorf("read INIT ack: %w (a peer that requires credentials closes a dialer without them)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read INIT ack: %w", err)
	}
	ack, ok := m.(*wire.Init)
	if !ok || !ack.Ack {
		return nil, fmt.Errorf("%w: expected INIT ack, got %T", errProtocol, m)
	}
	if bytes.Equal(ack.ZID, s.zid) {
		return nil, errSelf
	}
	if ack.Version != wire.Version {
		return nil, fmt.Errorf("%w: peer speaks version 0x%02x, want 0x%02x", errProtocol, ack.Version, wire.Version)
	}
	p := &params{zid: bytes.Clone(ack.ZID), whatami: ack.WhatAmI}
	p.negotiate(ack.Resolution, ack.BatchSize)
	p.txSN = initialSN(p.snMask)
	open := &wire.Open{Lease: s.cfg.Lease, InitialSN: p.txSN, Cookie: ack.Cookie}
	if a.dials() {
		nonce, err := challenge(ack.Auth)
		if err != nil {
			writeBatch(conn, wire.AppendClose(nil, &wire.Close{Reason: wire.CloseGeneric}))
			return nil, fmt.Errorf("%w: %v", errAuth, err)
		}
		open.Auth = a.answer(nonce)
	}
	if err := writeBatch(conn, wire.AppendOpen(nil, open)); err != nil {
		return nil, fmt.Errorf("send OPEN: %w", err)
	}
	m, err = readHandshake(r)
	if errors.As(err, &ce) && a.dials() {
		return nil, fmt.Errorf("%w: the peer refused our credentials (CLOSE reason %d after OPEN)", errAuth, ce.reason)
	}
	if err != nil {
		return nil, fmt.Errorf("read OPEN ack: %w", err)
	}
	oack, ok := m.(*wire.Open)
	if !ok || !oack.Ack {
		return nil, fmt.Errorf("%w: expected OPEN ack, got %T", errProtocol, m)
	}
	if a.dials() && !acknowledged(oack.Auth) {
		writeBatch(conn, wire.AppendClose(nil, &wire.Close{Reason: wire.CloseGeneric}))
		return nil, fmt.Errorf("%w: the peer's OPEN ack does not confirm usrpwd", errAuth)
	}
	return p.finish(oack)
}

func (p *params) negotiate(res byte, batch uint16) {
	fsn := min(res&0b11, wire.DefaultResolution&0b11)
	p.snMask = wire.SNMask(fsn)
	p.batchSize = int(min(batch, wire.DefaultBatchSize))
}

func (p *params) finish(o *wire.Open) (*params, error) {
	if o.InitialSN > p.snMask {
		return nil, fmt.Errorf("%w: initial SN %d out of range", errProtocol, o.InitialSN)
	}
	if o.Lease <= 0 {
		return nil, fmt.Errorf("%w: zero lease", errProtocol)
	}
	if p.batchSize < 64 {
		return nil, fmt.Errorf("%w: batch size %d too small", errProtocol, p.batchSize)
	}
	p.rxSN, p.peerLease = o.InitialSN, o.Lease
	return p, nil
}

// handshakeResponder runs INIT/OPEN as the side that accepted.
func (s *Session) handshakeResponder(conn net.Conn, r *streamReader) (*params, error) {
	m, err := readHandshake(r)
	if err != nil {
		return nil, fmt.Errorf("read INIT: %w", err)
	}
	syn, ok := m.(*wire.Init)
	if !ok || syn.Ack {
		return nil, fmt.Errorf("%w: expected INIT syn, got %T", errProtocol, m)
	}
	if syn.Version != wire.Version {
		writeBatch(conn, wire.AppendClose(nil, &wire.Close{Session: true, Reason: wire.CloseUnsupported}))
		return nil, fmt.Errorf("%w: peer speaks version 0x%02x, want 0x%02x", errProtocol, syn.Version, wire.Version)
	}
	if bytes.Equal(syn.ZID, s.zid) {
		writeBatch(conn, wire.AppendClose(nil, &wire.Close{Session: true, Reason: wire.CloseConnectionSelf}))
		return nil, errSelf
	}
	a := s.auth.Load()
	var nonce uint64
	if a != nil && !usrpwdOffered(syn.Auth) {
		return nil, s.refuse(conn, syn, "", errors.New("no credentials offered in INIT"))
	}
	p := &params{zid: bytes.Clone(syn.ZID), whatami: syn.WhatAmI}
	p.negotiate(syn.Resolution, syn.BatchSize)
	cookie := make([]byte, 16)
	rand.Read(cookie)
	ack := &wire.Init{Ack: true, Version: wire.Version, WhatAmI: s.whatami(), ZID: s.zid,
		Resolution: wire.DefaultResolution&^0b11 | byte(bitsOf(p.snMask)), BatchSize: uint16(p.batchSize), Cookie: cookie}
	if a != nil {
		nonce = newNonce()
		ack.Auth = wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdInitAck, Value: nonce})
	}
	if err := writeBatch(conn, wire.AppendInit(nil, ack)); err != nil {
		return nil, fmt.Errorf("send INIT ack: %w", err)
	}
	m, err = readHandshake(r)
	if err != nil {
		return nil, fmt.Errorf("read OPEN: %w", err)
	}
	open, ok := m.(*wire.Open)
	if !ok || open.Ack {
		return nil, fmt.Errorf("%w: expected OPEN syn, got %T", errProtocol, m)
	}
	if !bytes.Equal(open.Cookie, cookie) {
		return nil, fmt.Errorf("%w: OPEN cookie does not match", errProtocol)
	}
	if _, err := p.finish(open); err != nil {
		return nil, err
	}
	p.txSN = initialSN(p.snMask)
	oack := &wire.Open{Ack: true, Lease: s.cfg.Lease, InitialSN: p.txSN}
	if a != nil {
		if user, err := a.verify(open.Auth, nonce); err != nil {
			return nil, s.refuse(conn, syn, user, err)
		}
		oack.Auth = wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdOpenAck})
	}
	if err := writeBatch(conn, wire.AppendOpen(nil, oack)); err != nil {
		return nil, fmt.Errorf("send OPEN ack: %w", err)
	}
	return p, nil
}

// bitsOf maps an SN mask back to its resolution code.
func bitsOf(mask uint64) int {
	for c := 0; c < 4; c++ {
		if wire.SNMask(byte(c)) == mask {
			return c
		}
	}
	return 2
}

// refuse closes an accepted connection that did not authenticate, as
// eclipse-zenoh does (link CLOSE, reason generic), counts it and logs why,
// naming the user the dialer gave, if any, never a password or an HMAC.
func (s *Session) refuse(conn net.Conn, syn *wire.Init, user string, why error) error {
	s.stats.authRefused.Add(1)
	writeBatch(conn, wire.AppendClose(nil, &wire.Close{Reason: wire.CloseGeneric}))
	args := []any{"remote", conn.RemoteAddr().String(), "zid", fmt.Sprintf("%x", syn.ZID), "reason", why.Error()}
	if user != "" {
		args = append(args, "user", user)
	}
	if n, ok := s.refusals.allow(time.Now()); ok {
		if n > 0 {
			args = append(args, "not_logged_since_last", n)
		}
		s.log.Warn("zenoh: link refused: no valid credentials", args...)
	} else {
		s.log.Debug("zenoh: link refused: no valid credentials", args...)
	}
	return fmt.Errorf("%w: %v", errAuth, why)
}

// refusalLogEvery bounds the Warn lines about refused dialers, so that a
// host hammering the port cannot flood the log; the others go to Debug,
// and Stats.AuthRefused counts them all.
const refusalLogEvery = 10 * time.Second

// refusalLimiter lets one refusal a period be logged at Warn.
type refusalLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether a refusal at now may be logged at Warn, and how
// many were not since the last one that was.
func (r *refusalLimiter) allow(now time.Time) (skipped int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		r.skipped++
		return 0, false
	}
	skipped, r.skipped, r.last = r.skipped, 0, now
	return skipped, true
}
