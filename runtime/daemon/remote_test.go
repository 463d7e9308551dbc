package daemon

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
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
