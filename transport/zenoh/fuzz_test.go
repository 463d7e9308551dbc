package zenoh

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// fuzzConn feeds a fixed byte stream to a link and swallows its writes.
type fuzzConn struct{ r *bytes.Reader }

func (c fuzzConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c fuzzConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c fuzzConn) Close() error                       { return nil }
func (c fuzzConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c fuzzConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c fuzzConn) SetDeadline(t time.Time) error      { return nil }
func (c fuzzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c fuzzConn) SetWriteDeadline(t time.Time) error { return nil }

func fuzzSession() *Session {
	s := &Session{links: map[string]*link{}, subs: map[uint32]*subscription{}, dialing: map[string]context.CancelFunc{},
		pending: make(chan struct{}, maxPendingHandshakes)}
	s.cfg = Config{MaxMessageSize: 1 << 20, Lease: time.Second}
	s.log = slog.New(slog.DiscardHandler)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.subs[1] = &subscription{s: s, id: 1, expr: "**", h: func(smp transport.Sample) {
		_ = len(smp.Payload) + len(smp.Key)
	}}
	return s
}

func batch(b []byte) []byte {
	return append(binary.LittleEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// FuzzLinkStream runs the receive path of an open link (batch framing,
// the streamed FRAGMENT fast path, reassembly, dispatch) on any bytes.
func FuzzLinkStream(f *testing.F) {
	push := wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Suffix: "a/b"}, Put: &wire.Put{Payload: []byte("hi")}})
	f.Add(batch(append(wire.AppendFrameHeader(nil, true, 1), push...)))
	f.Add(append(batch(append(wire.AppendFragmentHeader(nil, true, true, 1), push[:4]...)),
		batch(append(wire.AppendFragmentHeader(nil, true, false, 2), push[4:]...))...))
	f.Add(batch(append(wire.AppendFrameHeader(nil, true, 1), wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclKeyExpr, ID: 1, Key: wire.WireExpr{Suffix: "x"}, HasKey: true})...)))
	f.Add([]byte{0x06, 0x00, 0x66, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add(batchedSeed())
	f.Fuzz(func(t *testing.T, in []byte) {
		s := fuzzSession()
		conn := fuzzConn{bytes.NewReader(in)}
		p := &params{zid: []byte{1}, whatami: wire.Peer, snMask: wire.SNMask(2), batchSize: 65535, peerLease: time.Second}
		l := newLink(s, conn, newStreamReader(conn), p, false)
		l.readLoop()
		if n := len(l.frag[0]) + len(l.frag[1]); n > s.cfg.MaxMessageSize {
			t.Fatalf("reassembly holds %d bytes, cap %d", n, s.cfg.MaxMessageSize)
		}
	})
}

// batchedSeed is a stream as a busy sender writes it (link_tx.go): a
// FRAME carrying an alias declaration and several PUSH (by alias, by
// name, with an attachment), a run of FRAGMENTs, then another FRAME.
func batchedSeed() []byte {
	qos := byte(wire.QoSPriorityData | wire.QoSBlock)
	pushes := func(b []byte, we wire.WireExpr, att []byte, payloads ...string) []byte {
		for _, p := range payloads {
			put := &wire.Put{Attachment: att, HasAttachment: att != nil}
			b = wire.AppendPushPutHeader(b, &we, qos, put, len(p))
			b = append(b, p...)
		}
		return b
	}
	alias := wire.WireExpr{Scope: 1, SenderMapping: true}
	f1 := wire.AppendFrameHeader(nil, true, 1)
	f1 = wire.AppendDeclare(f1, &wire.Declare{Kind: wire.DeclKeyExpr, ID: 1, Key: wire.WireExpr{Suffix: "adora/a/b/output/n/o"}, HasKey: true})
	f1 = pushes(f1, alias, nil, "one", "two")
	f1 = pushes(f1, wire.WireExpr{Suffix: "short"}, []byte("meta"), "three", "")
	f1 = pushes(f1, alias, []byte{1, 0, 0, 0, 0, 0, 0, 0, 9}, "four")
	big := pushes(nil, alias, nil, string(bytes.Repeat([]byte("x"), 300)))
	out := batch(f1)
	out = append(out, batch(append(wire.AppendFragmentHeader(nil, true, true, 2), big[:150]...))...)
	out = append(out, batch(append(wire.AppendFragmentHeader(nil, true, false, 3), big[150:]...))...)
	return append(out, batch(pushes(wire.AppendFrameHeader(nil, true, 4), alias, nil, "five", "six"))...)
}

// TestBatchedSeedDelivers checks the batched stream of the fuzz seed is
// what a receiving link takes apart: every message once, in order.
func TestBatchedSeedDelivers(t *testing.T) {
	s := fuzzSession()
	var got []string
	s.subs[1].h = func(smp transport.Sample) { got = append(got, fmt.Sprintf("%s=%.5s", smp.Key, smp.Payload)) }
	conn := fuzzConn{bytes.NewReader(batchedSeed())}
	p := &params{zid: []byte{1}, whatami: wire.Peer, snMask: wire.SNMask(2), batchSize: 65535, peerLease: time.Second}
	l := newLink(s, conn, newStreamReader(conn), p, false)
	l.rxSN = [2]uint64{0, 0}
	l.readLoop()
	k := "adora/a/b/output/n/o"
	want := []string{k + "=one", k + "=two", "short=three", "short=", k + "=four", k + "=xxxxx", k + "=five", k + "=six"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %q\nwant %q", got, want)
	}
	if d := s.stats.dropped.Load(); d != 0 {
		t.Errorf("%d dropped", d)
	}
}

// FuzzHandshake runs the accepting side of INIT/OPEN on any bytes.
func FuzzHandshake(f *testing.F) {
	f.Add(batch(wire.AppendInit(nil, &wire.Init{Version: wire.Version, WhatAmI: wire.Peer, ZID: []byte{1, 2}, Resolution: wire.DefaultResolution, BatchSize: wire.DefaultBatchSize})))
	f.Add(batch(wire.AppendInit(nil, &wire.Init{Version: wire.Version, WhatAmI: wire.Client, ZID: []byte{3}, Resolution: 0, BatchSize: 100})))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := fuzzSession()
		s.zid = []byte{9, 9}
		conn := fuzzConn{bytes.NewReader(in)}
		p, err := s.handshakeResponder(conn, newStreamReader(conn))
		if err == nil {
			t.Fatalf("handshake succeeded without a valid cookie: %+v", p)
		}
	})
}

// FuzzHandshakeAuth runs the accepting handshake of a session that
// requires credentials on any bytes: without the nonce and cookie it
// picked, none gets through.
func FuzzHandshakeAuth(f *testing.F) {
	syn := wire.AppendInit(nil, &wire.Init{Version: wire.Version, WhatAmI: wire.Peer, ZID: []byte{1, 2}, Resolution: wire.DefaultResolution,
		BatchSize: wire.DefaultBatchSize, Auth: wire.AppendAuthExts(nil, wire.Ext{Key: wire.UsrPwdInitSyn})})
	answer := (&authConfig{user: []byte("adora"), password: []byte("pw")}).answer(0)
	open := wire.AppendOpen(nil, &wire.Open{Lease: time.Second, InitialSN: 1, Cookie: make([]byte, 16), Auth: answer})
	f.Add(batch(syn))
	f.Add(append(batch(syn), batch(open)...))
	f.Add(append(batch(syn), batch(wire.AppendOpen(nil, &wire.Open{Lease: time.Second, Cookie: make([]byte, 16), Auth: []byte{0x42, 0x01, 0xff}}))...))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := fuzzSession()
		s.zid = []byte{9, 9}
		if err := s.SetCredentials(&Credentials{Accept: map[string]string{"adora": "pw"}}); err != nil {
			t.Fatal(err)
		}
		conn := fuzzConn{bytes.NewReader(in)}
		if p, err := s.handshakeResponder(conn, newStreamReader(conn)); err == nil {
			t.Fatalf("handshake succeeded without the nonce and cookie: %+v", p)
		}
	})
}

// chunkyConn returns the stream in reads of pseudo-random sizes.
type chunkyConn struct {
	fuzzConn
	rng *rand.Rand
}

func (c chunkyConn) Read(p []byte) (int, error) {
	if n := 1 + c.rng.IntN(70000); n < len(p) {
		p = p[:n]
	}
	return c.r.Read(p)
}

// The direct read path (large bodies read straight into the reassembly
// buffer, taking the next fragment's header ahead) reassembles correctly
// whatever the read sizes, including when the header taken ahead belongs
// to a shorter last fragment or to a FRAME.
func TestLargeFragmentsReadDirect(t *testing.T) {
	var stream []byte
	var want [][]byte
	sn := uint64(1)
	frag := func(more bool, body []byte) {
		b := wire.AppendFragmentHeader(nil, true, more, sn)
		sn++
		stream = append(stream, batch(append(b, body...))...)
	}
	bigMsg := func(key string, size int, cut ...int) {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(i*13 + size)
		}
		want = append(want, p)
		m := wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Suffix: key}, Put: &wire.Put{Payload: p}})
		prev := 0
		for _, c := range append(cut, len(m)) {
			frag(c < len(m), m[prev:c])
			prev = c
		}
	}
	bigMsg("m/1", 25000, 20000)               // long then short
	bigMsg("m/2", 90000, 30000, 60000, 80000) // several, last short
	small := []byte("small")
	want = append(want, small)
	f := wire.AppendFrameHeader(nil, true, sn)
	sn++
	stream = append(stream, batch(append(f, wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Suffix: "m/3"}, Put: &wire.Put{Payload: small}})...))...)
	bigMsg("m/4", 40000, 20000)

	for seed := uint64(0); seed < 20; seed++ {
		s := fuzzSession()
		var got [][]byte
		s.subs[1].h = func(smp transport.Sample) { got = append(got, bytes.Clone(smp.Payload)) }
		var conn net.Conn = fuzzConn{bytes.NewReader(stream)}
		if seed > 0 {
			conn = chunkyConn{fuzzConn{bytes.NewReader(stream)}, rand.New(rand.NewPCG(seed, 1))}
		}
		p := &params{zid: []byte{1}, whatami: wire.Peer, snMask: wire.SNMask(2), batchSize: 65535, peerLease: time.Second}
		l := newLink(s, conn, newStreamReader(conn), p, false)
		l.rxSN = [2]uint64{0, 0}
		l.readLoop()
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d messages, want %d (dropped %d)", seed, len(got), len(want), s.Stats().Dropped)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("seed %d: message %d differs (%d bytes, want %d)", seed, i, len(got[i]), len(want[i]))
			}
		}
	}
}
