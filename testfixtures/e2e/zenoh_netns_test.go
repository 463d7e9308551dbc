//go:build e2e

package e2e

// The cross-machine data plane over a real network link (issue 5's
// acceptance): two network namespaces, adz-a (10.233.0.1/24) and adz-b
// (10.233.0.2/24), joined by one veth pair (adz-va in adz-a, adz-vb in
// adz-b) and nothing else. The coordinator and daemon "a" run in adz-a,
// daemon "b" in adz-b, so daemon b's control connection crosses the same
// link as the data. The sender node is placed on machine a, the receiver
// on machine b; each records the sequence numbers it sent or received in
// a file of the test's directory (the file system is shared across
// namespaces). Loopback is up in both namespaces (the coordinator and
// daemon a talk over 10.233.0.1 inside adz-a). The namespaces are removed
// when the test ends, and leftovers of an earlier run when it starts.
// These tests do not use the multi-host test bed (the package's TestMain
// still brings it up); they need root and iproute2.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/internal/testutil"
	"github.com/adora-rs/adora/runtime/proto"
)

const (
	znNSA, znNSB       = "adz-a", "adz-b"
	znVethA, znVethB   = "adz-va", "adz-vb"
	znAddrA, znAddrB   = "10.233.0.1", "10.233.0.2"
	znCoordPort        = "6013"
	znZenohPort        = "7447"
	znFlow             = "zn-cut"
	znCLITimeout       = 30 * time.Second
	znRegisteredMarker = "registered with coordinator"
)

// znScenario is one run of a dataflow across the link: count messages of
// pad bytes of padding, one every interval, with the link cut for cut;
// the receiver takes delay over each message.
type znScenario struct {
	count    int
	interval time.Duration
	pad      int
	cut      time.Duration
	cutA     bool // cut in adz-a (the sender's side) rather than adz-b
	delay    time.Duration
}

// TestZenohNetnsLinkCut runs a dataflow across two daemons in two network
// namespaces: every message the sender hands over arrives at the
// receiver in order; the veth link is then cut (ip link set down in adz-b)
// for 4 s, shorter than the Zenoh lease, and restored, the flow resumes,
// and whatever the receiver misses is what the dataflow's drop counters
// in `adora top --once` say.
//
// ADORA_E2E_ZN_CUT (a duration), ADORA_E2E_ZN_PAD (bytes of padding per
// message), ADORA_E2E_ZN_COUNT and ADORA_E2E_ZN_CUT_SIDE=a (cut the link
// in adz-a, the sender's side) change the scenario, to explore the loss
// accounting beyond the default run (for example a cut longer than the
// 10 s lease).
func TestZenohNetnsLinkCut(t *testing.T) {
	sc := znScenario{count: 600, interval: 20 * time.Millisecond, cut: 4 * time.Second}
	if v := os.Getenv("ADORA_E2E_ZN_CUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("ADORA_E2E_ZN_CUT=%q: want a positive duration such as 14s", v)
		}
		sc.cut = d
	}
	for _, o := range []struct {
		env string
		to  *int
	}{{"ADORA_E2E_ZN_PAD", &sc.pad}, {"ADORA_E2E_ZN_COUNT", &sc.count}} {
		if v := os.Getenv(o.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("%s=%q: want a number", o.env, v)
			}
			*o.to = n
		}
	}
	switch v := os.Getenv("ADORA_E2E_ZN_CUT_SIDE"); v {
	case "", "b":
	case "a":
		sc.cutA = true
	default:
		t.Fatalf("ADORA_E2E_ZN_CUT_SIDE=%q: want a or b", v)
	}
	if sc.count < 200 {
		t.Fatalf("ADORA_E2E_ZN_COUNT=%d: want at least 200 (100 pass before the cut)", sc.count)
	}
	znLinkCut(t, sc)
}

// TestZenohNetnsLinkCutPastLease cuts the link for 14 s, longer than the
// 10 s Zenoh lease: what the sender's socket held when the link broke is
// lost (the receiving daemon counts the gap in the sequence numbers
// against the receiver), and what the sender publishes after the lease
// expired, with no link up, is counted against the sender. Both are
// non-zero and, with nothing else, add up to what the receiver misses.
func TestZenohNetnsLinkCutPastLease(t *testing.T) {
	missing, drops := znLinkCut(t, znScenario{count: 1200, interval: 20 * time.Millisecond, cut: 14 * time.Second})
	if len(missing) == 0 {
		t.Fatal("nothing lost across a cut longer than the lease: the cut proves nothing")
	}
	if drops["receiver"] == 0 {
		t.Errorf("no gap counted against the receiver (drops %v): what the socket held when the link broke went uncounted", drops)
	}
	if drops["sender"] == 0 {
		t.Errorf("nothing counted against the sender (drops %v): publications with no link up went uncounted", drops)
	}
}

// TestZenohNetnsLargeMessages sends 2 MiB messages across the link (each
// fragmented by Zenoh, carried through shared memory on both machines):
// every one arrives whole and in order, and nothing is reported lost.
func TestZenohNetnsLargeMessages(t *testing.T) {
	const count = 100
	x := znCluster(t)
	sentRec, recvRec := x.startFlow(znScenario{count: count, interval: 100 * time.Millisecond, pad: 2 << 20})
	sent, got := znSettle(t, sentRec, recvRec, count)
	missing := znMissing(sent, got)
	t.Logf("sent %d messages of 2 MiB, received %d, missing %d %s", len(sent), len(got), len(missing), znRanges(missing))
	if len(missing) > 0 {
		t.Errorf("messages lost on a healthy link: %s", znRanges(missing))
	}
	x.checkLossReported(missing)
	if out, err := x.cli(znNSA, "stop", "--grace-duration", "5s", znFlow); err != nil {
		t.Errorf("adora stop: %v\n%s", err, out)
	}
}

// TestZenohNetnsSlowReceiver: a receiver five times slower than the
// sender, with a backpressure input, across the link. The 256 KiB
// messages outrun what the sockets can buffer, so the backpressure
// reaches the sender; nothing is lost, and the Zenoh link between the
// daemons stays up (no write times out).
func TestZenohNetnsSlowReceiver(t *testing.T) {
	const count = 120
	x := znCluster(t)
	started := time.Now()
	sentRec, recvRec := x.startFlow(znScenario{count: count, interval: 10 * time.Millisecond, pad: 256 << 10, delay: 50 * time.Millisecond})
	sent, got := znSettle(t, sentRec, recvRec, count)
	missing := znMissing(sent, got)
	t.Logf("sent %d messages of 256 KiB in %v to a receiver taking 50 ms each; received %d, missing %d %s",
		len(sent), time.Since(started).Round(time.Millisecond), len(got), len(missing), znRanges(missing))
	if len(missing) > 0 {
		t.Errorf("a slow receiver lost messages: %s", znRanges(missing))
	}
	x.checkLossReported(missing)
	for _, p := range x.procs {
		// Two daemons dialling each other at once keep one link and close
		// the other: "replaced by a preferred link" on one side, CLOSE
		// with reason 4 (max links) on the other. That is no failure.
		for _, l := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(l, "zenoh: link closed") && !strings.Contains(l, "replaced by a preferred link") &&
				!strings.Contains(l, "peer closed the link (reason 4)") {
				t.Errorf("%s: a Zenoh link closed under backpressure: %s", p.name, l)
			}
		}
	}
	if out, err := x.cli(znNSA, "stop", "--grace-duration", "5s", znFlow); err != nil {
		t.Errorf("adora stop: %v\n%s", err, out)
	}
}

// znLinkCut runs scenario sc and returns the messages the receiver
// misses and the drops adora top shows by node.
func znLinkCut(t *testing.T, sc znScenario) (missing []int, drops map[string]uint64) {
	x := znCluster(t)
	sentRec, recvRec := x.startFlow(sc)

	// Before the cut: a steady flow, complete and in order.
	znWait(t, 60*time.Second, "100 messages at the receiver", func() (bool, string) {
		r := znRecord(t, recvRec)
		return len(r) >= 100, fmt.Sprintf("received %d, sent %d", len(r), len(znRecord(t, sentRec)))
	})
	before := znRecord(t, recvRec)
	znCheckOrder(t, "before the cut", before)
	for i, v := range before {
		if v != i+1 {
			t.Fatalf("before the cut: message %d is %d; the first messages must all arrive (received %v)", i+1, v, znHead(before))
		}
	}

	// The cut. Nothing the sender hands over after it may arrive while
	// the link is down (this proves the cut is real); the sender's record
	// is read half a second into the cut, so that a message published
	// just before it is surely recorded.
	ns, veth := znNSB, znVethB
	if sc.cutA {
		ns, veth = znNSA, znVethA
	}
	cutAt := time.Now()
	znIP(t, "-n", ns, "link", "set", veth, "down")
	time.Sleep(500 * time.Millisecond)
	sentEarly := len(znRecord(t, sentRec))
	time.Sleep(sc.cut - time.Since(cutAt))
	got := znRecord(t, recvRec)
	atRestore := len(got)
	sentAtRestore := len(znRecord(t, sentRec))
	znIP(t, "-n", ns, "link", "set", veth, "up")
	restoredAt := time.Now()
	t.Logf("%s down %v: received %d before the cut, %d at restore; the sender had handed over %d half a second into the cut, %d at restore",
		veth, restoredAt.Sub(cutAt).Round(time.Millisecond), len(before), atRestore, sentEarly, sentAtRestore)
	if atRestore > 0 && got[atRestore-1] > sentEarly {
		t.Errorf("message %d arrived while the link was down, though the sender had handed over only %d messages half a second into the cut",
			got[atRestore-1], sentEarly)
	}
	if sc.pad == 0 && sentAtRestore <= sentEarly { // small messages never fill the socket buffers in a few seconds
		t.Errorf("the sender stopped during the cut (%d messages half a second in, %d at restore): the cut proves nothing", sentEarly, sentAtRestore)
	}

	// The flow resumes, and the sender finishes.
	var resumedAfter time.Duration
	znWait(t, 60*time.Second, "the receiver to get messages again after the restore", func() (bool, string) {
		n := len(znRecord(t, recvRec))
		if n > atRestore && resumedAfter == 0 {
			resumedAfter = time.Since(restoredAt)
		}
		return n > atRestore, fmt.Sprintf("received %d (as at restore)", n)
	})
	sent, got := znSettle(t, sentRec, recvRec, sc.count)
	missing = znMissing(sent, got)
	t.Logf("sent %d, received %d, missing %d %s; flow resumed %v after the restore",
		len(sent), len(got), len(missing), znRanges(missing), resumedAfter.Round(time.Millisecond))
	drops = x.checkLossReported(missing)
	if len(missing) > 0 && got[len(got)-1] != sc.count {
		t.Errorf("the flow did not run to its end: the last message received is %d of %d", got[len(got)-1], sc.count)
	}

	if out, err := x.cli(znNSA, "stop", "--grace-duration", "5s", znFlow); err != nil {
		t.Errorf("adora stop: %v\n%s", err, out)
	}
	return missing, drops
}

// znCluster makes the namespaces and starts the coordinator and daemon a
// in adz-a and daemon b in adz-b, under a private ADORA_HOME.
func znCluster(t *testing.T) *znEnv {
	t.Helper()
	x := &znEnv{t: t, bin: znAdoraBinary(t), dir: t.TempDir(), home: t.TempDir()}
	x.sender, x.receiver = znNodes(t)
	znNetnsUp(t)
	// The daemons start first: they find no ADORA_HOME/token yet and read
	// it again at each connection attempt, so they get in once the
	// coordinator has written it (a daemon that read it once would be
	// refused, 401, forever).
	da := x.start(znNSA, "daemon a", "daemon", "--machine-id", "a",
		"--coordinator-addr", znAddrA, "--coordinator-port", znCoordPort,
		"--zenoh-listen", "tcp/"+znAddrA+":"+znZenohPort)
	db := x.start(znNSB, "daemon b", "daemon", "--machine-id", "b",
		"--coordinator-addr", znAddrA, "--coordinator-port", znCoordPort,
		"--zenoh-listen", "tcp/"+znAddrB+":"+znZenohPort)
	co := x.start(znNSA, "coordinator", "coordinator", "--interface", znAddrA, "--port", znCoordPort, "--store", "memory")
	znWait(t, 60*time.Second, "the coordinator to listen", func() (bool, string) {
		_, err := os.Stat(filepath.Join(x.home, "token"))
		return err == nil && co.count("Listening on") > 0, "no token file or listening line yet"
	})
	znWait(t, 60*time.Second, "both daemons registered", func() (bool, string) {
		return da.count(znRegisteredMarker) > 0 && db.count(znRegisteredMarker) > 0,
			fmt.Sprintf("a registered %d times, b %d", da.count(znRegisteredMarker), db.count(znRegisteredMarker))
	})
	return x
}

// startFlow starts dataflow znFlow: the sender on machine a, the receiver
// on machine b. It returns the paths of their records.
func (x *znEnv) startFlow(sc znScenario) (sentRec, recvRec string) {
	t := x.t
	t.Helper()
	sentRec, recvRec = filepath.Join(x.dir, "sent"), filepath.Join(x.dir, "received")
	flow := filepath.Join(x.dir, "flow.yml")
	src := fmt.Sprintf(`nodes:
  - id: sender
    _unstable_deploy:
      machine: a
    path: %s
    env:
      COUNT: "%d"
      INTERVAL: %s
      PAD: "%d"
      RECORD: %s
    outputs:
      - seq
  - id: receiver
    _unstable_deploy:
      machine: b
    path: %s
    env:
      PAD: "%d"
      DELAY: %s
      RECORD: %s
    inputs:
      seq:
        source: sender/seq
        queue_policy: backpressure
`, x.sender, sc.count, sc.interval, sc.pad, sentRec, x.receiver, sc.pad, sc.delay, recvRec)
	if err := os.WriteFile(flow, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := x.cli(znNSA, "start", "--name", znFlow, "--detach", flow); err != nil {
		t.Fatalf("adora start: %v\n%s", err, out)
	}
	return sentRec, recvRec
}

// znSettle waits for the sender to hand over all count messages, then for
// the receiver to settle (it has the last message, or nothing new came
// for 10 s), and returns both records, checked to be in order.
func znSettle(t *testing.T, sentRec, recvRec string, count int) (sent, got []int) {
	t.Helper()
	znWait(t, 90*time.Second, "the sender to hand over every message", func() (bool, string) {
		n := len(znRecord(t, sentRec))
		return n >= count, fmt.Sprintf("sent %d of %d", n, count)
	})
	sent = znRecord(t, sentRec)
	znCheckOrder(t, "sender record", sent)
	if len(sent) != count || sent[len(sent)-1] != count {
		t.Fatalf("sender record: %d entries ending with %v, want 1..%d", len(sent), znTail(sent), count)
	}
	last, lastChange := -1, time.Now()
	znWait(t, 60*time.Second, "the receiver to settle", func() (bool, string) {
		got = znRecord(t, recvRec)
		if len(got) != last {
			last, lastChange = len(got), time.Now()
		}
		done := len(got) > 0 && got[len(got)-1] == count
		return done || time.Since(lastChange) > 10*time.Second, fmt.Sprintf("received %d", len(got))
	})
	znCheckOrder(t, "receiver record", got)
	return sent, got
}

// checkLossReported checks that the dataflow's drop counters in adora top
// (the sender's count publications no remote receiver was subscribed to,
// the receiver's count input-queue drops) add up to the messages the
// receiver misses, and that the nodes run where they were placed. It
// returns the drops by node. Daemons report every 2 s; this gives them
// several rounds.
func (x *znEnv) checkLossReported(missing []int) map[string]uint64 {
	t := x.t
	t.Helper()
	var nodes map[string]proto.NodeMetric
	var total uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		nodes = x.top(znFlow)
		total = 0
		for _, n := range nodes {
			total += n.Drops
		}
		if total == uint64(len(missing)) && len(nodes) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	drops := map[string]uint64{}
	for id, n := range nodes {
		drops[id] = n.Drops
	}
	t.Logf("adora top --once: drops %v (total %d)", drops, total)
	if nodes["sender"].MachineID != "a" || nodes["receiver"].MachineID != "b" {
		t.Fatalf("adora top --once lists %+v for dataflow %s, want the sender on machine a and the receiver on b", nodes, znFlow)
	}
	if total != uint64(len(missing)) {
		t.Errorf("loss not reported: the receiver misses %d messages %s, but adora top shows %d drops %v",
			len(missing), znRanges(missing), total, drops)
	}
	return drops
}

// znEnv runs adora processes in the namespaces under one ADORA_HOME.
type znEnv struct {
	t                *testing.T
	bin              string
	home             string
	dir              string // dataflow file and node records
	sender, receiver string // node programs
	procs            []*znProc
}

// znProc is a long-running adora process of a test.
type znProc struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

func (p *znProc) count(s string) int { return p.out.Count(s) }

func (x *znEnv) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ADORA_") {
			env = append(env, kv)
		}
	}
	return append(env, "ADORA_HOME="+x.home)
}

// start runs adora args in namespace ns until the test ends: SIGTERM at
// cleanup (the daemons stop their nodes), SIGKILL if that takes over 15 s.
func (x *znEnv) start(ns, name string, args ...string) *znProc {
	x.t.Helper()
	p := &znProc{name: name, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, x.bin}, args...)...)
	p.cmd.Env = x.environ()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		x.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	x.procs = append(x.procs, p)
	x.t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if x.t.Failed() {
			x.t.Logf("---- %s output ----\n%s", p.name, p.out.String())
		}
	})
	return p
}

// cli runs an adora command against the coordinator from namespace ns.
// Options go before the positional arguments.
func (x *znEnv) cli(ns, sub string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), znCLITimeout)
	defer cancel()
	args = append([]string{sub, "--coordinator-addr", znAddrA, "--coordinator-port", znCoordPort}, args...)
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, x.bin}, args...)...)
	cmd.Env = x.environ()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("adora %s: timed out after %v", args[0], znCLITimeout)
	}
	return string(out), err
}

// top reads `adora top --once` and returns the metrics of the nodes of
// dataflow name, by node id.
func (x *znEnv) top(name string) map[string]proto.NodeMetric {
	x.t.Helper()
	out, err := x.cli(znNSA, "top", "--once")
	if err != nil {
		x.t.Fatalf("adora top --once: %v\n%s", err, out)
	}
	var top proto.TopReply
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		x.t.Fatalf("adora top --once: %v\n%s", err, out)
	}
	nodes := map[string]proto.NodeMetric{}
	for _, n := range top.Nodes {
		if n.DataflowName == name {
			nodes[n.NodeID] = n
		}
	}
	return nodes
}

// znNetnsUp makes the two namespaces and their link, removing what a
// previous run left first, and removes them when the test ends.
func znNetnsUp(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("the netns tests need iproute2 (ip): apt-get install iproute2")
	}
	znNetnsDown()
	t.Cleanup(znNetnsDown)
	for _, args := range [][]string{
		{"netns", "add", znNSA},
		{"netns", "add", znNSB},
		{"link", "add", znVethA, "netns", znNSA, "type", "veth", "peer", "name", znVethB, "netns", znNSB},
		{"-n", znNSA, "addr", "add", znAddrA + "/24", "dev", znVethA},
		{"-n", znNSB, "addr", "add", znAddrB + "/24", "dev", znVethB},
		{"-n", znNSA, "link", "set", "lo", "up"}, // the coordinator and daemon a talk over 10.233.0.1 locally
		{"-n", znNSB, "link", "set", "lo", "up"},
		{"-n", znNSA, "link", "set", znVethA, "up"},
		{"-n", znNSB, "link", "set", znVethB, "up"},
	} {
		znIP(t, args...)
	}
}

// znNetnsDown deletes the namespaces (which deletes the veth pair with
// them) and a veth end a failed setup may have left in this namespace.
func znNetnsDown() {
	for _, ns := range []string{znNSA, znNSB} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", znVethA).Run()
}

func znIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// znAdoraBinary builds adora into the test's directory, or returns
// $ADORA_E2E_BIN.
func znAdoraBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ADORA_E2E_BIN"); p != "" {
		return p
	}
	return znBuild(t, "adora", ".")
}

// znNodes builds the sender and receiver nodes.
func znNodes(t *testing.T) (sender, receiver string) {
	t.Helper()
	return znBuild(t, "sender", "./testfixtures/e2e/testdata/zenohnetns/sender"),
		znBuild(t, "receiver", "./testfixtures/e2e/testdata/zenohnetns/receiver")
}

// znBuild builds the package pkg of this module (relative to its root).
func znBuild(t *testing.T, name, pkg string) string {
	t.Helper()
	root, err := znModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// znModuleRoot is the nearest directory above the working directory that
// holds go.mod.
func znModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("no go.mod above the working directory")
		}
		d = up
	}
}

// znRecord reads a node's record: one number per complete line (a line
// being written is left for the next read).
func znRecord(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("%s: line %d: %v", path, len(out)+1, err)
		}
		out = append(out, v)
	}
	return out
}

// znCheckOrder fails unless seq is strictly increasing from 1 on.
func znCheckOrder(t *testing.T, what string, seq []int) {
	t.Helper()
	prev := 0
	for i, v := range seq {
		if v <= prev {
			t.Fatalf("%s: entry %d is %d after %d: out of order or duplicated", what, i+1, v, prev)
		}
		prev = v
	}
}

// znMissing lists the numbers of sent not in got (both increasing).
func znMissing(sent, got []int) []int {
	have := make(map[int]bool, len(got))
	for _, v := range got {
		have[v] = true
	}
	var out []int
	for _, v := range sent {
		if !have[v] {
			out = append(out, v)
		}
	}
	return out
}

// znRanges renders increasing numbers as ranges: [5-9 12].
func znRanges(v []int) string {
	var parts []string
	for i := 0; i < len(v); {
		j := i
		for j+1 < len(v) && v[j+1] == v[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(v[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", v[i], v[j]))
		}
		i = j + 1
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func znHead(v []int) []int { return v[:min(len(v), 10)] }
func znTail(v []int) []int { return v[max(len(v)-10, 0):] }

// znWait polls cond every 200 ms until it holds; on timeout the test
// fails with what cond last said.
func znWait(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
