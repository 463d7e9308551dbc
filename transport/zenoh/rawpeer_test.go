package zenoh

import (
	"bufio"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// rawPeer is a hand-driven Zenoh peer built on the wire codec, for tests
// that need to send exactly chosen bytes (aliases, hostile input).
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	sn   uint64
	zid  []byte
}

func dialRaw(t testing.TB, s *Session) *rawPeer {
	t.Helper()
	ep := s.ListenEndpoints()[0]
	conn, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// handshake runs INIT/OPEN as initiator announcing lease.
func (p *rawPeer) handshake(zid byte, lease time.Duration) { p.handshakeAs(zid, lease, wire.Peer) }

// handshakeAs is handshake with a chosen role.
func (p *rawPeer) handshakeAs(zid byte, lease time.Duration, w wire.WhatAmI) {
	p.t.Helper()
	p.zid = []byte{zid, 0xee}
	p.write(wire.AppendInit(nil, &wire.Init{Version: wire.Version, WhatAmI: w, ZID: p.zid, Resolution: wire.DefaultResolution, BatchSize: wire.DefaultBatchSize}))
	ack, ok := p.read().(*wire.Init)
	if !ok || !ack.Ack {
		p.t.Fatalf("want INIT ack")
	}
	p.sn = 100
	p.write(wire.AppendOpen(nil, &wire.Open{Lease: lease, InitialSN: p.sn, Cookie: ack.Cookie}))
	if o, ok := p.read().(*wire.Open); !ok || !o.Ack {
		p.t.Fatalf("want OPEN ack")
	}
}

func (p *rawPeer) write(batch []byte) {
	p.t.Helper()
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(batch)))
	p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.conn.Write(append(b, batch...)); err != nil {
		p.t.Fatalf("raw write: %v", err)
	}
}

// frame sends network messages in one reliable FRAME.
func (p *rawPeer) frame(msgs ...[]byte) {
	p.t.Helper()
	b := wire.AppendFrameHeader(nil, true, p.sn)
	p.sn++
	for _, m := range msgs {
		b = append(b, m...)
	}
	p.write(b)
}

// readBatch returns the next batch, or nil at EOF or after 5 s.
func (p *rawPeer) readBatch() []byte {
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := readBatch(p.r, nil)
	if err != nil {
		return nil
	}
	return b
}

// read returns the first transport message of the next batch.
func (p *rawPeer) read() wire.TransportMessage {
	p.t.Helper()
	b := p.readBatch()
	if b == nil {
		p.t.Fatal("raw peer: link closed")
	}
	r := wire.NewReader(b)
	m := wire.ReadTransportMessage(r)
	if r.Err() != nil {
		p.t.Fatalf("raw peer: %v", r.Err())
	}
	return m
}

// network collects network messages until one satisfies stop; it fails
// the test if the link closes first.
func (p *rawPeer) network(stop func(wire.NetworkMessage) bool) []wire.NetworkMessage {
	p.t.Helper()
	var out []wire.NetworkMessage
	for {
		b := p.readBatch()
		if b == nil {
			p.t.Fatalf("raw peer: link closed; got %d messages", len(out))
		}
		done := false
		wire.DecodeBatch(b, func(m wire.TransportMessage) error {
			if f, ok := m.(*wire.Frame); ok {
				for _, nm := range f.Msgs {
					out = append(out, nm)
					done = done || stop(nm)
				}
			}
			return nil
		})
		if done {
			return out
		}
	}
}

// closed waits for the session to close the link and returns the CLOSE
// reason it sent (-1 if none).
func (p *rawPeer) closed() int {
	p.t.Helper()
	reason := -1
	for {
		b := p.readBatch()
		if b == nil {
			return reason
		}
		wire.DecodeBatch(b, func(m wire.TransportMessage) error {
			if c, ok := m.(*wire.Close); ok {
				reason = int(c.Reason)
			}
			return nil
		})
	}
}

func isFinal(id uint32) func(wire.NetworkMessage) bool {
	return func(m wire.NetworkMessage) bool {
		d, ok := m.(*wire.Declare)
		return ok && d.Kind == wire.DeclFinal && d.HasInterest && d.InterestID == id
	}
}
