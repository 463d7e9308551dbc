//go:build interop

package zenoh

// Interop tests against eclipse-zenoh (pip install eclipse-zenoh==1.10.2),
// run with `make interop`. They fail, not skip, when python3 or the
// zenoh module is missing.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/keyexpr"
)

func requirePythonZenoh(t *testing.T) {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import zenoh; print('ok')").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python3 with eclipse-zenoh is required (pip install eclipse-zenoh==1.10.2): %v\n%s", err, out)
	}
}

type pyProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	openMS float64 // how long zenoh.open took
}

// startPy runs testdata/zpeer.py with spec and waits for READY.
func startPy(t *testing.T, spec map[string]any) *pyProc {
	t.Helper()
	js, _ := json.Marshal(spec)
	cmd := exec.Command("python3", "testdata/zpeer.py", string(js))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pyProc{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("python stderr:\n%s", stderr.String())
		}
	})
	for {
		l := p.next(20 * time.Second)
		if l == `"READY"` {
			return p
		}
		var o struct {
			OpenMS *float64 `json:"open_ms"`
		}
		if json.Unmarshal([]byte(l), &o) != nil || o.OpenMS == nil {
			t.Fatalf("python helper: want READY, got %q\n%s", l, stderr.String())
		}
		p.openMS = *o.OpenMS
	}
}

func (p *pyProc) next(d time.Duration) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("python helper exited")
		}
		return l
	case <-time.After(d):
		p.t.Fatalf("python helper: no output within %v", d)
	}
	return ""
}

type pySample struct {
	Key  string  `json:"key"`
	Len  int     `json:"len"`
	Sha  string  `json:"sha"`
	Head string  `json:"head"`
	Att  *string `json:"att"`
}

func (p *pyProc) sample(d time.Duration) pySample {
	p.t.Helper()
	var s pySample
	l := p.next(d)
	if err := json.Unmarshal([]byte(l), &s); err != nil {
		p.t.Fatalf("python helper line %q: %v", l, err)
	}
	return s
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprintf("tcp/127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)
}

func testPayload(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*31 + j*7)
	}
	return p
}

func sha(p []byte) string { s := sha256.Sum256(p); return hex.EncodeToString(s[:]) }

// pyBody mirrors the payload zpeer.py publishes.
func pyBody(i, size int) []byte {
	head := []byte(fmt.Sprintf("%d:", i))
	n := max(0, size-len(head))
	b := append([]byte{}, head...)
	for j := 0; j < n; j++ {
		b = append(b, byte((j*7+i)%251))
	}
	return b[:max(size, len(head))]
}

func TestInteropPythonPeerPublishesGoSubscribes(t *testing.T) {
	requirePythonZenoh(t)
	for _, tc := range []struct {
		name        string
		count, size int
		goDials     bool
	}{{"small", 50, 16, false}, {"large", 3, 3 << 20, false}, {"small go dials", 50, 16, true}, {"large go dials", 2, 2 << 20, true}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := map[string]any{"mode": "peer", "action": "pub", "key": "interop/py/data", "count": tc.count, "size": tc.size}
			var g *Session
			if tc.goDials {
				ep := freePort(t)
				spec["listen"] = []string{ep}
				g = openT(t, Config{Connect: []string{ep}})
			} else {
				g = openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
				spec["connect"] = g.ListenEndpoints()
			}
			c := newCollector()
			if _, err := g.Subscribe("interop/py/**", c.handle); err != nil {
				t.Fatal(err)
			}
			py := startPy(t, spec)
			waitFor(t, "python link", func() bool { return len(g.Peers()) == 1 })
			time.Sleep(200 * time.Millisecond)
			io.WriteString(py.stdin, "go\n")
			got := c.waitN(t, tc.count)
			for i := 0; i < tc.count; i++ {
				want := pyBody(i, tc.size)
				if got[i].Key != "interop/py/data" || sha(got[i].Payload) != sha(want) || string(got[i].Attachment) != fmt.Sprintf("att-%d", i) {
					t.Fatalf("sample %d: key %q, %d bytes, attachment %q", i, got[i].Key, len(got[i].Payload), got[i].Attachment)
				}
			}
		})
	}
}

func TestInteropGoPublishesPythonPeerSubscribes(t *testing.T) {
	requirePythonZenoh(t)
	for _, tc := range []struct {
		name        string
		count, size int
		goDials     bool
	}{{"small", 50, 16, true}, {"large", 3, 5 << 20, true}, {"small python dials", 50, 16, false}, {"large python dials", 2, 4 << 20, false}} {
		t.Run(tc.name, func(t *testing.T) {
			spec := map[string]any{"mode": "peer", "action": "sub", "key": "interop/go/*"}
			var g *Session
			var py *pyProc
			if tc.goDials {
				ep := freePort(t)
				spec["listen"] = []string{ep}
				py = startPy(t, spec)
				g = openT(t, Config{Connect: []string{ep}})
			} else {
				g = openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
				spec["connect"] = g.ListenEndpoints()
				py = startPy(t, spec)
				// A Zenoh peer that dials us waits for our D_FINAL before
				// open returns; without it, open takes the 500 ms scouting delay.
				t.Logf("python open took %.0f ms", py.openMS)
				if py.openMS > 400 {
					t.Errorf("python open took %.0f ms: our initial D_FINAL was not seen", py.openMS)
				}
			}
			waitFor(t, "python subscriber", func() bool { return remoteSubscribed(g, "interop/go/data") })
			for i := 0; i < tc.count; i++ {
				if err := g.Publish(context.Background(), "interop/go/data", testPayload(i, tc.size), []byte(fmt.Sprintf("att-%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < tc.count; i++ {
				s := py.sample(30 * time.Second)
				if s.Key != "interop/go/data" || s.Len != tc.size || s.Sha != sha(testPayload(i, tc.size)) || s.Att == nil || *s.Att != fmt.Sprintf("att-%d", i) {
					t.Fatalf("python got sample %d = %+v", i, s)
				}
			}
		})
	}
}

// Python decides what to send us from the subscriber we declared: only
// keys our wildcard matches arrive; a DEL is counted, not delivered.
func TestInteropPythonFiltersByOurWildcard(t *testing.T) {
	requirePythonZenoh(t)
	g := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	c, cd := newCollector(), newCollector()
	g.Subscribe("interop/w/*/x", c.handle)
	g.Subscribe("interop/d/cam$*", cd.handle)
	keys := []string{"interop/w/a/x", "interop/w/a/y", "interop/w/a/b/x", "interop/w/@v/x", "interop/w/b/x",
		"interop/d/camera", "interop/d/lidar", "interop/d/cam/x"}
	py := startPy(t, map[string]any{"mode": "peer", "connect": g.ListenEndpoints(), "action": "keys", "keys": keys})
	waitFor(t, "python link", func() bool { return len(g.Peers()) == 1 })
	time.Sleep(200 * time.Millisecond)
	io.WriteString(py.stdin, "go\n")
	if l := py.next(20 * time.Second); l != `"DONE"` {
		t.Fatalf("python: %q", l)
	}
	got := c.samples()
	if len(got) != 2 || got[0].Key != "interop/w/a/x" || got[1].Key != "interop/w/b/x" {
		t.Fatalf("got %v, want interop/w/a/x and interop/w/b/x", got)
	}
	if got := cd.samples(); len(got) != 1 || got[0].Key != "interop/d/camera" {
		t.Fatalf("got %v, want interop/d/camera", got)
	}
	if r := g.Stats().MessagesReceived; r != 4 {
		t.Errorf("received %d PUSH, want 4 (three PUT and the DEL)", r)
	}
}

// A Python get on our session ends at once: we answer RESPONSE_FINAL.
func TestInteropQueryAnsweredAtOnce(t *testing.T) {
	requirePythonZenoh(t)
	g := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	py := startPy(t, map[string]any{"mode": "peer", "connect": g.ListenEndpoints(), "action": "get", "key": "interop/q/**"})
	waitFor(t, "python link", func() bool { return len(g.Peers()) == 1 })
	io.WriteString(py.stdin, "go\n")
	var r struct {
		GetMS   float64 `json:"get_ms"`
		Replies int     `json:"replies"`
	}
	if err := json.Unmarshal([]byte(py.next(20*time.Second)), &r); err != nil {
		t.Fatal(err)
	}
	if r.Replies != 0 || r.GetMS > 2000 {
		t.Fatalf("get took %.0f ms with %d replies, want a prompt empty answer", r.GetMS, r.Replies)
	}
}

func TestInteropThroughRouter(t *testing.T) {
	requirePythonZenoh(t)
	rep := freePort(t)
	startPy(t, map[string]any{"mode": "router", "listen": []string{rep}, "action": "serve"})

	// Go client publishes, Python client subscribes through the router.
	pysub := startPy(t, map[string]any{"mode": "client", "connect": []string{rep}, "action": "sub", "key": "routed/**"})
	g := openT(t, Config{Mode: Client, Connect: []string{rep}})
	waitFor(t, "router link", func() bool { return len(g.Peers()) == 1 })
	if w := g.Peers()[0].WhatAmI; w != "router" {
		t.Fatalf("remote is %s, want router", w)
	}
	// The router learns the python subscription asynchronously; publish
	// until the first sample arrives, then check a numbered run.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.Publish(context.Background(), "routed/probe", []byte("probe"), nil)
		select {
		case l := <-pysub.lines:
			if !strings.Contains(l, "routed/probe") {
				t.Fatalf("unexpected line %q", l)
			}
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no sample through the router")
			}
			continue
		}
		break
	}
	for len(pysub.lines) > 0 {
		<-pysub.lines
	}
	time.Sleep(200 * time.Millisecond)
	for len(pysub.lines) > 0 {
		<-pysub.lines
	}
	for i := 0; i < 10; i++ {
		if err := g.Publish(context.Background(), "routed/go", testPayload(i, 100_000), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		s := pysub.sample(20 * time.Second)
		if s.Key != "routed/go" || s.Sha != sha(testPayload(i, 100_000)) {
			t.Fatalf("python client got %+v", s)
		}
	}

	// The router told us its subscribers: a key nobody wants stays here.
	waitFor(t, "router filtering", func() bool { return !g.Matching("unrouted/x") })
	sent := g.Stats().MessagesSent
	g.Publish(context.Background(), "unrouted/x", []byte("nobody"), nil)
	if n := g.Stats().MessagesSent; n != sent {
		t.Fatalf("a publication nobody subscribed to was sent to the router")
	}
	// A subscriber that appears later is declared to us (future interest).
	late := startPy(t, map[string]any{"mode": "client", "connect": []string{rep}, "action": "sub", "key": "later/*"})
	waitFor(t, "late subscriber known", func() bool { return g.Matching("later/k") })
	probeUntil(t, g, "later/k", late)

	// Python client publishes, Go client subscribes through the router.
	c := newCollector()
	if _, err := g.Subscribe("routed/py", c.handle); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	pypub := startPy(t, map[string]any{"mode": "client", "connect": []string{rep}, "action": "pub", "key": "routed/py", "count": 20, "size": 70_000})
	time.Sleep(300 * time.Millisecond)
	io.WriteString(pypub.stdin, "go\n")
	got := c.waitN(t, 20)
	for i, s := range got {
		if sha(s.Payload) != sha(pyBody(i, 70_000)) {
			t.Fatalf("go client sample %d differs (%d bytes)", i, len(s.Payload))
		}
	}
}

// With gossip on, as in zenoh's default configuration, two Python peers
// that dial us still exchange data with us both ways, and nothing is
// dropped (gossip may make them dial each other too).
func TestInteropWithGossip(t *testing.T) {
	requirePythonZenoh(t)
	g := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	c := newCollector()
	g.Subscribe("gossip/py", c.handle)
	pysub := startPy(t, map[string]any{"mode": "peer", "gossip": true, "connect": g.ListenEndpoints(), "action": "sub", "key": "gossip/go"})
	waitFor(t, "python subscriber", func() bool { return remoteSubscribed(g, "gossip/go") })
	probeUntil(t, g, "gossip/go", pysub)
	pypub := startPy(t, map[string]any{"mode": "peer", "gossip": true, "connect": g.ListenEndpoints(), "action": "pub", "key": "gossip/py", "count": 5, "size": 100})
	waitFor(t, "two python links", func() bool { return len(g.Peers()) == 2 })
	time.Sleep(200 * time.Millisecond)
	io.WriteString(pypub.stdin, "go\n")
	c.waitN(t, 5)
	if d := g.Stats().Dropped; d != 0 {
		t.Errorf("dropped %d", d)
	}
}

// Both sides publish on the same long keys: we declare aliases for them
// on the link, and whatever form Python uses to name them back to us
// (our alias, its own, or the full key) resolves.
func TestInteropSameKeysBothWays(t *testing.T) {
	requirePythonZenoh(t)
	g := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	c := newCollector()
	g.Subscribe("echo/**", c.handle)
	startPy(t, map[string]any{"mode": "peer", "connect": g.ListenEndpoints(), "action": "echo", "key": "echo/**"})
	waitFor(t, "python subscriber", func() bool { return remoteSubscribed(g, "echo/x") })
	keys := []string{"echo/a/long/key/name", "echo/another/long/key", "echo/a/long/key/name"}
	for i, k := range keys {
		if err := g.Publish(context.Background(), k, []byte(fmt.Sprintf("ping%d", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	got := c.waitN(t, 2*len(keys)) // our own pings (local) and python's pongs
	pongs := map[string]string{}
	for _, s := range got {
		if strings.HasPrefix(string(s.Payload), "pong") {
			pongs[string(s.Payload)] = s.Key
		}
	}
	for i, k := range keys {
		if pongs[fmt.Sprintf("pong%d", i)] != k {
			t.Fatalf("pong%d on %q, want %q (all: %v)", i, pongs[fmt.Sprintf("pong%d", i)], k, pongs)
		}
	}
	if d := g.Stats().Dropped; d != 0 {
		t.Errorf("dropped %d", d)
	}
}

// Our peer (not client) through a Python router, and a Python client
// dialling our peer directly (we then stand in for its router).
func TestInteropPeerModeWithRouterAndClient(t *testing.T) {
	requirePythonZenoh(t)
	t.Run("go peer via router", func(t *testing.T) {
		rep := freePort(t)
		startPy(t, map[string]any{"mode": "router", "listen": []string{rep}, "action": "serve"})
		g := openT(t, Config{Connect: []string{rep}})
		c := newCollector()
		g.Subscribe("viarouter/**", c.handle)
		waitFor(t, "router link", func() bool { return len(g.Peers()) == 1 })
		pysub := startPy(t, map[string]any{"mode": "client", "connect": []string{rep}, "action": "sub", "key": "viarouter/go"})
		pypub := startPy(t, map[string]any{"mode": "client", "connect": []string{rep}, "action": "pub", "key": "viarouter/py", "count": 5, "size": 100})
		time.Sleep(300 * time.Millisecond)
		io.WriteString(pypub.stdin, "go\n")
		c.waitN(t, 5)
		probeUntil(t, g, "viarouter/go", pysub)
	})
	t.Run("python client dials go peer", func(t *testing.T) {
		g := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
		c := newCollector()
		g.Subscribe("direct/py", c.handle)
		pysub := startPy(t, map[string]any{"mode": "client", "connect": g.ListenEndpoints(), "action": "sub", "key": "direct/go"})
		waitFor(t, "client subscription", func() bool { return remoteSubscribed(g, "direct/go") })
		if w := g.Peers()[0].WhatAmI; w != "client" {
			t.Fatalf("remote is %s, want client", w)
		}
		probeUntil(t, g, "direct/go", pysub)
		pypub := startPy(t, map[string]any{"mode": "client", "connect": g.ListenEndpoints(), "action": "pub", "key": "direct/py", "count": 5, "size": 200_000})
		time.Sleep(300 * time.Millisecond)
		io.WriteString(pypub.stdin, "go\n")
		got := c.waitN(t, 5)
		for i, s := range got {
			if sha(s.Payload) != sha(pyBody(i, 200_000)) {
				t.Fatalf("sample %d differs", i)
			}
		}
	})
}

// probeUntil publishes on key until py reports a sample on it.
func probeUntil(t *testing.T, g *Session, key string, py *pyProc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.Publish(context.Background(), key, []byte("probe"), nil)
		select {
		case l := <-py.lines:
			if !strings.Contains(l, key) {
				t.Fatalf("unexpected line %q", l)
			}
			return
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("no sample on %s reached python", key)
			}
		}
	}
}

// wildcardTable pairs key expressions whose intersection we compare with
// zenoh's own.
var wildcardTable = [][2]string{
	{"a/b/c", "a/b/c"}, {"a/b/c", "a/b/d"}, {"a/*/c", "a/b/c"}, {"a/*/c", "a/b/b/c"},
	{"a/**/c", "a/c"}, {"a/**/c", "a/b/b/c"}, {"a/**", "a"}, {"a/**", "b/a"},
	{"**", "a/b/c"}, {"*", "a/b"}, {"*", "a"}, {"a/*", "a/**"}, {"*/b", "a/*"},
	{"**/b", "a/**"}, {"a/**/b/**/c", "a/x/b/y/c"}, {"a/**/b/**/c", "a/c/b"},
	{"a/*/**", "a"}, {"a/*/**", "a/b"}, {"@a/b", "*/b"}, {"@a/b", "**"},
	{"@a/b", "@a/*"}, {"a/@b", "a/**"}, {"a/@b", "a/@b"}, {"a/**/@b", "a/x/@b"},
	{"**/@b", "@b"}, {"adora/n/d/output/*/*", "adora/n/d/output/cam/image"},
	{"adora/n/d/output/cam/**", "adora/n/d/output/cam/image/@ack"},
	{"x/*/z/**", "x/y/z"}, {"x/*/z/**", "x/y/q/z"}, {"**/x/**", "a/x"},
	{"a/b$*", "a/bc"}, {"a/b$*", "a/b"}, {"a/b$*", "a/cb"}, {"a/b$*", "a/@b"},
	{"a/$*c", "a/b$*"}, {"a/x$*y", "a/x$*z"}, {"a/$*-l$*", "a/cam-left"},
	{"a/$*-l$*", "a/cam-right"}, {"a/b$*", "a/*"}, {"a/b$*/c", "a/**"},
	{"a/b$*", "**/bx"}, {"cam$*/img", "camera/*"}, {"$*a$*b", "xab"}, {"a$*b", "ba"},
}

func TestInteropWildcardsMatchZenoh(t *testing.T) {
	requirePythonZenoh(t)
	js, _ := json.Marshal(map[string]any{"action": "intersect", "pairs": wildcardTable})
	out, err := exec.Command("python3", "testdata/zpeer.py", string(js)).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var rows [][3]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(rows) != len(wildcardTable) {
		t.Fatalf("got %d rows, want %d", len(rows), len(wildcardTable))
	}
	for _, r := range rows {
		a, b, want := r[0].(string), r[1].(string), r[2].(bool)
		if got := keyexpr.Intersects(a, b); got != want {
			t.Errorf("Intersects(%q, %q) = %v, zenoh says %v", a, b, got, want)
		}
	}
}

// TestInteropBurstBatchedInOrder: many Go publishers at once send
// thousands of small messages to a Python subscriber; they go out batched
// (several PUSH per FRAME) and Zenoh gets each once, in each publisher's
// order.
func TestInteropBurstBatchedInOrder(t *testing.T) {
	requirePythonZenoh(t)
	const publishers, each = 16, 500
	ep := freePort(t)
	py := startPy(t, map[string]any{"mode": "peer", "action": "ordered", "key": "interop/burst/**",
		"listen": []string{ep}, "expect": publishers * each})
	g := openT(t, Config{Connect: []string{ep}})
	waitFor(t, "python subscriber", func() bool { return remoteSubscribed(g, "interop/burst/k0") })
	st0 := g.Stats()
	publishConcurrently(t, g, publishers, each, func(p, i int) (string, []byte) {
		// aliases declared inside batches
		return fmt.Sprintf("interop/burst/key-%d", p%4), seqPayload(p, i, 24+p)
	})
	st := g.Stats()
	sent, writes := st.MessagesSent-st0.MessagesSent, st.Writes-st0.Writes
	t.Logf("%d messages in %d writes", sent, writes)
	if sent != publishers*each || st.Dropped != 0 {
		t.Fatalf("sent %d, dropped %d; want %d sent", sent, st.Dropped, publishers*each)
	}
	if writes >= sent {
		t.Errorf("%d writes for %d messages: no batching", writes, sent)
	}
	var rep struct {
		Count      int     `json:"count"`
		Errors     int     `json:"errors"`
		FirstError *string `json:"first_error"`
	}
	select {
	case l := <-py.lines:
		if err := json.Unmarshal([]byte(l), &rep); err != nil {
			t.Fatalf("python report %q: %v", l, err)
		}
	case <-time.After(30 * time.Second):
		fmt.Fprintln(py.stdin, "report")
		if err := json.Unmarshal([]byte(py.next(5*time.Second)), &rep); err != nil {
			t.Fatal(err)
		}
		t.Fatalf("python received %d of %d samples within 30 s (%d out of order)", rep.Count, publishers*each, rep.Errors)
	}
	if rep.Count != publishers*each || rep.Errors != 0 {
		first := ""
		if rep.FirstError != nil {
			first = *rep.FirstError
		}
		t.Fatalf("python received %d samples, %d out of order (%s); want %d in order", rep.Count, rep.Errors, first, publishers*each)
	}
}
