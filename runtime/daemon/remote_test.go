package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/dataplane"
	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh"
)

// memTransport is an in-process transport: exact keys, and '*' matching
// one chunk.
type memTransport struct {
	mu   sync.Mutex
	subs map[int]memSub
	next int
}

type memSub struct {
	expr string
	h    transport.Handler
}

func newMemTransport() *memTransport { return &memTransport{subs: map[int]memSub{}} }

func matchKey(expr, key string) bool {
	e, k := strings.Split(expr, "/"), strings.Split(key, "/")
	if len(e) != len(k) {
		return false
	}
	for i := range e {
		if e[i] != "*" && e[i] != k[i] {
			return false
		}
	}
	return true
}

func (m *memTransport) Publish(_ context.Context, key string, payload, attachment []byte) error {
	m.mu.Lock()
	var hs []transport.Handler
	for _, s := range m.subs {
		if matchKey(s.expr, key) {
			hs = append(hs, s.h)
		}
	}
	m.mu.Unlock()
	for _, h := range hs {
		h(transport.Sample{Key: key, Payload: payload, Attachment: attachment})
	}
	return nil
}

func (m *memTransport) Subscribe(expr string, h transport.Handler) (transport.Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	id := m.next
	m.subs[id] = memSub{expr, h}
	return memSubscription{m, id}, nil
}

func (m *memTransport) Close() error { return nil }

func (m *memTransport) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

type memSubscription struct {
	m  *memTransport
	id int
}

func (s memSubscription) Close() error {
	s.m.mu.Lock()
	delete(s.m.subs, s.id)
	s.m.mu.Unlock()
	return nil
}

// fakeDeliverer records what a bridge delivers.
type fakeDeliverer struct {
	mu     sync.Mutex
	data   []string // node/output:meta:data
	events []dataplane.RemoteEvent
}

func (f *fakeDeliverer) DeliverRemote(node, output string, meta, data []byte) error {
	f.mu.Lock()
	f.data = append(f.data, node+"/"+output+":"+string(meta)+":"+string(data))
	f.mu.Unlock()
	return nil
}

func (f *fakeDeliverer) DeliverRemoteEvent(ev dataplane.RemoteEvent) {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
}

func (f *fakeDeliverer) snapshot() ([]string, []dataplane.RemoteEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.data), slices.Clone(f.events)
}

// twoMachineFlow: camera (machine A) -> inference (machine B) -> actuator (A).
func twoMachineFlow() *config.Dataflow {
	in := func(id, node, out string) config.Input {
		return config.Input{ID: id, Source: config.Source{Node: node, Output: out}}
	}
	timer := config.Input{ID: "tick", Source: config.Source{Node: "adora", Output: "timer/millis/10", Timer: 10 * time.Millisecond}}
	return &config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Outputs: []string{"frames"}, Inputs: []config.Input{timer}},
		{ID: "inference", Inputs: []config.Input{in("frames", "camera", "frames")}, Outputs: []string{"predictions"}},
		{ID: "actuator", Inputs: []config.Input{in("commands", "inference", "predictions"), in("raw", "camera", "frames")}},
	}}
}

func TestRemoteSources(t *testing.T) {
	df := twoMachineFlow()
	got := remoteSources(df, []string{"camera", "actuator"})
	if len(got) != 1 || got[0] != (config.Source{Node: "inference", Output: "predictions"}) {
		t.Fatalf("machine A reads %v from others", got)
	}
	got = remoteSources(df, []string{"inference"})
	if len(got) != 1 || got[0] != (config.Source{Node: "camera", Output: "frames"}) {
		t.Fatalf("machine B reads %v from others", got)
	}
	if got := remoteSources(df, []string{"camera", "inference", "actuator"}); len(got) != 0 {
		t.Fatalf("single machine reads %v from others", got)
	}
}

func TestBridgeRoutesOutputsAndEvents(t *testing.T) {
	tr := newMemTransport()
	df := twoMachineFlow()
	a, b := newBridge(tr, "df1", discard()), newBridge(tr, "df1", discard())
	toA, toB := &fakeDeliverer{}, &fakeDeliverer{}
	if err := a.start(toA, df, []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	if err := b.start(toB, df, []string{"inference"}); err != nil {
		t.Fatal(err)
	}
	// Machine A's camera output reaches B; B's prediction reaches A.
	a.Publish("camera", "frames", []byte("m1"), []byte("frame-1"))
	b.Publish("inference", "predictions", []byte("m2"), []byte("left"))
	b.PublishEvent(dataplane.RemoteEvent{Kind: dataplane.NodeRestarted, Node: "inference"})
	a.PublishEvent(dataplane.RemoteEvent{Kind: dataplane.OutputClosed, Node: "camera", Output: "frames"})

	dataA, evA := toA.snapshot()
	dataB, evB := toB.snapshot()
	if !slices.Equal(dataA, []string{"inference/predictions:m2:left"}) {
		t.Errorf("A received %v", dataA)
	}
	if !slices.Equal(dataB, []string{"camera/frames:m1:frame-1"}) {
		t.Errorf("B received %v", dataB)
	}
	if len(evA) != 1 || evA[0].Kind != dataplane.NodeRestarted || evA[0].Node != "inference" {
		t.Errorf("A events %+v (its own events must not come back)", evA)
	}
	if len(evB) != 1 || evB[0].Kind != dataplane.OutputClosed || evB[0].Output != "frames" {
		t.Errorf("B events %+v", evB)
	}
	if !b.SourceClosed("camera", "frames") || b.SourceClosed("camera", "other") {
		t.Error("B's view of camera's closed outputs is wrong")
	}
	if a.SourceClosed("inference", "predictions") {
		t.Error("a restart closed inference's output")
	}
	b.PublishEvent(dataplane.RemoteEvent{Kind: dataplane.NodeFailed, Node: "inference", Error: "boom"})
	if !a.SourceClosed("inference", "predictions") {
		t.Error("a failed node's outputs are not closed")
	}
	b.PublishEvent(dataplane.RemoteEvent{Kind: dataplane.NodeRestarted, Node: "inference"})
	if a.SourceClosed("inference", "predictions") {
		t.Error("a restarted node's outputs stay closed")
	}
	a.close()
	b.close()
	if n := tr.count(); n != 0 {
		t.Fatalf("%d subscriptions left after close", n)
	}
}

// TestBridgeOverZenoh runs two bridges over two real Zenoh sessions linked
// on loopback, as two daemons would.
func TestBridgeOverZenoh(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sa, err := zenoh.Open(ctx, zenoh.Config{Listen: []string{"tcp/127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := zenoh.Open(ctx, zenoh.Config{Connect: sa.ListenEndpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	df := twoMachineFlow()
	a, b := newBridge(sa, "df2", discard()), newBridge(sb, "df2", discard())
	toB := &fakeDeliverer{}
	if err := a.start(&fakeDeliverer{}, df, []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := b.start(toB, df, []string{"inference"}); err != nil {
		t.Fatal(err)
	}
	defer b.close()
	// Publish until the link and B's subscription are up.
	deadline := time.Now().Add(15 * time.Second)
	for {
		a.Publish("camera", "frames", []byte("meta"), []byte("frame"))
		if data, _ := toB.snapshot(); len(data) > 0 {
			if data[0] != "camera/frames:meta:frame" {
				t.Fatalf("B received %q", data[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing crossed the Zenoh link")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (m *memTransport) Matching(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.subs {
		if matchKey(s.expr, key) {
			return true
		}
	}
	return false
}

// TestBridgeWaitsForRemoteReceiver: at start a publication waits until the
// receiving machine subscribes (nothing is lost); after the startup
// window one nobody receives is counted as lost.
func TestBridgeWaitsForRemoteReceiver(t *testing.T) {
	tr := newMemTransport()
	df := twoMachineFlow()
	a := newBridge(tr, "df3", discard())
	if err := a.start(&fakeDeliverer{}, df, []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	published := make(chan error, 1)
	go func() { published <- a.Publish("camera", "frames", nil, []byte("early")) }()
	select {
	case <-published:
		t.Fatal("published before any receiver subscribed")
	case <-time.After(100 * time.Millisecond):
	}
	b := newBridge(tr, "df3", discard())
	toB := &fakeDeliverer{}
	if err := b.start(toB, df, []string{"inference"}); err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if data, _ := toB.snapshot(); !slices.Equal(data, []string{"camera/frames::early"}) {
		t.Fatalf("receiver got %v", data)
	}
	if lost := a.Lost(); len(lost) != 0 {
		t.Fatalf("lost %v", lost)
	}

	late := newBridge(tr, "df4", discard())
	late.started = time.Now().Add(-2 * startupWait)
	start := time.Now()
	if err := late.Publish("camera", "frames", nil, []byte("nobody")); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("waited after the startup window")
	}
	if lost := late.Lost(); lost["camera"] != 1 {
		t.Fatalf("lost %v, want camera: 1", lost)
	}
}

// lossyTransport wraps a memTransport: fate decides, per publication on
// key (its count from 1 on that key), whether it passes, vanishes
// silently on the way (as what a socket holds when a link breaks) or
// fails.
type lossyTransport struct {
	*memTransport
	mu   sync.Mutex
	n    map[string]int
	fate func(key string, n int) string // "", "vanish" or "fail"
}

func (l *lossyTransport) Publish(ctx context.Context, key string, payload, attachment []byte) error {
	l.mu.Lock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[key]++
	f := l.fate(key, l.n[key])
	l.mu.Unlock()
	switch f {
	case "vanish":
		return nil
	case "fail":
		return errors.New("link to 5f closed")
	}
	return l.memTransport.Publish(ctx, key, payload, attachment)
}

// lossyPair starts machine A (camera, actuator) and machine B (inference)
// of twoMachineFlow over a lossyTransport.
func lossyPair(t *testing.T, fate func(key string, n int) string) (a, b *bridge, toA *fakeDeliverer) {
	t.Helper()
	tr := &lossyTransport{memTransport: newMemTransport(), fate: fate}
	df := twoMachineFlow()
	a, b = newBridge(tr, "df5", discard()), newBridge(tr, "df5", discard())
	toA = &fakeDeliverer{}
	if err := a.start(toA, df, []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	if err := b.start(&fakeDeliverer{}, df, []string{"inference"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return a, b, toA
}

func publishN(t *testing.T, b *bridge, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := b.Publish("inference", "predictions", []byte("m"), fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// TestBridgeCountsGapsAgainstReaders: publications that vanish on the way
// are counted, on the receiving machine, against the local node that reads
// the output (actuator), not against other local nodes or the sender.
func TestBridgeCountsGapsAgainstReaders(t *testing.T) {
	a, b, toA := lossyPair(t, func(key string, n int) string {
		if strings.HasSuffix(key, "/inference/predictions") && (n == 2 || n == 3 || n == 7) {
			return "vanish"
		}
		return ""
	})
	publishN(t, b, 1, 8)
	data, _ := toA.snapshot()
	want := []string{"inference/predictions:m:1", "inference/predictions:m:4", "inference/predictions:m:5",
		"inference/predictions:m:6", "inference/predictions:m:8"}
	if !slices.Equal(data, want) {
		t.Fatalf("A received %v, want %v", data, want)
	}
	if lost := a.Lost(); len(lost) != 1 || lost["actuator"] != 3 {
		t.Errorf("A counts lost %v, want actuator: 3", lost)
	}
	if lost := b.Lost(); len(lost) != 0 {
		t.Errorf("B (the sender) counts lost %v, want none", lost)
	}
}

// TestBridgeCountsFailedPublish: a publication that fails is counted once,
// against the sending node; it takes no number, so the receiver sees no
// gap and counts nothing.
func TestBridgeCountsFailedPublish(t *testing.T) {
	a, b, toA := lossyPair(t, func(key string, n int) string {
		if strings.HasSuffix(key, "/inference/predictions") && n == 2 {
			return "fail"
		}
		return ""
	})
	publishN(t, b, 1, 1)
	if err := b.Publish("inference", "predictions", []byte("m"), []byte("2")); err == nil {
		t.Fatal("a failed publication reported no error")
	}
	publishN(t, b, 3, 4)
	if data, _ := toA.snapshot(); len(data) != 3 {
		t.Fatalf("A received %v, want 1, 3 and 4", data)
	}
	if lost := b.Lost(); len(lost) != 1 || lost["inference"] != 1 {
		t.Errorf("B counts lost %v, want inference: 1", lost)
	}
	if lost := a.Lost(); len(lost) != 0 {
		t.Errorf("A counts lost %v, want none (the sender counted it)", lost)
	}
}

// TestBridgeCountsLossAtStreamEnd: the output-closed and node-failed
// events carry the last number sent, so publications lost after the last
// one received are counted too.
func TestBridgeCountsLossAtStreamEnd(t *testing.T) {
	for _, kind := range []dataplane.RemoteEventKind{dataplane.OutputClosed, dataplane.NodeFailed} {
		t.Run(string(kind), func(t *testing.T) {
			a, b, toA := lossyPair(t, func(key string, n int) string {
				if strings.HasSuffix(key, "/inference/predictions") && n > 3 {
					return "vanish"
				}
				return ""
			})
			publishN(t, b, 1, 5)
			ev := dataplane.RemoteEvent{Kind: kind, Node: "inference", Output: "predictions"}
			if kind == dataplane.NodeFailed {
				ev = dataplane.RemoteEvent{Kind: kind, Node: "inference", Error: "boom"}
			}
			if err := b.PublishEvent(ev); err != nil {
				t.Fatal(err)
			}
			if data, evs := toA.snapshot(); len(data) != 3 || len(evs) != 1 || evs[0].Kind != kind {
				t.Fatalf("A received %v and events %+v", data, evs)
			}
			if lost := a.Lost(); len(lost) != 1 || lost["actuator"] != 2 {
				t.Errorf("A counts lost %v, want actuator: 2", lost)
			}
			// A repeated event counts nothing more.
			if err := b.PublishEvent(ev); err != nil {
				t.Fatal(err)
			}
			if lost := a.Lost(); lost["actuator"] != 2 {
				t.Errorf("after a repeated event A counts lost %v, want actuator: 2", lost)
			}
		})
	}
}

// TestBridgeUnreadableAttachment: a publication in a format this daemon
// does not read is not delivered and is counted lost against the readers.
func TestBridgeUnreadableAttachment(t *testing.T) {
	tr := newMemTransport()
	a := newBridge(tr, "df6", discard())
	toA := &fakeDeliverer{}
	if err := a.start(toA, twoMachineFlow(), []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	key := OutputKey("df6", "inference", "predictions")
	tr.Publish(context.Background(), key, []byte("x"), []byte{2, 0, 0, 0, 0, 0, 0, 0, 1})
	tr.Publish(context.Background(), key, []byte("y"), []byte("short"))
	tr.Publish(context.Background(), key, []byte("z"), appendAttachment(nil, 3, []byte("m")))
	data, _ := toA.snapshot()
	if !slices.Equal(data, []string{"inference/predictions:m:z"}) {
		t.Fatalf("A received %v", data)
	}
	// two unreadable, and 1..2 never seen before number 3
	if lost := a.Lost(); len(lost) != 1 || lost["actuator"] != 4 {
		t.Errorf("A counts lost %v, want actuator: 4", lost)
	}
}

func TestAttachmentRoundTrip(t *testing.T) {
	att := appendAttachment(nil, 0x0102030405060708, []byte("meta"))
	if att[0] != attachmentV1 || len(att) != attachmentHeader+4 {
		t.Fatalf("attachment % x", att)
	}
	n, meta, err := parseAttachment(att)
	if err != nil || n != 0x0102030405060708 || string(meta) != "meta" {
		t.Fatalf("parsed %x %q %v", n, meta, err)
	}
}

// sideTransport is one machine's view of a two-machine link: it
// subscribes on its own side and publishes to, and matches against, the
// subscriptions of the other side, as a Zenoh session does; vanish says
// whether the nth publication on key is lost on the way.
type sideTransport struct {
	self, peer *memTransport
	down       atomic.Bool // the link is down: nothing matches, publications vanish
	mu         sync.Mutex
	n          map[string]int
	vanish     func(key string, n int) bool
}

func (s *sideTransport) Publish(ctx context.Context, key string, payload, attachment []byte) error {
	s.mu.Lock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[key]++
	lost := s.down.Load() || s.vanish != nil && s.vanish(key, s.n[key])
	s.mu.Unlock()
	if lost {
		return nil
	}
	return s.peer.Publish(ctx, key, payload, attachment)
}

func (s *sideTransport) Subscribe(expr string, h transport.Handler) (transport.Subscription, error) {
	return s.self.Subscribe(expr, h)
}

func (s *sideTransport) Close() error             { return nil }
func (s *sideTransport) Matching(key string) bool { return !s.down.Load() && s.peer.Matching(key) }

// TestBridgeKeepsEventsUntilLinked: an event published while no remote
// daemon is linked (the link is down) is kept and sent, in order with
// later ones, once the link is back; its final number still counts the
// loss.
func TestBridgeKeepsEventsUntilLinked(t *testing.T) {
	sideA, sideB := newMemTransport(), newMemTransport()
	trA := &sideTransport{self: sideA, peer: sideB}
	trB := &sideTransport{self: sideB, peer: sideA, vanish: func(key string, n int) bool {
		return strings.HasSuffix(key, "/inference/predictions") && n > 2
	}}
	df := twoMachineFlow()
	b := newBridge(trB, "df8", discard())
	if err := b.start(&fakeDeliverer{}, df, []string{"inference"}); err != nil {
		t.Fatal(err)
	}
	defer b.close()
	a := newBridge(trA, "df8", discard())
	toA := &fakeDeliverer{}
	if err := a.start(toA, df, []string{"camera", "actuator"}); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	publishN(t, b, 1, 4) // 3 and 4 vanish (a socket's content when the link broke)
	trB.down.Store(true)
	if err := b.PublishEvent(dataplane.RemoteEvent{Kind: dataplane.OutputClosed, Node: "inference", Output: "predictions"}); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishEvent(dataplane.RemoteEvent{Kind: dataplane.NodeRestarted, Node: "inference"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * eventRetry)
	if _, evs := toA.snapshot(); len(evs) != 0 {
		t.Fatalf("events crossed a link that is down: %+v", evs)
	}
	trB.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, evs := toA.snapshot()
		if len(evs) == 2 {
			if evs[0].Kind != dataplane.OutputClosed || evs[1].Kind != dataplane.NodeRestarted {
				t.Fatalf("kept events arrived as %+v, want output_closed then node_restarted", evs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kept events never sent (got %+v)", evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lost := a.Lost(); len(lost) != 1 || lost["actuator"] != 2 {
		t.Errorf("lost %v, want actuator: 2 (numbers 3 and 4, counted from the kept event)", lost)
	}
}
