package dataplane

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/transport/shm"
)

// The SDK nodes use direct edges: the receiver's messages come over the
// edge (direct_in), all of them, in order, with the usual ending.
func TestDirectPathIsTaken(t *testing.T) {
	for _, size := range []int{16, 65536} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
			h := newHarness(t, df)
			h.spawn("dst", "receiver", 0)
			h.spawn("src", "sender", 0, "DP_COUNT=200", fmt.Sprintf("DP_SIZE=%d", size), "DP_INTERVAL=200us")
			dst := h.reapAsync("dst")
			waitErr(t, h.reapAsync("src"), "sender")
			waitErr(t, dst, "receiver")
			lines := h.logLines("dst")
			checkSequence(t, parseInputs(lines), 200, size, size >= 4096)
			if got := tail(lines, 2); !slices.Equal(got, []string{"INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}) {
				t.Fatalf("stream ended with %q", got)
			}
			m := h.r.Metrics()
			if m["dst"].DirectIn < 150 || m["dst"].MessagesIn != 200 || m["src"].MessagesOut != 200 {
				t.Fatalf("metrics %+v: want 200 in and out, most of them direct", m)
			}
			if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
				t.Fatalf("%d regions, %d samples leaked", regions, samples)
			}
		})
	}
}

// With DisableDirect the router keeps everything on the daemon path.
func TestDirectDisabledStaysOnDaemonPath(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	h.r.mu.Lock()
	h.r.cfg.DisableDirect = true // before any node registers
	h.r.mu.Unlock()
	h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=50", "DP_SIZE=16")
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	checkSequence(t, parseInputs(h.logLines("dst")), 50, 16, false)
	if m := h.r.Metrics()["dst"]; m.DirectIn != 0 || m.MessagesIn != 50 {
		t.Fatalf("metrics %+v: want 50 in, none direct", m)
	}
}

// A sender that starts at once (its first messages go through the
// daemon) and keeps sending through the cut-over, against a queue of 2
// with backpressure: thousands of messages, none lost, none reordered.
// (Before the receiver's first registration nobody sends: the start
// barrier holds READY; sending while a receiver is away is
// TestDirectRestartedReceiverMissesNothingAfterCutover.)
func TestDirectCutoverUnderBackpressureLosesNothing(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 2, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("src", "sender", 0, "DP_COUNT=3000", "DP_SIZE=32")
	h.spawn("dst", "receiver", 0)
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	checkSequence(t, parseInputs(h.logLines("dst")), 3000, 32, false)
	if m := h.r.Metrics()["dst"]; m.DirectIn == 0 || m.MessagesIn != 3000 || m.Dropped != 0 {
		t.Fatalf("metrics %+v: want 3000 in, some direct, no drops", m)
	}
}

// One output, two receivers: an SDK node on an edge and a raw client
// that does not announce DIRECT (daemon path). Both get every message in
// order.
func TestDirectMixedReceivers(t *testing.T) {
	df := dataflow(sender("src", "out"),
		receiver("sdk", input("in", "src/out", 10, config.Backpressure)),
		receiver("raw", input("in", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("sdk", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=300", "DP_SIZE=16", "DP_INTERVAL=100us")
	c := rawNode(t, h.r, "raw")
	sdk, src := h.reapAsync("sdk"), h.reapAsync("src")
	var seqs []int
	for done := false; !done; {
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("raw receiver: %v after %d inputs", err, len(seqs))
		}
		switch m.Type {
		case shm.MsgInput:
			seq, ok := check(m.Data)
			if !ok {
				t.Fatalf("raw receiver: corrupt payload %x", m.Data)
			}
			seqs = append(seqs, seq)
			c.WriteMsg(&shm.Msg{Type: shm.MsgAck, Count: 1}, nil)
		case shm.MsgEdgeOut, shm.MsgEdgeIn, shm.MsgRoutes:
			t.Fatalf("raw receiver without DIRECT got %s", m.Type)
		case shm.MsgAllInputsClosed:
			done = true
		}
	}
	waitErr(t, src, "sender")
	waitErr(t, sdk, "sdk receiver")
	for i, s := range seqs {
		if s != i {
			t.Fatalf("raw receiver: input %d has seq %d (of %d)", i, s, len(seqs))
		}
	}
	if len(seqs) != 300 {
		t.Fatalf("raw receiver got %d inputs, want 300", len(seqs))
	}
	checkSequence(t, parseInputs(h.logLines("sdk")), 300, 16, false)
	m := h.r.Metrics()
	if m["sdk"].DirectIn == 0 || m["raw"].DirectIn != 0 || m["raw"].MessagesIn != 300 {
		t.Fatalf("metrics %+v: want the SDK receiver direct, the raw one on the daemon path", m)
	}
}

// Shared memory fanned out over two edges: a region comes back to the
// sender only when both receivers released it. Receiver a keeps every
// payload, so none comes back.
func TestDirectFanOutRegionNeedsBothReleases(t *testing.T) {
	df := dataflow(sender("src", "out"),
		receiver("a", input("in", "src/out", 100, config.Backpressure)),
		receiver("b", input("in", "src/out", 100, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("a", "receiver", 0, "DP_RETAIN=1")
	h.spawn("b", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=20", "DP_SIZE=65536", "DP_INTERVAL=2ms", "DP_WAIT_STOP=1", "DP_POOL_WAIT=300ms")
	a, b := h.reapAsync("a"), h.reapAsync("b")
	h.waitLog("a", func(l []string) bool { return len(parseInputs(l)) == 20 })
	h.waitLog("b", func(l []string) bool { return len(parseInputs(l)) == 20 })
	h.r.RequestStop("src")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, a, "a")
	waitErr(t, b, "b")
	var regions, free int
	for _, l := range h.logLines("src") {
		fmt.Sscanf(l, "POOL %d %d", &regions, &free)
	}
	if regions < 19 || free != 0 {
		t.Fatalf("sender pool %d regions, %d free: want about 20, none free while a holds them", regions, free)
	}
	m := h.r.Metrics()
	if m["a"].DirectIn == 0 || m["b"].DirectIn == 0 {
		t.Fatalf("metrics %+v: want both receivers direct", m)
	}
}

// kill -9 of a direct receiver: the sender goes on, the restart policy
// applies, and the restarted receiver is fed over a new edge.
func TestDirectKilledReceiverRestartsOnNewEdge(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.DropOldest)))
	h := newHarness(t, df)
	p := h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=600", "DP_SIZE=8192", "DP_INTERVAL=2ms")
	src := h.reapAsync("src")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) >= 20 })
	time.Sleep(150 * time.Millisecond) // a STATS report
	before := h.r.Metrics()["dst"].DirectIn
	if before == 0 {
		t.Fatal("the receiver was not on a direct edge before the kill")
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	h.reap("dst", true)
	h.spawn("dst", "receiver", 1)
	dst := h.reapAsync("dst")
	waitErr(t, src, "sender")
	waitErr(t, dst, "restarted receiver")
	lines := h.logLines("dst")
	if got := tail(lines, 2); !slices.Equal(got, []string{"INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}) {
		t.Fatalf("restarted receiver ended with %q", got)
	}
	for _, in := range parseInputs(lines) {
		if !in.ok {
			t.Fatalf("corrupt input %+v", in)
		}
	}
	if after := h.r.Metrics()["dst"].DirectIn; after <= before+10 {
		t.Fatalf("direct_in %d before the kill, %d at the end: the restarted receiver got no new edge", before, after)
	}
}

// kill -9 of a direct sender: the receiver gets every message the sender
// wrote (a contiguous sequence up to at least the last send that returned
// before the kill), then NODE_FAILED and INPUT_CLOSED.
func TestDirectKilledSenderDeliversWhatItWrote(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 5000, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	p := h.spawn("src", "sender", 0, "DP_COUNT=1000000", "DP_SIZE=64", "DP_LOG_EACH=1")
	dst := h.reapAsync("dst")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) >= 2000 })
	p.cmd.Process.Signal(syscall.SIGKILL)
	h.reap("src", false)
	waitErr(t, dst, "receiver")
	lines := h.logLines("dst")
	want := []string{"NODE_FAILED src in", "INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}
	if got := tail(lines, 3); !slices.Equal(got, want) {
		t.Fatalf("receiver ended with %q, want %q", got, want)
	}
	ins := parseInputs(lines)
	for i, in := range ins {
		if in.seq != i || !in.ok {
			t.Fatalf("input %d = %+v: want a contiguous, intact sequence", i, in)
		}
	}
	wrote := -1
	for _, l := range h.logLines("src") {
		fmt.Sscanf(l, "WROTE %d", &wrote)
	}
	if wrote < 2000 || len(ins) < wrote+1 {
		t.Fatalf("the sender's last completed send was seq %d, the receiver got %d messages", wrote, len(ins))
	}
	if m := h.r.Metrics()["dst"]; m.DirectIn == 0 {
		t.Fatalf("metrics %+v: want direct inputs", m)
	}
}

// CloseOutputs over an edge: the receiver gets every message, then
// INPUT_CLOSED, while the sender is still alive.
func TestDirectCloseOutputsAfterLastMessage(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	// Enough messages that the edge is up before the last ones are sent.
	h.spawn("src", "sender", 0, "DP_COUNT=3000", "DP_SIZE=64", "DP_CLOSE=1", "DP_WAIT_STOP=1")
	dst := h.reapAsync("dst")
	waitErr(t, dst, "receiver") // ends with ALL_INPUTS_CLOSED, the sender still waits for STOP
	lines := h.logLines("dst")
	checkSequence(t, parseInputs(lines), 3000, 64, false)
	if got := tail(lines, 2); !slices.Equal(got, []string{"INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}) {
		t.Fatalf("receiver ended with %q", got)
	}
	h.r.RequestStop("src")
	waitErr(t, h.reapAsync("src"), "sender")
	if m := h.r.Metrics()["dst"]; m.DirectIn == 0 {
		t.Fatalf("metrics %+v: want direct inputs", m)
	}
}

// Queue policies are enforced by the receiving SDK on an edge: drop_oldest
// drops are counted in Metrics, backpressure loses nothing.
func TestDirectSlowReceiverPolicies(t *testing.T) {
	for _, policy := range []config.QueuePolicy{config.DropOldest, config.Backpressure} {
		t.Run(string(policy), func(t *testing.T) {
			df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 2, policy)))
			h := newHarness(t, df)
			h.spawn("dst", "receiver", 0, "DP_SLEEP=1ms")
			h.spawn("src", "sender", 0, "DP_COUNT=300", "DP_SIZE=8192")
			dst := h.reapAsync("dst")
			waitErr(t, h.reapAsync("src"), "sender")
			waitErr(t, dst, "receiver")
			ins := parseInputs(h.logLines("dst"))
			m := h.r.Metrics()["dst"]
			if m.DirectIn == 0 || int(m.MessagesIn) != len(ins) || int(m.Dropped)+len(ins) != 300 {
				t.Fatalf("received %d, metrics %+v", len(ins), m)
			}
			if policy == config.Backpressure {
				checkSequence(t, ins, 300, 8192, true)
			} else if m.Dropped == 0 || ins[len(ins)-1].seq != 299 {
				t.Fatalf("drop_oldest: %d dropped, last seq %d: want drops and the newest last", m.Dropped, ins[len(ins)-1].seq)
			}
		})
	}
}

// An input with input_timeout stays on the daemon path (its breaker lives
// there) and the breaker still works.
func TestDirectNotUsedForInputTimeout(t *testing.T) {
	in := input("in", "src/out", 10, config.Backpressure)
	in.InputTimeout = 200 * time.Millisecond
	df := dataflow(sender("src", "out"), receiver("dst", in))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=4", "DP_SIZE=16", "DP_PAUSE_AFTER=1", "DP_PAUSE=600ms")
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	lines := h.logLines("dst")
	if !slices.Contains(lines, "INPUT_RECOVERED in") {
		t.Fatalf("breaker did not trip and recover: %q", lines)
	}
	if m := h.r.Metrics()["dst"]; m.DirectIn != 0 || m.InputTimeouts == 0 {
		t.Fatalf("metrics %+v: want no direct inputs and a timeout", m)
	}
}

// A backpressure receiver killed mid-stream and restarted: while it is
// down the daemon queues for it (the sender keeps going until the queue
// is full), then the new process gets the queued messages and a new edge,
// with nothing lost or reordered from its first message to the last.
func TestDirectRestartedReceiverMissesNothingAfterCutover(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	p := h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=1500", "DP_SIZE=64", "DP_INTERVAL=100us")
	src := h.reapAsync("src")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) >= 200 })
	p.cmd.Process.Signal(syscall.SIGKILL)
	h.reap("dst", true)
	time.Sleep(50 * time.Millisecond) // the sender goes on meanwhile
	second := filepath.Join(h.dir, "dst-2.log")
	h.spawn("dst", "receiver", 1, "DP_LOG="+second)
	dst := h.reapAsync("dst")
	waitErr(t, src, "sender")
	waitErr(t, dst, "restarted receiver")
	lines := readLines(t, second)
	ins := parseInputs(lines)
	if len(ins) == 0 || ins[0].seq == 0 {
		t.Fatalf("restarted receiver got %d inputs starting at %+v", len(ins), ins)
	}
	for i := 1; i < len(ins); i++ {
		if ins[i].seq != ins[i-1].seq+1 || !ins[i].ok {
			t.Fatalf("restarted receiver: input %+v after %+v", ins[i], ins[i-1])
		}
	}
	if last := ins[len(ins)-1].seq; last != 1499 {
		t.Fatalf("restarted receiver's last input %d, want 1499", last)
	}
	if got := tail(lines, 2); !slices.Equal(got, []string{"INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}) {
		t.Fatalf("restarted receiver ended with %q", got)
	}
	if m := h.r.Metrics()["dst"]; m.DirectIn == 0 {
		t.Fatalf("metrics %+v: want direct inputs", m)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}
