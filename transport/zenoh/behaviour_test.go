package zenoh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

func listener(t *testing.T, cfg Config) *Session {
	cfg.Listen = []string{"tcp/127.0.0.1:0"}
	return openT(t, cfg)
}

func TestInitialDeclarationsThenFinal(t *testing.T) {
	s := listener(t, Config{})
	if _, err := s.Subscribe("x/**", func(smp Sample) {}); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, s)
	p.handshake(1, 10*time.Second)
	msgs := p.network(isFinal(0))
	d, ok := msgs[0].(*wire.Declare)
	if !ok || d.Kind != wire.DeclSubscriber || d.Key.Suffix != "x/**" || d.HasInterest {
		t.Fatalf("first message %#v, want D_SUBSCRIBER x/**", msgs[0])
	}
	if len(msgs) != 2 {
		t.Fatalf("got %d messages before D_FINAL(0), want 2", len(msgs))
	}
}

func TestInterestAndRequestAnswered(t *testing.T) {
	s := listener(t, Config{})
	s.Subscribe("a/b", func(Sample) {})
	s.Subscribe("c/d", func(Sample) {})
	p := dialRaw(t, s)
	p.handshake(1, 10*time.Second)
	p.network(isFinal(0))

	// Current interest restricted to a/**: only a/b, tagged with id 5.
	p.frame(wire.AppendInterest(nil, &wire.Interest{ID: 5, Mode: wire.InterestCurrent, Options: wire.InterestSubscribers, Key: &wire.WireExpr{Suffix: "a/**"}}))
	msgs := p.network(isFinal(5))
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want D_SUBSCRIBER + D_FINAL", len(msgs))
	}
	d := msgs[0].(*wire.Declare)
	if d.Kind != wire.DeclSubscriber || d.Key.Suffix != "a/b" || !d.HasInterest || d.InterestID != 5 {
		t.Fatalf("answer %#v", d)
	}

	// A query gets RESPONSE_FINAL at once.
	req := []byte{wire.IDRequest | 0x20}
	req = wire.AppendVLE(req, 9)
	req = append(req, 0, 1, 'q', wire.IDQuery)
	p.frame(req)
	msgs = p.network(func(m wire.NetworkMessage) bool { _, ok := m.(*wire.ResponseFinal); return ok })
	if rf := msgs[len(msgs)-1].(*wire.ResponseFinal); rf.RequestID != 9 {
		t.Fatalf("RESPONSE_FINAL for %d, want 9", rf.RequestID)
	}
}

// Aliases are per link: two peers declare the same expression id for
// different prefixes, and each PUSH resolves against its own link.
func TestAliasTablesPerLink(t *testing.T) {
	s := listener(t, Config{})
	c := newCollector()
	s.Subscribe("al/**", c.handle)
	p1, p2 := dialRaw(t, s), dialRaw(t, s)
	p1.handshake(1, 10*time.Second)
	p2.handshake(2, 10*time.Second)
	p1.network(isFinal(0))
	p2.network(isFinal(0))
	decl := func(prefix string) []byte {
		return wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclKeyExpr, ID: 1, Key: wire.WireExpr{Suffix: prefix}, HasKey: true})
	}
	push := func(suffix, v string) []byte {
		return wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Scope: 1, Suffix: suffix, SenderMapping: true}, Put: &wire.Put{Payload: []byte(v)}})
	}
	p1.frame(decl("al/one/"))
	p2.frame(decl("al/two/"))
	p1.frame(push("x", "1"))
	p2.frame(push("y", "2"))
	got := c.waitN(t, 2)
	keys := map[string]string{}
	for _, smp := range got {
		keys[smp.Key] = string(smp.Payload)
	}
	if keys["al/one/x"] != "1" || keys["al/two/y"] != "2" {
		t.Fatalf("got %v", keys)
	}
	// An unknown alias is dropped and counted, the link stays.
	before := s.Stats().Dropped
	p1.frame(wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Scope: 9, SenderMapping: true}, Put: &wire.Put{}}))
	p1.frame(push("z", "3"))
	c.waitN(t, 3)
	if s.Stats().Dropped != before+1 {
		t.Fatalf("dropped %d, want %d", s.Stats().Dropped, before+1)
	}
	// Our own side declares an alias for a long key and uses it.
	p1.frame(wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 1, Key: wire.WireExpr{Suffix: "out/**"}, HasKey: true}))
	waitFor(t, "remote sub", func() bool { return remoteSubscribed(s, "out/long/key") })
	s.Publish(context.Background(), "out/long/key", []byte("a"), nil)
	s.Publish(context.Background(), "out/long/key", []byte("b"), nil)
	msgs := p1.network(func(m wire.NetworkMessage) bool {
		ps, ok := m.(*wire.Push)
		return ok && string(ps.Put.Payload) == "b"
	})
	var sawDecl bool
	for _, m := range msgs {
		switch m := m.(type) {
		case *wire.Declare:
			sawDecl = sawDecl || (m.Kind == wire.DeclKeyExpr && m.Key.Suffix == "out/long/key")
		case *wire.Push:
			if m.Key.Scope == 0 || !m.Key.SenderMapping || !sawDecl {
				t.Fatalf("PUSH %#v does not use a declared alias", m.Key)
			}
		}
	}
}

func TestLeaseExpiry(t *testing.T) {
	s := listener(t, Config{})
	p := dialRaw(t, s)
	p.handshake(1, 300*time.Millisecond) // then silence
	waitFor(t, "link", func() bool { return len(s.Peers()) == 1 })
	start := time.Now()
	if r := p.closed(); r != wire.CloseExpired {
		t.Fatalf("close reason %d, want %d (expired)", r, wire.CloseExpired)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("expired after %v", d)
	}
	waitFor(t, "link removed", func() bool { return len(s.Peers()) == 0 && s.Stats().LinksClosed == 1 })
}

func TestKeepAliveHoldsIdleLink(t *testing.T) {
	a := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Lease: 200 * time.Millisecond})
	b := openT(t, Config{Connect: a.ListenEndpoints(), Lease: 200 * time.Millisecond})
	waitFor(t, "link", func() bool { return len(a.Peers()) == 1 })
	time.Sleep(time.Second) // five leases without data
	if len(a.Peers()) != 1 || len(b.Peers()) != 1 || a.Stats().LinksClosed != 0 {
		t.Fatalf("idle link dropped: %d/%d peers, %d closed", len(a.Peers()), len(b.Peers()), a.Stats().LinksClosed)
	}
}

func TestHostilePeerDisconnectedOthersContinue(t *testing.T) {
	s := listener(t, Config{MaxMessageSize: 4096})
	good := openT(t, Config{Connect: s.ListenEndpoints()})
	c := newCollector()
	good.Subscribe("data", c.handle)
	waitFor(t, "good subscriber", func() bool { return remoteSubscribed(s, "data") })

	for i, tc := range []struct {
		name  string
		batch []byte
	}{
		{"truncated push", append(wire.AppendFrameHeader(nil, true, 100), 0x3d, 0x00, 0x09, 'a')},
		{"unknown mandatory extension", append(wire.AppendFrameHeader(nil, true, 100), 0xbd, 0x00, 0x01, 'k', 0x3e, 0x00, 0x01, 0x00)},
		{"INIT after open", wire.AppendInit(nil, &wire.Init{Version: 9, ZID: []byte{9}})},
		{"unknown alias in declaration", append(wire.AppendFrameHeader(nil, true, 100), wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 1, Key: wire.WireExpr{Scope: 7, SenderMapping: true}, HasKey: true})...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialRaw(t, s)
			p.handshake(byte(10+i), 10*time.Second) // a new ZID: the last link may not be gone yet
			p.write(tc.batch)
			if r := p.closed(); r != wire.CloseInvalid {
				t.Fatalf("close reason %d, want %d (invalid)", r, wire.CloseInvalid)
			}
			n := len(c.samples())
			s.Publish(context.Background(), "data", []byte("still"), nil)
			c.waitN(t, n+1)
		})
	}

	t.Run("garbage before handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.ListenEndpoints()[0][4:])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte{0x05, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff})
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 16)); err == nil {
			t.Fatal("garbage peer got an answer")
		}
	})

	t.Run("oversized fragmented message dropped", func(t *testing.T) {
		s.Subscribe("frag", func(Sample) {})
		p := dialRaw(t, s)
		p.handshake(4, 10*time.Second)
		before := s.Stats().Dropped
		chunk := make([]byte, 3000)
		for i := 0; i < 3; i++ {
			b := wire.AppendFragmentHeader(nil, true, i < 2, p.sn)
			p.sn++
			p.write(append(b, chunk...))
		}
		// the link survives: a later message is handled (its answer arrives)
		p.frame(wire.AppendInterest(nil, &wire.Interest{ID: 8, Mode: wire.InterestCurrent, Options: wire.InterestSubscribers}))
		p.network(isFinal(8))
		if d := s.Stats().Dropped; d != before+1 {
			t.Fatalf("dropped %d, want %d", d, before+1)
		}
	})
}

func TestReconnectRedeclares(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := fmt.Sprintf("tcp/%s", ln.Addr())
	ln.Close()
	a, err := Open(context.Background(), Config{Listen: []string{ep}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := openT(t, Config{Connect: []string{ep}, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	c := newCollector()
	b.Subscribe("re/*", c.handle)
	waitFor(t, "subscription", func() bool { return remoteSubscribed(a, "re/x") })
	a.Publish(context.Background(), "re/x", []byte("1"), nil)
	c.waitN(t, 1)
	a.Close()
	waitFor(t, "b sees the link go", func() bool { return len(b.Peers()) == 0 })

	a2 := openT(t, Config{Listen: []string{ep}})
	waitFor(t, "re-declared subscription", func() bool { return remoteSubscribed(a2, "re/x") })
	a2.Publish(context.Background(), "re/x", []byte("2"), nil)
	got := c.waitN(t, 2)
	if string(got[1].Payload) != "2" {
		t.Fatalf("after reconnect got %q", got[1].Payload)
	}
}

func TestSimultaneousDialKeepsOneLink(t *testing.T) {
	a := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, ReconnectMin: 10 * time.Millisecond})
	b := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, ReconnectMin: 10 * time.Millisecond})
	a.Connect(b.ListenEndpoints()[0])
	b.Connect(a.ListenEndpoints()[0])
	c := newCollector()
	b.Subscribe("sim", c.handle)
	waitFor(t, "subscription", func() bool { return remoteSubscribed(a, "sim") })
	time.Sleep(300 * time.Millisecond) // let both dial loops settle
	if len(a.Peers()) != 1 || len(b.Peers()) != 1 {
		t.Fatalf("peers: a %d, b %d, want 1 each", len(a.Peers()), len(b.Peers()))
	}
	if a.Peers()[0].Initiator == b.Peers()[0].Initiator {
		t.Fatal("the two sides kept different links")
	}
	for i := 0; i < 20; i++ {
		a.Publish(context.Background(), "sim", []byte{byte(i)}, nil)
	}
	got := c.waitN(t, 20)
	for i, smp := range got {
		if smp.Payload[0] != byte(i) {
			t.Fatalf("sample %d = %d (order or loss)", i, smp.Payload[0])
		}
	}
}

func TestUnsubscribeStopsRemoteTraffic(t *testing.T) {
	a, b := pair(t)
	c := newCollector()
	sub, _ := b.Subscribe("u/k", c.handle)
	waitFor(t, "subscription", func() bool { return remoteSubscribed(a, "u/k") })
	sub.Close()
	waitFor(t, "undeclared", func() bool { return !remoteSubscribed(a, "u/k") })
	a.Publish(context.Background(), "u/k", []byte("x"), nil)
	if a.Stats().MessagesSent != 0 {
		t.Fatalf("sent %d messages after undeclare", a.Stats().MessagesSent)
	}
}

func TestLocalDeliveryAndValidation(t *testing.T) {
	s := openT(t, Config{})
	c := newCollector()
	s.Subscribe("loc/**", c.handle)
	if err := s.Publish(context.Background(), "loc/a/b", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	if got := c.waitN(t, 1); got[0].Key != "loc/a/b" {
		t.Fatalf("got %q", got[0].Key)
	}
	if err := s.Publish(context.Background(), "bad//key", nil, nil); err == nil {
		t.Error("publish on an invalid key succeeded")
	}
	if _, err := s.Subscribe("a/b*", func(Sample) {}); err == nil {
		t.Error("subscribe to an invalid expression succeeded")
	}
	for _, cfg := range []Config{
		{Listen: []string{"udp/127.0.0.1:1"}},
		{Connect: []string{"127.0.0.1:7447"}},
		{Mode: Client, Listen: []string{"tcp/127.0.0.1:0"}},
		{ZID: make([]byte, 17)},
		{ZID: []byte{1, 0}},
		{Lease: 10 * time.Millisecond},
		{Lease: 1500 * time.Microsecond},
	} {
		if s, err := Open(context.Background(), cfg); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
	s.Close()
	if err := s.Publish(context.Background(), "loc/x", nil, nil); err != ErrClosed {
		t.Errorf("publish after close: %v", err)
	}
}

// Fragments: the two lanes reassemble independently, a FRAME on a lane
// drops that lane's partial message, stale sequence numbers are dropped,
// and a FRAGMENT that carries an extension (decoded inside the batch) is
// reassembled too.
func TestFragmentReassembly(t *testing.T) {
	s := listener(t, Config{})
	c := newCollector()
	s.Subscribe("fr/*", c.handle)
	p := dialRaw(t, s)
	p.handshake(1, 10*time.Second)
	p.network(isFinal(0))

	msg := func(key, v string) []byte {
		return wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Suffix: key}, Put: &wire.Put{Payload: []byte(v)}})
	}
	frag := func(reliable, more bool, sn uint64, body []byte, ext bool) {
		b := wire.AppendFragmentHeader(nil, reliable, more, sn)
		if ext {
			b[0] |= wire.FlagZ
			b = append(b, 0x31, 0x05) // QoS (mandatory z64): priority 5
		}
		p.write(append(b, body...))
	}
	rel, be := msg("fr/rel", "reliable-lane"), msg("fr/be", "best-effort-lane")
	// interleave the lanes; best effort starts at the same initial SN
	frag(true, true, 100, rel[:5], false)
	frag(false, true, 100, be[:4], true)
	frag(true, false, 101, rel[5:], true)
	frag(false, false, 101, be[4:], false)
	got := c.waitN(t, 2)
	if got[0].Key != "fr/rel" || string(got[0].Payload) != "reliable-lane" || got[1].Key != "fr/be" || string(got[1].Payload) != "best-effort-lane" {
		t.Fatalf("got %q=%q, %q=%q", got[0].Key, got[0].Payload, got[1].Key, got[1].Payload)
	}

	before := s.Stats().Dropped
	// a partial message cut by a FRAME is dropped
	frag(true, true, 102, msg("fr/cut", "x")[:3], false)
	p.sn = 103
	p.frame(msg("fr/after", "y"))
	// a stale SN is dropped
	p.sn = 50
	p.frame(msg("fr/stale", "z"))
	p.sn = 104
	p.frame(msg("fr/last", "w"))
	got = c.waitN(t, 4)
	if got[2].Key != "fr/after" || got[3].Key != "fr/last" {
		t.Fatalf("got %q then %q", got[2].Key, got[3].Key)
	}
	if d := s.Stats().Dropped - before; d != 2 {
		t.Fatalf("dropped %d, want 2 (cut partial, stale frame)", d)
	}
}

func TestDisconnectStopsDialling(t *testing.T) {
	a := listener(t, Config{})
	b := openT(t, Config{ReconnectMin: 10 * time.Millisecond})
	ep := a.ListenEndpoints()[0]
	if err := b.Connect(ep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "link", func() bool { return len(a.Peers()) == 1 })
	if err := b.Disconnect(ep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "link closed", func() bool { return len(a.Peers()) == 0 && len(b.Peers()) == 0 })
	time.Sleep(100 * time.Millisecond) // ten backoff periods: no redial
	if n := a.Stats().LinksOpened; n != 1 {
		t.Fatalf("a saw %d links, want 1 (no redial after Disconnect)", n)
	}
	if err := b.Disconnect(ep); err == nil {
		t.Fatal("second Disconnect succeeded")
	}
}

// A peer may name a key by an expression id we declared (mapping flag
// clear): it resolves against our own alias table of that link.
func TestReceiverMappedAlias(t *testing.T) {
	s := listener(t, Config{})
	c := newCollector()
	s.Subscribe("mine/**", c.handle)
	p := dialRaw(t, s)
	p.handshake(1, 10*time.Second)
	p.network(isFinal(0))
	p.frame(wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 1, Key: wire.WireExpr{Suffix: "mine/**"}, HasKey: true}))
	waitFor(t, "remote sub", func() bool { return remoteSubscribed(s, "mine/published/key") })
	s.Publish(context.Background(), "mine/published/key", []byte("out"), nil)
	var id uint16
	p.network(func(m wire.NetworkMessage) bool {
		if d, ok := m.(*wire.Declare); ok && d.Kind == wire.DeclKeyExpr {
			id = uint16(d.ID)
		}
		_, ok := m.(*wire.Push)
		return ok
	})
	if id == 0 {
		t.Fatal("no alias declared")
	}
	n := len(c.waitN(t, 1)) // the local delivery of our own publication
	p.frame(wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Scope: id, Suffix: "/more"}, Put: &wire.Put{Payload: []byte("in")}}))
	got := c.waitN(t, n+1)
	if got[n].Key != "mine/published/key/more" || string(got[n].Payload) != "in" {
		t.Fatalf("got %q %q", got[n].Key, got[n].Payload)
	}
}

// A publication to a peer that stops reading blocks until ctx ends; the
// link is then closed and the loss counted.
func TestPublishToStalledPeerHonoursContext(t *testing.T) {
	s := listener(t, Config{})
	p := dialRaw(t, s)
	p.handshake(1, 10*time.Second)
	p.network(isFinal(0))
	p.frame(wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 1, Key: wire.WireExpr{Suffix: "stall"}, HasKey: true}))
	waitFor(t, "remote sub", func() bool { return remoteSubscribed(s, "stall") })
	// the raw peer never reads again: fill the socket buffers
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	big := make([]byte, 4<<20)
	var err error
	for i := 0; i < 64 && err == nil; i++ {
		err = s.Publish(ctx, "stall", big, nil)
	}
	if err == nil {
		t.Fatal("publishing 256 MiB to a peer that reads nothing succeeded")
	}
	waitFor(t, "link closed", func() bool { return len(s.Peers()) == 0 })
	if s.Stats().Dropped == 0 {
		t.Fatal("loss not counted")
	}
}

// A publisher blocked on a silent peer is released when the peer's lease
// expires.
func TestLeaseExpiryReleasesBlockedPublisher(t *testing.T) {
	s := listener(t, Config{})
	p := dialRaw(t, s)
	p.handshake(1, 400*time.Millisecond)
	p.network(isFinal(0))
	p.frame(wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 1, Key: wire.WireExpr{Suffix: "stall"}, HasKey: true}))
	waitFor(t, "remote sub", func() bool { return remoteSubscribed(s, "stall") })
	start := time.Now()
	big := make([]byte, 4<<20)
	var err error
	for i := 0; i < 64 && err == nil; i++ {
		err = s.Publish(context.Background(), "stall", big, nil)
	}
	if err == nil {
		t.Fatal("publishing 256 MiB to a silent peer succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publisher released after %v", d)
	}
	waitFor(t, "link closed", func() bool { return len(s.Peers()) == 0 })
}

// Three daemons in a full mesh, each dialling the two others: one link
// per pair, and every publication reaches every other session once.
func TestFullMeshOfThree(t *testing.T) {
	var ss []*Session
	for i := 0; i < 3; i++ {
		ss = append(ss, listener(t, Config{ReconnectMin: 10 * time.Millisecond}))
	}
	cs := make([]*collector, 3)
	for i, s := range ss {
		cs[i] = newCollector()
		s.Subscribe("mesh/**", cs[i].handle)
		for j, o := range ss {
			if i != j {
				s.Connect(o.ListenEndpoints()[0])
			}
		}
	}
	// Wait until the mesh has settled: each pair keeps the same TCP
	// connection on both sides, and its peer subscribed. (A publication
	// on a link that the other side is about to close as a duplicate is
	// lost, as with any link that goes away.)
	waitFor(t, "one link per pair, subscribed", func() bool {
		for i, s := range ss {
			for j, o := range ss {
				if i != j && !sameLink(s, o, "mesh/x") {
					return false
				}
			}
		}
		return true
	})
	for i, s := range ss {
		if err := s.Publish(context.Background(), fmt.Sprintf("mesh/%d", i), []byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cs {
		c.waitN(t, 3) // two remote, one local
		time.Sleep(50 * time.Millisecond)
		if got := c.samples(); len(got) != 3 {
			t.Fatalf("session %d got %d samples, want 3 (no duplicates)", i, len(got))
		}
		seen := map[string]bool{}
		for _, smp := range c.samples() {
			seen[smp.Key] = true
		}
		if len(seen) != 3 {
			t.Fatalf("session %d got keys %v", i, seen)
		}
	}
	for i, s := range ss {
		if n := len(s.Peers()); n != 2 {
			t.Errorf("session %d has %d links, want 2", i, n)
		}
	}
}

// sameLink reports whether s's link to o and o's link to s are the two
// ends of the connection that is kept when both dial (the one the
// smaller Zenoh id dialled), and o subscribed to key on it.
func sameLink(s, o *Session, key string) bool {
	s.mu.RLock()
	ls := s.links[string(o.zid)]
	s.mu.RUnlock()
	o.mu.RLock()
	lo := o.links[string(s.zid)]
	o.mu.RUnlock()
	return ls != nil && lo != nil && ls.wants(key) && ls.initiator == (bytes.Compare(s.zid, o.zid) < 0) &&
		ls.conn.LocalAddr().String() == lo.conn.RemoteAddr().String() &&
		ls.conn.RemoteAddr().String() == lo.conn.LocalAddr().String()
}

// A handler slower than the lease does not make the link expire.
func TestSlowHandlerIsNotLeaseExpiry(t *testing.T) {
	a := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}, Lease: 200 * time.Millisecond})
	b := openT(t, Config{Connect: a.ListenEndpoints(), Lease: 200 * time.Millisecond})
	c := newCollector()
	a.Subscribe("slow", func(s Sample) {
		time.Sleep(600 * time.Millisecond) // three leases
		c.handle(s)
	})
	waitFor(t, "subscription", func() bool { return remoteSubscribed(b, "slow") })
	b.Publish(context.Background(), "slow", []byte("1"), nil)
	b.Publish(context.Background(), "slow", []byte("2"), nil)
	c.waitN(t, 2)
	if n := a.Stats().LinksClosed + b.Stats().LinksClosed; n != 0 {
		t.Fatalf("%d links closed during a slow handler", n)
	}
}

// A fragmented message that does not decode (a sender abandoned its
// tail) is dropped and counted; the link and later messages are fine.
func TestBrokenReassemblyDropped(t *testing.T) {
	s := listener(t, Config{})
	c := newCollector()
	s.Subscribe("rb/*", c.handle)
	p := dialRaw(t, s)
	p.handshake(1, 10*time.Second)
	p.network(isFinal(0))
	m := wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Suffix: "rb/x"}, Put: &wire.Put{Payload: make([]byte, 100)}})
	b := wire.AppendFragmentHeader(nil, true, false, p.sn) // only the head, marked last
	p.sn++
	p.write(append(b, m[:40]...))
	p.frame(wire.AppendPush(nil, &wire.Push{Key: wire.WireExpr{Suffix: "rb/y"}, Put: &wire.Put{Payload: []byte("ok")}}))
	got := c.waitN(t, 1)
	if got[0].Key != "rb/y" || s.Stats().Dropped != 1 || len(s.Peers()) != 1 {
		t.Fatalf("got %q, dropped %d, %d peers", got[0].Key, s.Stats().Dropped, len(s.Peers()))
	}
}

// Towards a router we send everything until it has answered our interest
// in its subscribers, then only what they match.
func TestRouterWriterSideFiltering(t *testing.T) {
	s := listener(t, Config{})
	s.Subscribe("own/sub", func(Sample) {})
	p := dialRaw(t, s)
	p.handshakeAs(1, 10*time.Second, wire.Router)
	var in *wire.Interest
	msgs := p.network(func(m wire.NetworkMessage) bool {
		in, _ = m.(*wire.Interest)
		return in != nil
	})
	if d, ok := msgs[0].(*wire.Declare); !ok || d.Kind != wire.DeclSubscriber || d.Key.Suffix != "own/sub" {
		t.Fatalf("first message %#v, want our D_SUBSCRIBER", msgs[0])
	}
	if in.Mode != wire.InterestCurrentFuture || in.Options&wire.InterestSubscribers == 0 || in.Key != nil {
		t.Fatalf("interest %#v", in)
	}
	waitFor(t, "router link", func() bool { return len(s.Peers()) == 1 })
	if !s.Matching("any/key") {
		t.Fatal("before the router's D_FINAL everything should go to it")
	}
	p.frame(
		wire.AppendDeclare(nil, &wire.Declare{HasInterest: true, InterestID: in.ID, Kind: wire.DeclSubscriber, ID: 5, Key: wire.WireExpr{Suffix: "wanted/*"}, HasKey: true}),
		wire.AppendDeclare(nil, &wire.Declare{HasInterest: true, InterestID: in.ID, Kind: wire.DeclFinal}),
	)
	waitFor(t, "filtering", func() bool { return !s.Matching("any/key") })
	if !s.Matching("wanted/x") {
		t.Fatal("a key the router's subscriber wants is filtered out")
	}
	// a later subscriber (future declaration) opens its keys again
	p.frame(wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 6, Key: wire.WireExpr{Suffix: "any/**"}, HasKey: true}))
	waitFor(t, "future subscriber", func() bool { return s.Matching("any/key") })
}

// Connecting to our own endpoint (a peer list that names us) ends that
// dial loop instead of retrying forever.
func TestConnectToSelfStops(t *testing.T) {
	s := listener(t, Config{ReconnectMin: 10 * time.Millisecond})
	if err := s.Connect(s.ListenEndpoints()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dial loop ends", func() bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return len(s.dialing) == 0
	})
	if n := len(s.Peers()); n != 0 {
		t.Fatalf("%d links to self", n)
	}
}

// acceptRaw serves one INIT/OPEN as a responder with zid on ln, the way
// a Zenoh peer that our session dials would.
func acceptRaw(t *testing.T, ln net.Listener, zid []byte) *rawPeer {
	t.Helper()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &rawPeer{t: t, conn: conn, r: bufio.NewReader(conn), zid: zid}
	if syn, ok := p.read().(*wire.Init); !ok || syn.Ack {
		t.Fatal("want INIT syn")
	}
	p.write(wire.AppendInit(nil, &wire.Init{Ack: true, Version: wire.Version, WhatAmI: wire.Peer, ZID: zid,
		Resolution: wire.DefaultResolution, BatchSize: wire.DefaultBatchSize, Cookie: []byte("c")}))
	if o, ok := p.read().(*wire.Open); !ok || o.Ack || string(o.Cookie) != "c" {
		t.Fatal("want OPEN syn with our cookie")
	}
	p.sn = 500
	p.write(wire.AppendOpen(nil, &wire.Open{Ack: true, Lease: 10 * time.Second, InitialSN: p.sn}))
	return p
}

// When a peer that dialled us is also dialled by us and our link wins,
// the dialled link is closed on its own (CLOSE without the session flag)
// and our link keeps what the peer declared on the other one.
func TestReplacedLinkPassesDeclarationsOn(t *testing.T) {
	s := listener(t, Config{ZID: []byte{1, 1}})
	zid := []byte{0xfe, 0xee} // larger than ours: the link we dial wins
	in := dialRaw(t, s)
	in.handshake(0xfe, 10*time.Second)
	in.network(isFinal(0))
	in.frame(wire.AppendDeclare(nil, &wire.Declare{Kind: wire.DeclSubscriber, ID: 3, Key: wire.WireExpr{Suffix: "inh/**"}, HasKey: true}))
	waitFor(t, "subscriber", func() bool { return s.Matching("inh/x") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Connect("tcp/" + ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	out := acceptRaw(t, ln, zid)
	var closed *wire.Close
	for closed == nil {
		b := in.readBatch()
		if b == nil {
			t.Fatal("the replaced link ended without CLOSE")
		}
		wire.DecodeBatch(b, func(m wire.TransportMessage) error {
			closed, _ = m.(*wire.Close)
			return nil
		})
	}
	if closed.Session || closed.Reason != wire.CloseMaxLinks {
		t.Fatalf("CLOSE %+v, want link-only max-links", closed)
	}
	if !s.Matching("inh/x") {
		t.Fatal("the kept link lost the peer's subscriber")
	}
	s.Publish(context.Background(), "inh/x", []byte("v"), nil)
	out.network(func(m wire.NetworkMessage) bool {
		p, ok := m.(*wire.Push)
		return ok && string(p.Put.Payload) == "v"
	})
}

// Connections that never finish the handshake are bounded: beyond the
// limit they are refused at once, the rest time out, and a real peer
// gets through afterwards.
func TestPendingHandshakesBounded(t *testing.T) {
	s := listener(t, Config{HandshakeTimeout: 1500 * time.Millisecond})
	addr := s.ListenEndpoints()[0][len("tcp/"):]
	var conns []net.Conn
	for i := 0; i < maxPendingHandshakes+20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Well before the handshake timeout, only the refused ones close.
	closed := make([]bool, len(conns))
	refused := 0
	deadline := time.Now().Add(time.Second)
	for refused < 20 && time.Now().Before(deadline) {
		for i, c := range conns {
			if closed[i] {
				continue
			}
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				closed[i] = true // closed by the session, not by our deadline
				refused++
			}
		}
	}
	if refused != 20 {
		t.Fatalf("%d connections refused before the handshake timeout, want 20", refused)
	}
	b := openT(t, Config{Connect: s.ListenEndpoints(), ReconnectMin: 50 * time.Millisecond})
	waitFor(t, "a real peer gets through", func() bool { return len(b.Peers()) == 1 })
}
