package node

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// directStarted runs a node against a fake daemon that offers DIRECT.
func directStarted(t *testing.T) (*Node, *shm.Conn) {
	t.Helper()
	return directStartedWith(t, func(*Config) {})
}

func directStartedWith(t *testing.T, tweak func(*Config)) (*Node, *shm.Conn) {
	t.Helper()
	d, cfg := newFakeDaemon(t)
	cfg.Inputs = []InputConfig{{ID: "in", Source: "src/out", QueueSize: 100, QueuePolicy: "backpressure"}}
	tweak(&cfg)
	raw, _ := json.Marshal(cfg)
	t.Setenv(ConfigEnv, string(raw))
	res := make(chan any, 1)
	go func() {
		n, err := Init()
		if err != nil {
			res <- err
			return
		}
		res <- n
	}()
	var c *shm.Conn
	select {
	case c = <-d.conn:
	case <-time.After(5 * time.Second):
		t.Fatal("node never connected")
	}
	t.Cleanup(func() { c.Close() })
	m, err := c.ReadMsg()
	if err != nil || m.Type != shm.MsgRegister || m.Flags&shm.FlagDirect == 0 {
		t.Fatalf("registration %+v, %v: want DIRECT announced", m, err)
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgReady, Count: 8, Flags: shm.FlagDirect}, nil)
	n, ok := (<-res).(*Node)
	if !ok {
		t.Fatal("init failed")
	}
	t.Cleanup(func() { n.Close() })
	return n, c
}

// giveEdgeIn hands the node the receiving end of a new edge for input
// "in" and returns the sending end.
func giveEdgeIn(t *testing.T, c *shm.Conn, size uint32, policy uint8) *shm.Conn {
	t.Helper()
	send, recv, err := shm.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgEdgeIn, Edge: 1, ID: "in", Source: "src/out", QueueSize: size, Policy: policy}, recv)
	recv.Close()
	sc, err := shm.FileConn(send)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

func nextEvent(t *testing.T, n *Node) *Event {
	t.Helper()
	select {
	case ev, ok := <-n.Events():
		if !ok {
			t.Fatal("event stream closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return nil
	}
}

// Drain rule: what the sender wrote on the edge comes before an
// INPUT_CLOSED the daemon sends right after; direct inputs are not
// acknowledged to the daemon, and STATS reports them.
func TestDirectInputsComeBeforeInputClosed(t *testing.T) {
	n, c := directStarted(t)
	sc := giveEdgeIn(t, c, 100, shm.PolicyBackpressure)
	for i := range 50 {
		if err := sc.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{byte(i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgInputClosed, ID: "in"}, nil)
	for i := range 50 {
		if ev := nextEvent(t, n); ev.Type != Input || ev.ID != "in" || len(ev.Data) != 1 || ev.Data[0] != byte(i) {
			t.Fatalf("event %d = %+v, want input %d", i, ev, i)
		}
	}
	if ev := nextEvent(t, n); ev.Type != InputClosed {
		t.Fatalf("after the inputs: %+v, want INPUT_CLOSED", ev)
	}
	got := readUntil(t, c, func(ms []*shm.Msg) bool {
		for _, m := range ms {
			if m.Type == shm.MsgStats && len(m.InStats) == 1 && m.InStats[0].In == 50 {
				return true
			}
		}
		return false
	})
	if a := acked(got); a != 0 {
		t.Fatalf("direct inputs acknowledged to the daemon: ACK %d", a)
	}
}

// drop_oldest on an edge: the SDK keeps the newest queue_size messages
// (plus one already on its way to the application, if any) and counts the
// rest as drops.
func TestDirectDropOldestInSDK(t *testing.T) {
	n, c := directStarted(t)
	sc := giveEdgeIn(t, c, 2, shm.PolicyDropOldest)
	for i := range 10 {
		sc.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{byte(i)}}, nil)
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgInputClosed, ID: "in"}, nil)
	var st shm.InStat
	readUntil(t, c, func(ms []*shm.Msg) bool {
		for _, m := range ms {
			if m.Type == shm.MsgStats && len(m.InStats) == 1 && m.InStats[0].Dropped+m.InStats[0].In == 10 {
				st = m.InStats[0]
				return true
			}
		}
		return false
	})
	var seqs []byte
	for {
		ev := nextEvent(t, n)
		if ev.Type != Input {
			if ev.Type != InputClosed {
				t.Fatalf("event %+v", ev)
			}
			break
		}
		seqs = append(seqs, ev.Data[0])
	}
	// The message on its way to the application when the others arrived
	// (if any) is not in the queue; the queue keeps the newest two.
	if len(seqs) != int(st.In) || st.Dropped < 7 || len(seqs) < 2 || !slices.Equal(seqs[len(seqs)-2:], []byte{8, 9}) {
		t.Fatalf("delivered %v with counters %+v: want at most one early message, then 8 and 9, the rest dropped", seqs, st)
	}
}

// The sending side: CUTOVER answers EDGE_OUT; the output goes over the
// edge (and to the daemon until ROUTES says it is not needed); a shared
// region comes back when the edge's receiver releases it; a dead edge
// sends the next messages through the daemon.
func TestDirectSenderEdge(t *testing.T) {
	n, c := directStarted(t)
	rc := giveEdgeOut(t, c, 4)

	n.SendOutput("out", []byte("a"), Metadata{})
	if m, err := rc.ReadMsg(); err != nil || m.Type != shm.MsgInput || m.ID != "x" || string(m.Data) != "a" {
		t.Fatalf("edge got %+v, %v", m, err)
	}
	readUntil(t, c, func(ms []*shm.Msg) bool { return len(ms) > 0 && ms[len(ms)-1].Type == shm.MsgOutput })

	c.WriteMsg(&shm.Msg{Type: shm.MsgRoutes, ID: "out", NeedsDaemon: false}, nil)
	c.WriteMsg(&shm.Msg{Type: shm.MsgInputRecovered, ID: "in"}, nil) // orders the test after ROUTES
	if ev := nextEvent(t, n); ev.Type != InputRecovered {
		t.Fatalf("event %+v", ev)
	}
	buf, err := n.AllocOutput(8192)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf.Data, "shared")
	if err := n.SendBuffer("out", buf, Metadata{}); err != nil {
		t.Fatal(err)
	}
	m, err := rc.ReadMsg()
	if err != nil || m.Type != shm.MsgRegion {
		t.Fatalf("edge got %+v, %v; want REGION", m, err)
	}
	f, err := rc.TakeFile()
	if err != nil {
		t.Fatal(err)
	}
	data, err := shm.MapRegion(f, m.Size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unmap(data)
	in, err := rc.ReadMsg()
	if err != nil || in.Type != shm.MsgInput || in.Shm == nil || string(data[:6]) != "shared" {
		t.Fatalf("edge got %+v, %v", in, err)
	}
	if _, free, _ := n.PoolStats(); free != 0 {
		t.Fatal("region free before the receiver released it")
	}
	rc.WriteMsg(&shm.Msg{Type: shm.MsgRelease, Tokens: []uint64{in.Token}}, nil)
	waitFor(t, func() bool { _, free, _ := n.PoolStats(); return free == 1 })

	rc.Close() // the receiver dies
	var sent bool
	got := readUntil(t, c, func(ms []*shm.Msg) bool {
		if !sent {
			sent = true
			time.Sleep(10 * time.Millisecond) // let the node notice EOF, or fail its write
			n.SendOutput("out", []byte("c"), Metadata{})
		}
		return slices.ContainsFunc(ms, func(m *shm.Msg) bool { return m.Type == shm.MsgOutput && string(m.Data) == "c" })
	})
	if slices.ContainsFunc(got, func(m *shm.Msg) bool { return m.Type == shm.MsgOutput && m.Shm != nil }) {
		t.Fatal("the shared message went to the daemon although ROUTES said it is not needed")
	}
	n.Close()
	got = readUntil(t, c, func(ms []*shm.Msg) bool {
		return slices.ContainsFunc(ms, func(m *shm.Msg) bool { return m.Type == shm.MsgStats })
	})
	for _, m := range got {
		if m.Type == shm.MsgStats && (len(m.OutStats) != 1 || m.OutStats[0].Out != 1) {
			t.Fatalf("STATS %+v, want 1 message out without the daemon", m)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

// edgePeer is a raw receiving end of an edge: frames from the socket and
// from the ring the sender announces with its first frames, in stream
// order (a socket frame the sender wrote before a ring frame is read
// first).
type edgePeer struct {
	*shm.Conn
	t        *testing.T
	ring     *shm.Ring
	onSocket *shm.Msg // a marked INPUT read before its marker
}

func newEdgePeer(t *testing.T, rc *shm.Conn) *edgePeer {
	t.Helper()
	p := &edgePeer{Conn: rc, t: t}
	var mem *os.File
	for range 2 {
		m, err := rc.ReadMsg()
		if err != nil || m.Type != shm.MsgRing {
			t.Fatalf("edge starts with %+v, %v; want RING", m, err)
		}
		f, err := rc.TakeFile()
		if err != nil {
			t.Fatal(err)
		}
		if m.Count == 0 {
			mem = f
			continue
		}
		if p.ring, err = shm.OpenRing(mem, f, m.Size); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { p.ring.Close() })
	return p
}

// ReadMsg returns the next frame of the stream (fails the test after 5 s).
// An INPUT on the socket waits for its marker in the ring.
func (p *edgePeer) ReadMsg() (*shm.Msg, error) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if p.onSocket == nil {
			b, err := p.ReadFrameNow()
			if err != nil && err != shm.ErrWouldBlock {
				return nil, err
			}
			if err == nil {
				m, err := shm.Decode(b)
				if err != nil || m.Type != shm.MsgInput {
					return m, err
				}
				p.onSocket = m
			}
		}
		b, err := p.ring.Next()
		if err != nil || b == nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		m, err := shm.Decode(b)
		if err == nil && m.Type == shm.MsgRing && m.Count == shm.RingOnSocket {
			for p.onSocket == nil {
				if p.onSocket, err = p.Conn.ReadMsg(); err != nil {
					return nil, err
				}
			}
			m, p.onSocket = p.onSocket, nil
		}
		return m, err
	}
	p.t.Fatal("no frame on the edge within 5 s")
	return nil, nil
}

// giveEdgeOut hands the node the sending end of edge id for output "out"
// and returns the receiving end once the node cut that edge over.
func giveEdgeOut(t *testing.T, c *shm.Conn, id uint32) *edgePeer {
	t.Helper()
	send, recv, err := shm.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgEdgeOut, Edge: id, ID: "out", Node: "r", Input: "x"}, send)
	send.Close()
	rc, err := shm.FileConn(recv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	readUntil(t, c, func(ms []*shm.Msg) bool {
		return slices.ContainsFunc(ms, func(m *shm.Msg) bool { return m.Type == shm.MsgCutover && m.Edge == id })
	})
	return newEdgePeer(t, rc)
}

// A region retired from the pool (to make room under its cap) is closed
// for the edge receivers that mapped it; a dead edge releases its tokens.
func TestDirectRetiredRegionIsClosedOnEdge(t *testing.T) {
	n, c := directStartedWith(t, func(cfg *Config) { cfg.ShmPoolBytes = 3 * 4096 })
	rc := giveEdgeOut(t, c, 1)
	c.WriteMsg(&shm.Msg{Type: shm.MsgRoutes, ID: "out", NeedsDaemon: false}, nil)
	c.WriteMsg(&shm.Msg{Type: shm.MsgInputRecovered, ID: "in"}, nil)
	nextEvent(t, n) // ROUTES applied
	var seen []*shm.Msg
	send := func(size int) *shm.Msg {
		buf, err := n.AllocOutput(size)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.SendBuffer("out", buf, Metadata{}); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := rc.ReadMsg()
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, m)
			if m.Type == shm.MsgRegion {
				f, _ := rc.TakeFile()
				f.Close()
			}
			if m.Type == shm.MsgInput {
				return m
			}
		}
	}
	first := send(8192)
	rc.WriteMsg(&shm.Msg{Type: shm.MsgRelease, Tokens: []uint64{first.Token}}, nil)
	waitFor(t, func() bool { _, free, _ := n.PoolStats(); return free == 1 })
	second := send(12288) // the free 8 KiB region is too small and over the cap: retired
	if second.Shm.Region == first.Shm.Region {
		t.Fatal("a too small region was reused")
	}
	if !slices.ContainsFunc(seen, func(m *shm.Msg) bool {
		return m.Type == shm.MsgRegionClosed && m.Region == first.Shm.Region
	}) {
		t.Fatalf("edge frames %v: want REGION_CLOSED %d before the second message", types(seen), first.Shm.Region)
	}
	rc.Close() // the receiver dies holding the second message
	waitFor(t, func() bool { regions, free, _ := n.PoolStats(); return regions == 1 && free == 1 })
}

// STOP goes ahead of direct inputs queued in the SDK (as the daemon puts
// it ahead of its own queue); their shared memory is released.
func TestDirectStopGoesAheadOfQueuedInputs(t *testing.T) {
	n, c := directStarted(t)
	sc := giveEdgeIn(t, c, 100, shm.PolicyBackpressure)
	for i := range 10 {
		sc.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{byte(i)}}, nil)
	}
	readUntil(t, c, func(ms []*shm.Msg) bool {
		return slices.ContainsFunc(ms, func(m *shm.Msg) bool {
			return m.Type == shm.MsgStats && len(m.InStats) == 1 && m.InStats[0].In == 10
		})
	})
	c.WriteMsg(&shm.Msg{Type: shm.MsgStop, ID: "MANUAL"}, nil)
	// A shared daemon input after STOP is released at once: once its
	// RELEASE comes back, STOP has been handled.
	reg, err := shm.NewRegion("test", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: 1, Size: 4096}, reg.File())
	c.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Shm: &shm.ShmRef{Region: 1, Len: 1}, Token: 77}, nil)
	readUntil(t, c, func(ms []*shm.Msg) bool { return slices.Contains(released(ms), 77) })
	inputs := 0
	for {
		ev := nextEvent(t, n)
		if ev.Type == Stop {
			break
		}
		inputs++
	}
	if inputs > 1 { // at most the one already on its way to the application
		t.Fatalf("%d inputs before STOP, want it ahead of the queued ones", inputs)
	}
	if _, ok := <-n.Events(); ok {
		t.Fatal("event stream open after STOP")
	}
}

// The receiving SDK reads a ring the sender announces: ring frames and
// socket frames in stream order, a marker in the ring for a frame that
// went on the socket, the inputs before INPUT_CLOSED (drain), and a
// sleeping reader woken by the ring's eventfd.
func TestDirectRingReceiver(t *testing.T) {
	n, c := directStarted(t)
	sc := giveEdgeIn(t, c, 100, shm.PolicyBackpressure)
	ring, err := shm.NewRing(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	mem, ev := ring.Files()
	sc.WriteMsg(&shm.Msg{Type: shm.MsgRing, Count: 0, Size: ring.Size()}, mem)
	sc.WriteMsg(&shm.Msg{Type: shm.MsgRing, Count: 1, Size: ring.Size()}, ev)
	put := func(m *shm.Msg) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			ok, err := ring.Put(shm.AppendFrame(nil, m))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("ring stayed full")
			}
		}
	}
	// An INPUT the sender wrote on the socket is taken at its marker, not
	// before (the reader may see it on the socket first).
	put(&shm.Msg{Type: shm.MsgRing, Count: shm.RingOnSocket})
	sc.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{0}}, nil)
	put(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{1}})
	if ev := nextEvent(t, n); ev.Type != Input || ev.Data[0] != 0 {
		t.Fatalf("first event %+v", ev)
	}
	if ev := nextEvent(t, n); ev.Type != Input || ev.Data[0] != 1 {
		t.Fatalf("second event %+v", ev)
	}
	time.Sleep(20 * time.Millisecond) // the reader sleeps now: the eventfd must wake it
	put(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{2}})
	if ev := nextEvent(t, n); ev.Type != Input || ev.Data[0] != 2 {
		t.Fatalf("event after sleeping %+v", ev)
	}
	big := bytes.Repeat([]byte{3}, 100<<10) // larger than half the ring: on the socket
	put(&shm.Msg{Type: shm.MsgRing, Count: shm.RingOnSocket})
	go sc.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: big}, nil)
	if ev := nextEvent(t, n); ev.Type != Input || !bytes.Equal(ev.Data, big) {
		t.Fatalf("marked socket frame: %v %d bytes", ev.Type, len(ev.Data))
	}
	// The socket frame is there before the ring frames ahead of its marker.
	sc.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{31}}, nil)
	time.Sleep(5 * time.Millisecond)
	put(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{30}})
	put(&shm.Msg{Type: shm.MsgRing, Count: shm.RingOnSocket})
	for _, want := range []byte{30, 31} {
		if ev := nextEvent(t, n); ev.Type != Input || ev.Data[0] != want {
			t.Fatalf("event %+v, want %d", ev, want)
		}
	}
	for i := 4; i < 400; i++ {
		put(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte{byte(i)}})
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgInputClosed, ID: "in"}, nil)
	for i := 4; i < 400; i++ {
		if ev := nextEvent(t, n); ev.Type != Input || ev.Data[0] != byte(i) {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	if ev := nextEvent(t, n); ev.Type != InputClosed {
		t.Fatalf("after the inputs: %+v, want INPUT_CLOSED", ev)
	}
}

// A sending SDK puts inputs in the ring, and a frame too large for it on
// the socket behind a marker, in order.
func TestDirectRingSenderLargeFrame(t *testing.T) {
	n, c := directStarted(t)
	rc := giveEdgeOut(t, c, 1)
	big := strings.Repeat("p", 200<<10)
	sent := make(chan error, 1)
	go func() { // the large write blocks until the receiver reads it
		for i, meta := range []Metadata{{}, {Parameters: map[string]any{"big": big}}, {}} {
			if err := n.SendOutput("out", []byte{byte(i)}, meta); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range 3 {
		m, err := rc.ReadMsg()
		if err != nil || m.Type != shm.MsgInput || m.Data[0] != byte(i) {
			t.Fatalf("message %d: %+v, %v", i, m, err)
		}
		if i == 1 && len(m.Meta.Params) < 200<<10 {
			t.Fatalf("large parameters arrived with %d bytes", len(m.Meta.Params))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}
