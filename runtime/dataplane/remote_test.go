package dataplane

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/transport/shm"
)

// recordingRemote stands in for the cross-machine transport.
type recordingRemote struct {
	mu     sync.Mutex
	pubs   []remotePub
	events []RemoteEvent
}

type remotePub struct {
	node, output string
	meta         shm.Meta
	data         []byte
}

func (r *recordingRemote) Publish(node, output string, meta, data []byte) error {
	m, err := shm.DecodeMeta(meta)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.pubs = append(r.pubs, remotePub{node, output, m, bytes.Clone(data)})
	r.mu.Unlock()
	return nil
}

func (r *recordingRemote) PublishEvent(ev RemoteEvent) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}

// Outputs that feed a node on another machine are published, inline and
// shared-memory payloads alike (read from the region), and the sender's
// exit is published as OutputClosed.
func TestOutputsToRemoteNodesArePublished(t *testing.T) {
	df := dataflow(sender("src", "out"),
		receiver("dst", input("in", "src/out", 10, config.Backpressure)),
		receiver("far", input("in", "src/out", 10, config.Backpressure)))
	rr := &recordingRemote{}
	h := newHarnessWith(t, df, []string{"src", "dst"}, rr)
	h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=6", "DP_SIZE=5000")
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	checkSequence(t, parseInputs(h.logLines("dst")), 6, 5000, true)
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.pubs) != 6 {
		t.Fatalf("published %d messages, want 6", len(rr.pubs))
	}
	for i, p := range rr.pubs {
		seq, ok := check(p.data)
		if p.node != "src" || p.output != "out" || seq != i || !ok || len(p.data) != 5000 || p.meta.Timestamp == 0 {
			t.Fatalf("publication %d: %s/%s seq %d ok %v len %d", i, p.node, p.output, seq, ok, len(p.data))
		}
	}
	if want := []RemoteEvent{{Kind: OutputClosed, Node: "src", Output: "out"}}; !slices.Equal(rr.events, want) {
		t.Fatalf("events %+v, want %+v", rr.events, want)
	}
}

// Messages and lifecycle events of a remote source reach local receivers.
func TestRemoteSourceDeliversLocally(t *testing.T) {
	df := dataflow(sender("far", "out"), receiver("dst", input("in", "far/out", 10, config.Backpressure)))
	h := newHarnessWith(t, df, []string{"dst"}, &recordingRemote{})
	h.spawn("dst", "receiver", 0)
	dst := h.reapAsync("dst")
	for seq := 0; seq < 3; seq++ {
		b := make([]byte, 100000)
		fill(b, seq)
		if err := h.r.DeliverRemote("far", "out", shm.AppendMeta(nil, &shm.Meta{Timestamp: 1}), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.r.DeliverRemote("far", "out", []byte{1}, nil); err == nil {
		t.Fatal("malformed metadata accepted")
	}
	h.r.DeliverRemoteEvent(RemoteEvent{Kind: NodeRestarted, Node: "far"})
	h.r.DeliverRemoteEvent(RemoteEvent{Kind: NodeFailed, Node: "far", Error: "boom"})
	waitErr(t, dst, "receiver")
	lines := h.logLines("dst")
	checkSequence(t, parseInputs(lines), 3, 100000, true) // in the router's own shared memory
	want := []string{"NODE_RESTARTED far in", "NODE_FAILED far in", "INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}
	if got := lines[3:]; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// Remote payloads above the frame limit reach local receivers through the
// router's own regions, which are reused and freed at Close.
func TestRemotePayloadBeyondFrameLimit(t *testing.T) {
	df := dataflow(sender("far", "out"), receiver("dst", input("in", "far/out", 2, config.Backpressure)))
	h := newHarnessWith(t, df, []string{"dst"}, &recordingRemote{})
	h.spawn("dst", "receiver", 0)
	dst := h.reapAsync("dst")
	big := make([]byte, shm.MaxFrame+4096)
	for seq := 0; seq < 2; seq++ {
		fill(big, seq)
		if err := h.r.DeliverRemote("far", "out", shm.AppendMeta(nil, &shm.Meta{Timestamp: 1}), big); err != nil {
			t.Fatal(err)
		}
	}
	h.r.DeliverRemoteEvent(RemoteEvent{Kind: OutputClosed, Node: "far", Output: "out"})
	waitErr(t, dst, "receiver")
	checkSequence(t, parseInputs(h.logLines("dst")), 2, len(big), true)
	if regions, samples := h.r.regionCount(); samples != 0 || regions > maxOwnRegions {
		t.Fatalf("%d regions, %d samples after delivery", regions, samples)
	}
}
