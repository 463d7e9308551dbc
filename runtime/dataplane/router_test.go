package dataplane

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	node "github.com/adora-rs/adora/nodes"
)

func sender(id string, outs ...string) config.Node {
	return config.Node{ID: id, Outputs: outs}
}

func receiver(id string, ins ...config.Input) config.Node {
	return config.Node{ID: id, Inputs: ins}
}

// checkSequence asserts that ins carries seq 0..n-1 in order, intact.
func checkSequence(t *testing.T, ins []inputLine, n, size int, shared bool) {
	t.Helper()
	if len(ins) != n {
		t.Fatalf("got %d inputs, want %d; last: %+v", len(ins), n, tail2(ins))
	}
	for i, in := range ins {
		if size < 8 {
			in.seq = i // too small to carry a sequence number
		}
		if in.seq != i || !in.ok || in.size != size || in.shared != shared {
			t.Fatalf("input %d = %+v, want seq %d, intact, %d bytes, shared=%v", i, in, i, size, shared)
		}
	}
}

func TestPipelineDeliversInOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		alloc  bool
		shared bool
	}{
		{"empty", 0, false, false},
		{"inline", 100, false, false},
		{"below-threshold", 4095, false, false},
		{"threshold", 4096, false, true},
		{"shm-1MiB", 1 << 20, false, true},
		{"shm-alloc", 300 << 10, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
			h := newHarness(t, df)
			env := []string{"DP_COUNT=50", fmt.Sprintf("DP_SIZE=%d", tc.size)}
			if tc.alloc {
				env = append(env, "DP_ALLOC=1")
			}
			h.spawn("dst", "receiver", 0)
			h.spawn("src", "sender", 0, env...)
			dst := h.reapAsync("dst")
			if err := waitErr(t, h.reapAsync("src"), "sender"); err != nil {
				t.Fatal(err)
			}
			if err := waitErr(t, dst, "receiver"); err != nil {
				t.Fatal(err)
			}
			lines := h.logLines("dst")
			checkSequence(t, parseInputs(lines), 50, tc.size, tc.shared)
			if got := tail(lines, 2); !slices.Equal(got, []string{"INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}) {
				t.Fatalf("stream ended with %q, want INPUT_CLOSED then ALL_INPUTS_CLOSED", got)
			}
			if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
				t.Fatalf("after both nodes exited: %d regions, %d samples still held", regions, samples)
			}
			m := h.r.Metrics()
			if m["src"].MessagesOut != 50 || m["dst"].MessagesIn != 50 || m["dst"].Dropped != 0 {
				t.Fatalf("metrics = %+v", m)
			}
		})
	}
}

func TestFanOutToTwoReceivers(t *testing.T) {
	df := dataflow(sender("src", "out"),
		receiver("a", input("in", "src/out", 10, config.Backpressure)),
		receiver("b", input("x", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("a", "receiver", 0)
	h.spawn("b", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=40", "DP_SIZE=65536")
	a, b := h.reapAsync("a"), h.reapAsync("b")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, a, "a")
	waitErr(t, b, "b")
	checkSequence(t, parseInputs(h.logLines("a")), 40, 65536, true)
	checkSequence(t, parseInputs(h.logLines("b")), 40, 65536, true)
	if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
		t.Fatalf("%d regions, %d samples leaked", regions, samples)
	}
}

// Regions return to the sender's pool once every receiver released them,
// so a long stream reuses a few regions.
func TestSenderReusesRegions(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 2, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=200", "DP_SIZE=100000", "DP_WAIT_STOP=1")
	dst := h.reapAsync("dst")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) == 200 })
	h.r.RequestStop("src")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	var regions, free int
	for _, l := range h.logLines("src") {
		fmt.Sscanf(l, "POOL %d %d", &regions, &free)
	}
	// The receiver still holds the last message (released when it takes
	// the next event).
	if regions == 0 || regions >= 100 || free < regions-1 {
		t.Fatalf("sender pool after 200 messages: %d regions, %d free; want a few, all but one free", regions, free)
	}
}

func TestTimerTicksAndStop(t *testing.T) {
	df := dataflow(receiver("dst", timerInput("tick", 5*time.Millisecond)), receiver("dst2", timerInput("t", 5*time.Millisecond)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	h.spawn("dst2", "receiver", 0)
	a, b := h.reapAsync("dst"), h.reapAsync("dst2")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) >= 5 })
	h.waitLog("dst2", func(l []string) bool { return len(parseInputs(l)) >= 5 })
	h.r.RequestStop("dst")
	h.r.RequestStop("dst2")
	waitErr(t, a, "dst")
	waitErr(t, b, "dst2")
	for _, id := range []string{"dst", "dst2"} {
		lines := h.logLines(id)
		if lines[len(lines)-1] != "STOP MANUAL" {
			t.Fatalf("%s: last event %q, want STOP MANUAL", id, lines[len(lines)-1])
		}
		for _, in := range parseInputs(lines) {
			if in.size != 0 {
				t.Fatalf("%s: timer tick with %d bytes", id, in.size)
			}
		}
	}
}

func TestSlowReceiverBackpressureLosesNothing(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 2, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0, "DP_SLEEP=1ms")
	h.spawn("src", "sender", 0, "DP_COUNT=150", "DP_SIZE=32")
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	checkSequence(t, parseInputs(h.logLines("dst")), 150, 32, false)
	if m := h.r.Metrics()["dst"]; m.Dropped != 0 || m.MessagesIn != 150 {
		t.Fatalf("metrics %+v, want 150 in, 0 dropped", m)
	}
}

func TestSlowReceiverDropOldestCountsDrops(t *testing.T) {
	for _, size := range []int{32, 8192} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 2, config.DropOldest)))
			h := newHarness(t, df)
			h.spawn("dst", "receiver", 0, "DP_SLEEP=2ms")
			h.spawn("src", "sender", 0, "DP_COUNT=300", fmt.Sprintf("DP_SIZE=%d", size))
			dst := h.reapAsync("dst")
			waitErr(t, h.reapAsync("src"), "sender")
			waitErr(t, dst, "receiver")
			ins := parseInputs(h.logLines("dst"))
			m := h.r.Metrics()["dst"]
			if m.Dropped == 0 || int(m.Dropped)+len(ins) != 300 || int(m.MessagesIn) != len(ins) {
				t.Fatalf("received %d, metrics %+v: want drops > 0 and received+dropped = 300", len(ins), m)
			}
			for i := 1; i < len(ins); i++ {
				if ins[i].seq <= ins[i-1].seq || !ins[i].ok {
					t.Fatalf("input %d = %+v after %+v: want increasing, intact", i, ins[i], ins[i-1])
				}
			}
			if ins[len(ins)-1].seq != 299 {
				t.Fatalf("last input seq %d, want the newest (299)", ins[len(ins)-1].seq)
			}
			if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
				t.Fatalf("%d regions, %d samples leaked", regions, samples)
			}
		})
	}
}

// A receiver killed while holding shared payloads: the sender keeps going
// and every region comes back to it.
func TestKillReceiverReclaimsRegions(t *testing.T) {
	df := dataflow(sender("src", "out"),
		receiver("dst", input("in", "src/out", 4, config.DropOldest)),
		receiver("keep", input("in", "src/out", 100, config.Backpressure)))
	h := newHarness(t, df)
	dstProc := h.spawn("dst", "receiver", 0, "DP_RETAIN=1")
	h.spawn("keep", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=200", "DP_SIZE=65536", "DP_INTERVAL=2ms", "DP_WAIT_STOP=1")
	keep := h.reapAsync("keep")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) >= 20 })
	dstProc.cmd.Process.Signal(syscall.SIGKILL)
	err := h.reap("dst", false)
	var ee *exec.ExitError
	if !errorsAs(err, &ee) {
		t.Fatalf("receiver exit: %v, want killed", err)
	}
	h.waitLog("src", func(l []string) bool { return contains(l, "SENT 200") })
	h.waitLog("keep", func(l []string) bool { return len(parseInputs(l)) == 200 })
	h.r.RequestStop("src")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, keep, "keep")
	var regions, free int
	for _, l := range h.logLines("src") {
		fmt.Sscanf(l, "POOL %d %d", &regions, &free)
	}
	if regions == 0 || free < regions-1 {
		t.Fatalf("sender pool after the receiver was killed: %d regions, %d free; want all but the one keep holds free", regions, free)
	}
	checkSequence(t, parseInputs(h.logLines("keep")), 200, 65536, true)
	if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
		t.Fatalf("%d regions, %d samples leaked", regions, samples)
	}
}

func TestKillSenderClosesInputs(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.DropOldest)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	src := h.spawn("src", "sender", 0, "DP_COUNT=100000", "DP_SIZE=8192", "DP_INTERVAL=1ms")
	dst := h.reapAsync("dst")
	h.waitLog("dst", func(l []string) bool { return len(parseInputs(l)) >= 10 })
	src.cmd.Process.Signal(syscall.SIGKILL)
	h.reap("src", false)
	waitErr(t, dst, "receiver")
	lines := h.logLines("dst")
	want := []string{"NODE_FAILED src in", "INPUT_CLOSED in", "ALL_INPUTS_CLOSED "}
	if got := tail(lines, 3); !slices.Equal(got, want) {
		t.Fatalf("receiver ended with %q, want %q", got, want)
	}
	if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
		t.Fatalf("%d regions, %d samples leaked", regions, samples)
	}
}

func TestRestartedSourceIsAnnounced(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 100, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=5", "DP_SIZE=16")
	dst := h.reapAsync("dst")
	if err := h.reap("src", true); err != nil {
		t.Fatal(err)
	}
	h.spawn("src", "sender", 1, "DP_COUNT=5", "DP_SIZE=16", "DP_START=5")
	waitErr(t, h.reapAsync("src"), "restarted sender")
	waitErr(t, dst, "receiver")
	lines := h.logLines("dst")
	checkSequence(t, parseInputs(lines), 10, 16, false)
	i := slices.Index(lines, "NODE_RESTARTED src in")
	if i != 5 {
		t.Fatalf("NODE_RESTARTED at line %d of %q, want right after the first 5 inputs", i, lines)
	}
}

func TestInputTimeoutTripsAndRecovers(t *testing.T) {
	in := input("in", "src/out", 10, config.Backpressure)
	in.InputTimeout = 300 * time.Millisecond
	df := dataflow(sender("src", "out"), receiver("dst", in))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0)
	h.spawn("src", "sender", 0, "DP_COUNT=6", "DP_SIZE=16", "DP_PAUSE_AFTER=2", "DP_PAUSE=1s")
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	want := []string{
		"INPUT in 0 16 true false", "INPUT in 1 16 true false", "INPUT in 2 16 true false",
		"INPUT_CLOSED in", "INPUT_RECOVERED in",
		"INPUT in 3 16 true false", "INPUT in 4 16 true false", "INPUT in 5 16 true false",
		"INPUT_CLOSED in", "ALL_INPUTS_CLOSED ",
	}
	if got := h.logLines("dst"); !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A slow exit of the sender may trip the timeout once more before its
	// outputs close; the node still hears INPUT_CLOSED once.
	if m := h.r.Metrics()["dst"]; m.InputTimeouts < 1 || m.InputTimeouts > 2 {
		t.Fatalf("input timeouts = %d, want 1 (or 2 on a slow machine)", m.InputTimeouts)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	if _, _, err := h.r.PrepareNode("nope", 0); err == nil {
		t.Fatal("PrepareNode accepted an unknown node")
	}
	env, _, err := h.r.PrepareNode("src", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON := strings.TrimPrefix(env[0], node.ConfigEnv+"=")
	t.Setenv(node.ConfigEnv, strings.Replace(cfgJSON, `"secret":"`, `"secret":"x`, 1))
	if _, err := node.Init(); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("wrong secret: err = %v, want a refusal naming the secret", err)
	}
	t.Setenv(node.ConfigEnv, strings.Replace(cfgJSON, `"node_id":"src"`, `"node_id":"other"`, 1))
	if _, err := node.Init(); err == nil || !strings.Contains(err.Error(), "does not run") {
		t.Fatalf("unknown node: err = %v", err)
	}
}

// A node whose output feeds its own backpressure input does not deadlock
// (it would otherwise wait for its own acknowledgements).
func TestSelfLoopBackpressureDoesNotBlock(t *testing.T) {
	loop := sender("loop", "out")
	loop.Inputs = []config.Input{input("in", "loop/out", 1, config.Backpressure)}
	h := newHarness(t, dataflow(loop))
	h.spawn("loop", "sender", 0, "DP_COUNT=50", "DP_SIZE=16")
	if err := waitErr(t, h.reapAsync("loop"), "self-looping node"); err != nil {
		t.Fatal(err)
	}
	if !contains(h.logLines("loop"), "SENT 50") {
		t.Fatal("the node did not send all its messages")
	}
	if m := h.r.Metrics()["loop"]; m.MessagesOut != 50 || m.Dropped == 0 {
		t.Fatalf("metrics %+v, want 50 out and drops counted", m)
	}
}

// A message with "flush": true in its parameters discards the messages
// still queued for that input (not those already handed to the node).
func TestFlushParameterDiscardsQueuedMessages(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 100, config.Backpressure)))
	h := newHarness(t, df)
	h.spawn("dst", "receiver", 0, "DP_SLEEP=50ms")
	h.spawn("src", "sender", 0, "DP_COUNT=40", "DP_SIZE=16", "DP_FLUSH_LAST=1")
	dst := h.reapAsync("dst")
	waitErr(t, h.reapAsync("src"), "sender")
	waitErr(t, dst, "receiver")
	ins := parseInputs(h.logLines("dst"))
	if len(ins) >= 40 || ins[len(ins)-1].seq != 39 {
		t.Fatalf("received %d messages ending with seq %d; want fewer than 40, ending with the flush (39)", len(ins), ins[len(ins)-1].seq)
	}
	for i := 1; i < len(ins); i++ {
		if ins[i].seq <= ins[i-1].seq {
			t.Fatalf("out of order: %+v after %+v", ins[i], ins[i-1])
		}
	}
	if m := h.r.Metrics()["dst"]; m.Dropped != 0 {
		t.Fatalf("flushed messages counted as drops: %+v", m)
	}
}
