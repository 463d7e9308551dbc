package zenoh

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport"
)

// countingConn counts the writes to a link's connection and can hold
// them: while held, a write blocks (with its bytes not yet sent) until
// release.
type countingConn struct {
	net.Conn
	writes  atomic.Int64
	held    atomic.Bool
	entered chan struct{} // one value per write that found the gate held
	gate    chan struct{} // closed by release
	mu      sync.Mutex
	sent    bytes.Buffer // everything written
}

func newCountingConn(c net.Conn) *countingConn {
	return &countingConn{Conn: c, entered: make(chan struct{}, 64), gate: make(chan struct{})}
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	if c.held.Load() {
		c.entered <- struct{}{}
		<-c.gate
	}
	c.mu.Lock()
	c.sent.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// hold makes the following writes block until release.
func (c *countingConn) hold() {
	c.gate = make(chan struct{})
	c.held.Store(true)
}

func (c *countingConn) release() {
	c.held.Store(false)
	close(c.gate)
}

func (c *countingConn) contains(p []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Contains(c.sent.Bytes(), p)
}

// wrappedPair links a publisher whose link connection is wrapped in a
// countingConn to a subscriber session.
func wrappedPair(t *testing.T) (pub, sub *Session, conn *countingConn) {
	t.Helper()
	sub = openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	pub = openT(t, Config{})
	wrapped := make(chan *countingConn, 1)
	pub.wrapConn = func(c net.Conn) net.Conn {
		cc := newCountingConn(c)
		wrapped <- cc
		return cc
	}
	if err := pub.Connect(sub.ListenEndpoints()[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "link", func() bool { return len(pub.Peers()) == 1 && len(sub.Peers()) == 1 })
	return pub, sub, <-wrapped
}

// onlyLink returns the single link of s.
func onlyLink(t *testing.T, s *Session) *link {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.links) != 1 {
		t.Fatalf("%d links, want 1", len(s.links))
	}
	for _, l := range s.links {
		return l
	}
	return nil
}

// queued reports the units waiting behind the write in progress, and
// how often marker occurs in the open FRAME (-1: none open).
func (l *link) queued(marker string) (units, inOpen int) {
	l.txMu.Lock()
	defer l.txMu.Unlock()
	if l.open == nil {
		return len(l.queue), -1
	}
	return len(l.queue), bytes.Count(l.open.buf, []byte(marker))
}

// seqPayload is publisher g's message i.
func seqPayload(g, i, size int) []byte {
	p := make([]byte, max(size, 8))
	binary.BigEndian.PutUint32(p, uint32(g))
	binary.BigEndian.PutUint32(p[4:], uint32(i))
	return p
}

// checkPerPublisherOrder checks that every publisher's messages arrived
// once each, in order.
// publishConcurrently runs publishers goroutines on s, each publishing
// each messages whose key and payload msg gives for (publisher, index),
// and fails the test on the first error.
func publishConcurrently(t *testing.T, s *Session, publishers, each int, msg func(g, i int) (string, []byte)) {
	t.Helper()
	errs := make(chan error, publishers)
	for g := range publishers {
		go func() {
			for i := range each {
				key, payload := msg(g, i)
				if err := s.Publish(context.Background(), key, payload, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func checkPerPublisherOrder(t *testing.T, got []transport.Sample, publishers, each int) {
	t.Helper()
	next := make([]int, publishers)
	for k, s := range got {
		g, i := int(binary.BigEndian.Uint32(s.Payload)), int(binary.BigEndian.Uint32(s.Payload[4:]))
		if g >= publishers || i != next[g] {
			t.Fatalf("sample %d: publisher %d message %d, want message %d", k, g, i, next[min(g, publishers-1)])
		}
		next[g]++
	}
	for g, n := range next {
		if n != each {
			t.Errorf("publisher %d: %d messages arrived, want %d", g, n, each)
		}
	}
}

// TestBatchingConcurrentPublishers: many publishers on one link need
// fewer writes than messages, and every message arrives once, in each
// publisher's order.
func TestBatchingConcurrentPublishers(t *testing.T) {
	pub, sub, conn := wrappedPair(t)
	c := newCollector()
	if _, err := sub.Subscribe("batch/**", c.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "batch/a") })
	const publishers, each = 16, 300
	w0, st0 := conn.writes.Load(), pub.Stats()
	publishConcurrently(t, pub, publishers, each, func(g, i int) (string, []byte) {
		// several keys, declared while batching
		return fmt.Sprintf("batch/publisher-%d", g%4), seqPayload(g, i, 64+g)
	})
	got := c.waitN(t, publishers*each)
	checkPerPublisherOrder(t, got, publishers, each)
	writes := conn.writes.Load() - w0
	st := pub.Stats()
	if writes >= publishers*each {
		t.Errorf("%d writes for %d messages: no batching", writes, publishers*each)
	}
	if d := st.Writes - st0.Writes; d != uint64(writes) {
		t.Errorf("Stats.Writes grew by %d, the connection saw %d writes", d, writes)
	}
	if d := st.MessagesSent - st0.MessagesSent; d != publishers*each {
		t.Errorf("MessagesSent grew by %d, want %d", d, publishers*each)
	}
	if st.Dropped != 0 || sub.Stats().Dropped != 0 {
		t.Errorf("dropped: publisher %d, subscriber %d", st.Dropped, sub.Stats().Dropped)
	}
	t.Logf("%d messages in %d writes", publishers*each, writes)
}

// TestIsolatedPublishWrittenAtOnce: a publication on an idle link is
// written before Publish returns, in a write of its own.
func TestIsolatedPublishWrittenAtOnce(t *testing.T) {
	pub, sub, conn := wrappedPair(t)
	if _, err := sub.Subscribe("alone", func(transport.Sample) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "alone") })
	for i := range 20 {
		p := []byte(fmt.Sprintf("isolated message %03d", i))
		w0 := conn.writes.Load()
		if err := pub.Publish(context.Background(), "alone", p, nil); err != nil {
			t.Fatal(err)
		}
		if w := conn.writes.Load() - w0; w != 1 || !conn.contains(p) {
			t.Fatalf("message %d: %d writes during Publish, payload written: %v; want it written at once", i, w, conn.contains(p))
		}
	}
}

// TestBatchWhileWriteHeld: while a write is held, messages from other
// publishers gather in one FRAME, written in one write after it; a large
// (fragmented) message keeps its place between small ones.
func TestBatchWhileWriteHeld(t *testing.T) {
	pub, sub, conn := wrappedPair(t)
	c := newCollector()
	if _, err := sub.Subscribe("held/**", c.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "held/x") })
	l := onlyLink(t, pub)
	conn.hold()
	w0 := conn.writes.Load()
	var wg sync.WaitGroup
	publish := func(key string, p []byte) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pub.Publish(context.Background(), key, p, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	// the first write blocks in the connection
	publish("held/x", []byte("first"))
	<-conn.entered
	// then ten small messages, one large, five small: in that order
	var want []string
	for i := range 10 {
		p := fmt.Sprintf("small-a-%d", i)
		want = append(want, p)
		publish("held/x", []byte(p))
		waitFor(t, "message joined", func() bool { u, n := l.queued("small-a-"); return u == 1 && n == i+1 })
	}
	large := bytes.Repeat([]byte("L"), 200_000)
	want = append(want, string(large))
	publish("held/x", large)
	waitFor(t, "large message queued", func() bool { u, n := l.queued(""); return u == 2 && n == -1 })
	for i := range 5 {
		p := fmt.Sprintf("small-b-%d", i)
		want = append(want, p)
		publish("held/x", []byte(p))
		waitFor(t, "message joined", func() bool { u, n := l.queued("small-b-"); return u == 3 && n == i+1 })
	}
	conn.release()
	wg.Wait()
	got := c.waitN(t, 1+len(want))
	if string(got[0].Payload) != "first" {
		t.Fatalf("first sample %q", got[0].Payload)
	}
	for i, w := range want {
		if g := got[1+i].Payload; string(g) != w {
			t.Fatalf("sample %d: %.20q (%d bytes), want %.20q (%d bytes)", 1+i, g, len(g), w, len(w))
		}
	}
	// held write + a FRAME of 10 + the fragments of one message (a
	// vectored write: one Write per buffer through this wrapper) + a
	// FRAME of 5
	frags := conn.writes.Load() - w0 - 3
	if frags < 4 || frags > 10 {
		t.Errorf("%d writes besides the two FRAMEs and the held one, want the fragments of 200 kB (4-10 buffers)", frags)
	}
	if st := pub.Stats(); st.Dropped != 0 || st.MessagesSent < 17 {
		t.Errorf("publisher stats %+v", st)
	}
}

// TestBatchMemberCancelFailsLink: a publisher whose context ends while
// its message waits in a batch gets an error, the link is closed (as
// when a write is cut short), and the loss is counted for every message
// of the batch.
func TestBatchMemberCancelFailsLink(t *testing.T) {
	pub, sub, conn := wrappedPair(t)
	if _, err := sub.Subscribe("cancel", func(transport.Sample) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "cancel") })
	l := onlyLink(t, pub)
	conn.hold()
	first := make(chan error, 1)
	go func() { first <- pub.Publish(context.Background(), "cancel", []byte("held"), nil) }()
	<-conn.entered
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 3)
	go func() { results <- pub.Publish(ctx, "cancel", []byte("cancelled"), nil) }()
	waitFor(t, "batch queued", func() bool { u, n := l.queued("cancelled"); return u == 1 && n == 1 })
	for range 2 {
		go func() { results <- pub.Publish(context.Background(), "cancel", []byte("member"), nil) }()
	}
	waitFor(t, "members joined", func() bool { _, n := l.queued("member"); return n == 2 })
	l.txMu.Lock()
	u := l.open
	l.txMu.Unlock()
	cancel()
	waitFor(t, "abort", func() bool {
		l.abortMu.Lock()
		defer l.abortMu.Unlock()
		return u.aborted
	})
	conn.release()
	<-first
	for range 3 {
		if err := <-results; err == nil {
			t.Error("a message of the aborted batch reported success")
		}
	}
	waitFor(t, "link closed", func() bool { return len(pub.Peers()) == 0 })
	if st := pub.Stats(); st.Dropped < 3 {
		t.Errorf("Dropped = %d, want at least the 3 messages of the aborted batch", st.Dropped)
	}
}

// TestCloseWithQueuedBatch: closing the session while messages are queued
// behind a held write ends every Publish with an error, and nothing is
// left running.
func TestCloseWithQueuedBatch(t *testing.T) {
	pub, sub, conn := wrappedPair(t)
	if _, err := sub.Subscribe("closing", func(transport.Sample) {}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "closing") })
	l := onlyLink(t, pub)
	conn.hold()
	results := make(chan error, 5)
	go func() { results <- pub.Publish(context.Background(), "closing", []byte("held"), nil) }()
	<-conn.entered
	for range 4 {
		go func() { results <- pub.Publish(context.Background(), "closing", []byte("queued"), nil) }()
	}
	waitFor(t, "batch queued", func() bool { _, n := l.queued("queued"); return n == 4 })
	closed := make(chan struct{})
	go func() {
		pub.Close()
		close(closed)
	}()
	waitFor(t, "closing", func() bool { return l.closing.Load() })
	conn.release()
	<-closed
	failed := 0
	for range 5 {
		if err := <-results; err != nil {
			failed++
		}
	}
	if failed < 4 {
		t.Errorf("%d of the 4 queued publications failed, want all", failed)
	}
	if err := pub.Publish(context.Background(), "closing", []byte("late"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after close: %v, want ErrClosed", err)
	}
}

// TestDrainBudgetHandsTurnOn: after its own write, a writer goes on with
// the queued units only up to drainBytes; the creator of the next one
// then writes it. Large messages queued behind a held write all arrive,
// in order.
func TestDrainBudgetHandsTurnOn(t *testing.T) {
	pub, sub, conn := wrappedPair(t)
	c := newCollector()
	if _, err := sub.Subscribe("drain", c.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "drain") })
	l := onlyLink(t, pub)
	conn.hold()
	errs := make(chan error, 8)
	go func() { errs <- pub.Publish(context.Background(), "drain", []byte("held"), nil) }()
	<-conn.entered
	const n = 5
	size := drainBytes * 2 / 3 // two never fit one budget
	for i := range n {
		go func() {
			errs <- pub.Publish(context.Background(), "drain", bytes.Repeat([]byte{byte('a' + i)}, size), nil)
		}()
		waitFor(t, "large message queued", func() bool { u, _ := l.queued(""); return u == i+1 })
	}
	conn.release()
	for range n + 1 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a publisher still waits: the turn was not handed on")
		}
	}
	got := c.waitN(t, n+1)
	for i, s := range got[1:] {
		if len(s.Payload) != size || s.Payload[0] != byte('a'+i) || s.Payload[size-1] != byte('a'+i) {
			t.Fatalf("sample %d: %d bytes of %q, want %d of %q", 1+i, len(s.Payload), s.Payload[:1], size, string(rune('a'+i)))
		}
	}
	if u, _ := l.queued(""); u != 0 || func() bool { l.txMu.Lock(); defer l.txMu.Unlock(); return l.writing }() {
		t.Errorf("link not idle after the queue drained: %d queued", u)
	}
}

// TestBatchingMixedSizesKeepOrder: publishers that mix small messages
// and fragmented large ones on one link see all of them arrive once, in
// their own order.
func TestBatchingMixedSizesKeepOrder(t *testing.T) {
	pub, sub, _ := wrappedPair(t)
	c := newCollector()
	if _, err := sub.Subscribe("mixed/**", c.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscription", func() bool { return remoteSubscribed(pub, "mixed/a") })
	const publishers, each = 6, 60
	publishConcurrently(t, pub, publishers, each, func(g, i int) (string, []byte) {
		size := 32
		if i%7 == g%7 {
			size = 100_000 + g // fragmented
		}
		return fmt.Sprintf("mixed/key-%d", g%2), seqPayload(g, i, size)
	})
	got := c.waitN(t, publishers*each)
	checkPerPublisherOrder(t, got, publishers, each)
	for _, s := range got {
		g, i := int(binary.BigEndian.Uint32(s.Payload)), int(binary.BigEndian.Uint32(s.Payload[4:]))
		if want := seqPayload(g, i, len(s.Payload)); !bytes.Equal(s.Payload, want) {
			t.Fatalf("publisher %d message %d: payload differs", g, i)
		}
	}
	if st := pub.Stats(); st.Dropped != 0 || sub.Stats().Dropped != 0 {
		t.Errorf("dropped: publisher %d, subscriber %d", st.Dropped, sub.Stats().Dropped)
	}
}
