package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
	"github.com/adora-rs/adora/runtime/supervisor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCoordinator speaks the daemon endpoint of the protocol and records
// what daemons send.
type fakeCoordinator struct {
	t         *testing.T
	srv       *httptest.Server
	refuse    string
	artifacts map[string][]byte // path -> body

	down      atomic.Bool            // refuse connections (503) while set
	wantToken atomic.Pointer[string] // when set, connections without this bearer token get 401

	mu        sync.Mutex
	conns     []*wsconn.Conn
	registers chan proto.Register
	events    chan *proto.Envelope
}

func newFakeCoordinator(t *testing.T) *fakeCoordinator {
	fc := &fakeCoordinator{t: t, registers: make(chan proto.Register, 16), events: make(chan *proto.Envelope, 4096), artifacts: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc(proto.PathDaemon, fc.serveWS)
	mux.HandleFunc(proto.PathArtifacts, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sekret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		b, ok := fc.artifacts[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	fc.srv = httptest.NewServer(mux)
	t.Cleanup(fc.close)
	return fc
}

func (fc *fakeCoordinator) serveWS(w http.ResponseWriter, r *http.Request) {
	if fc.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if tok := fc.wantToken.Load(); tok != nil && r.Header.Get("Authorization") != "Bearer "+*tok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if _, err := wsconn.ServerHello(ws, proto.RoleDaemon, 5*time.Second); err != nil {
		return
	}
	c := wsconn.Start(ws, fc.handle, wsconn.Options{})
	fc.track(c)
}

// track records c once (the register handler may run before serveWS
// returns from wsconn.Start).
func (fc *fakeCoordinator) track(c *wsconn.Conn) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for _, have := range fc.conns {
		if have == c {
			return
		}
	}
	fc.conns = append(fc.conns, c)
}

func (fc *fakeCoordinator) handle(c *wsconn.Conn, e *proto.Envelope) {
	if e.Type == proto.TypeRegister {
		var r proto.Register
		e.Into(&r)
		fc.track(c)
		fc.registers <- r
		if fc.refuse != "" {
			c.Reply(context.Background(), e, "", nil, errors.New(fc.refuse))
			return
		}
		c.Reply(context.Background(), e, proto.TypeRegisterOK, proto.RegisterOK{DaemonID: r.DaemonUUID}, nil)
		return
	}
	fc.events <- e
}

func (fc *fakeCoordinator) endpoint() wsconn.Endpoint {
	u, _ := url.Parse(fc.srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return wsconn.Endpoint{Addr: u.Hostname(), Port: port, Token: "sekret"}
}

// conn returns the latest daemon connection.
func (fc *fakeCoordinator) conn() *wsconn.Conn {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.conns[len(fc.conns)-1]
}

// kick drops every daemon connection, as a dying coordinator would.
func (fc *fakeCoordinator) kick() {
	fc.mu.Lock()
	conns := fc.conns
	fc.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (fc *fakeCoordinator) close() {
	fc.kick()
	fc.srv.CloseClientConnections()
	fc.srv.Close()
}

func (fc *fakeCoordinator) waitRegister(t *testing.T) proto.Register {
	t.Helper()
	select {
	case r := <-fc.registers:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no registration")
		return proto.Register{}
	}
}

// waitEvent returns the next event of type typ for which match (if set)
// is true, skipping others.
func waitEvent[T any](t *testing.T, fc *fakeCoordinator, typ proto.Type, match func(T) bool) T {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case e := <-fc.events:
			if e.Type != typ {
				continue
			}
			var v T
			if err := e.Into(&v); err != nil {
				t.Fatal(err)
			}
			if match == nil || match(v) {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %s event", typ)
			return zero
		}
	}
}

type runningDaemon struct {
	d      *Daemon
	cancel context.CancelFunc
	errCh  chan error
}

func startDaemon(t *testing.T, fc *fakeCoordinator, home, machine string) *runningDaemon {
	t.Helper()
	return startDaemonWith(t, fc, home, machine, nil)
}

// startDaemonWith is startDaemon with tokens from tokenSource.
func startDaemonWith(t *testing.T, fc *fakeCoordinator, home, machine string, tokenSource func() (string, error)) *runningDaemon {
	t.Helper()
	d, err := New(Config{
		MachineID: machine, Labels: map[string]string{"role": "test"},
		Coordinator: fc.endpoint(), Home: home, TokenSource: tokenSource,
		HeartbeatInterval: 100 * time.Millisecond, MetricsInterval: 100 * time.Millisecond,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rd := &runningDaemon{d: d, cancel: cancel, errCh: make(chan error, 1)}
	go func() { rd.errCh <- d.Run(ctx) }()
	t.Cleanup(func() { rd.stop(t) })
	return rd
}

func (rd *runningDaemon) stop(t *testing.T) error {
	rd.cancel()
	select {
	case err := <-rd.errCh:
		rd.errCh <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
		return nil
	}
}

func shDataflow(nodes map[string]string) config.Dataflow {
	var df config.Dataflow
	for id, script := range nodes {
		df.Nodes = append(df.Nodes, config.Node{ID: id, Path: "/bin/sh", Args: []string{"-c", script}})
	}
	return df
}

func spawnMsg(df config.Dataflow, nodes ...string) proto.Spawn {
	return proto.Spawn{DataflowID: uuid.NewString(), Name: "test", Dataflow: df, Nodes: nodes}
}

func request(t *testing.T, c *wsconn.Conn, typ proto.Type, in, out any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Request(ctx, typ, in, out)
}

func TestLoadIdentityIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "identity")
	a, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadIdentity(path)
	if err != nil || a != b {
		t.Fatalf("second load %q, %v; first %q", b, err, a)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	os.WriteFile(path, []byte(a+"\n"), 0o600)
	if c, err := LoadIdentity(path); err != nil || c != a {
		t.Fatalf("bare uuid: %q, %v", c, err)
	}
	os.WriteFile(path, []byte("{garbage"), 0o600)
	if _, err := LoadIdentity(path); err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("corrupt identity: %v", err)
	}
}

func TestDaemonSpawnLogsStop(t *testing.T) {
	fc := newFakeCoordinator(t)
	home := t.TempDir()
	rd := startDaemon(t, fc, home, "robot")
	reg := fc.waitRegister(t)
	if reg.MachineID != "robot" || reg.Labels["role"] != "test" || reg.DaemonUUID != rd.d.ID() {
		t.Fatalf("register %+v", reg)
	}
	rep := waitEvent[proto.StatusReport](t, fc, proto.TypeStatusReport, nil)
	if len(rep.Dataflows) != 0 {
		t.Fatalf("fresh daemon reports %+v", rep)
	}
	df := shDataflow(map[string]string{"talker": `echo "hello from $ADORA_NODE_ID $GREETING"; exec sleep 30`})
	df.Env = map[string]string{"GREETING": "hi"}
	m := spawnMsg(df, "talker")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fc, proto.TypeLog, func(l proto.Log) bool {
		for _, line := range l.Lines {
			if line.NodeID == "talker" && line.Stream == proto.Stdout && line.Line == "hello from talker hi" && line.DataflowID == m.DataflowID {
				return true
			}
		}
		return false
	})
	met := waitEvent(t, fc, proto.TypeNodeMetrics, func(nm proto.NodeMetrics) bool {
		return len(nm.Metrics) == 1 && nm.Metrics[0].MemoryBytes > 0
	})
	if met.Metrics[0].NodeID != "talker" || met.Metrics[0].PID == 0 || met.Metrics[0].Status != proto.NodeRunning {
		t.Fatalf("metrics %+v", met)
	}
	waitEvent[proto.Heartbeat](t, fc, proto.TypeHeartbeat, nil)

	var logs proto.LogsReply
	if err := request(t, fc.conn(), proto.TypeLogs, proto.Logs{Dataflow: m.DataflowID, Node: "talker"}, &logs); err != nil {
		t.Fatal(err)
	}
	if !hasLine(logs.Lines, proto.Stdout, "hello from talker hi") || !hasLine(logs.Lines, proto.System, "spawned") {
		t.Fatalf("logs %+v", logs.Lines)
	}
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err == nil {
		t.Fatal("second spawn of the same dataflow accepted")
	}
	var stopped proto.StopReply
	if err := request(t, fc.conn(), proto.TypeStop, proto.Stop{DataflowID: m.DataflowID, Grace: 200 * time.Millisecond}, &stopped); err != nil {
		t.Fatal(err)
	}
	if stopped.Status != proto.FlowStopped || len(stopped.Nodes) != 1 || stopped.Nodes[0].Status != proto.NodeStopped {
		t.Fatalf("stop reply %+v", stopped)
	}
	fin := waitEvent[proto.DataflowFinished](t, fc, proto.TypeDataflowFinished, nil)
	if fin.DataflowID != m.DataflowID || fin.Failed {
		t.Fatalf("finished %+v", fin)
	}
	if err := rd.stop(t); err != nil {
		t.Fatal(err)
	}
}

func hasLine(lines []proto.LogLine, s proto.Stream, prefix string) bool {
	for _, l := range lines {
		if l.Stream == s && strings.HasPrefix(l.Line, prefix) {
			return true
		}
	}
	return false
}

func TestDaemonKeepsNodesWhileCoordinatorIsGone(t *testing.T) {
	fc := newFakeCoordinator(t)
	rd := startDaemon(t, fc, t.TempDir(), "")
	first := fc.waitRegister(t)
	waitEvent[proto.StatusReport](t, fc, proto.TypeStatusReport, nil)
	m := spawnMsg(shDataflow(map[string]string{"worker": "exec sleep 30"}), "worker")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	st := waitEvent(t, fc, proto.TypeNodeStatus, func(e proto.NodeStatusEvent) bool { return e.Node.Status == proto.NodeRunning })
	pid := st.Node.PID

	fc.kick() // the coordinator goes away; the daemon retries
	second := fc.waitRegister(t)
	if second.DaemonUUID != first.DaemonUUID {
		t.Fatalf("identity changed across reconnect: %s -> %s", first.DaemonUUID, second.DaemonUUID)
	}
	rep := waitEvent(t, fc, proto.TypeStatusReport, func(r proto.StatusReport) bool { return len(r.Dataflows) > 0 })
	if rep.Dataflows[0].DataflowID != m.DataflowID || len(rep.Dataflows[0].Nodes) != 1 || rep.Dataflows[0].Nodes[0].PID != pid {
		t.Fatalf("report after reconnect %+v, want pid %d", rep, pid)
	}
	// A recovery spawn of what already runs changes nothing.
	m.Recovery = true
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	if err := rd.stop(t); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Fatalf("node %d still runs after the daemon stopped", pid)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}

func TestDaemonRefusedExits(t *testing.T) {
	fc := newFakeCoordinator(t)
	fc.refuse = `machine id "robot" is already registered by a live daemon`
	rd := startDaemon(t, fc, t.TempDir(), "robot")
	select {
	case err := <-rd.errCh:
		rd.errCh <- err
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "already registered") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("refused daemon kept running")
	}
}

func TestDaemonCrashingNodeReportsFailure(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	df := shDataflow(map[string]string{"crasher": "echo boom >&2; exit 7"})
	df.Nodes[0].Restart = config.RestartPolicy{Mode: config.RestartOnFailure, MaxRestarts: 3}
	m := spawnMsg(df, "crasher")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	fin := waitEvent[proto.DataflowFinished](t, fc, proto.TypeDataflowFinished, nil)
	if !fin.Failed || len(fin.Nodes) != 1 || fin.Nodes[0].Status != proto.NodeFailed || fin.Nodes[0].Restarts != 3 ||
		!strings.Contains(fin.Error, "crasher: exited with code 7") {
		t.Fatalf("finished %+v", fin)
	}
}

func TestDaemonSpawnErrors(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	df := config.Dataflow{Nodes: []config.Node{
		{ID: "a", Path: "./missing-binary"},
		{ID: "b", Path: "/bin/true", Deploy: config.Deploy{WorkingDir: "/nonexistent/dir"}},
	}}
	err := request(t, fc.conn(), proto.TypeSpawn, spawnMsg(df, "a", "b"), nil)
	if err == nil {
		t.Fatal("spawn of a missing binary succeeded")
	}
	for _, want := range []string{"node a:", "missing-binary", "node b:", "/nonexistent/dir does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestDaemonDestroy(t *testing.T) {
	fc := newFakeCoordinator(t)
	rd := startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	m := spawnMsg(shDataflow(map[string]string{"x": "exec sleep 30"}), "x")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	if err := request(t, fc.conn(), proto.TypeDestroy, proto.Destroy{Grace: 100 * time.Millisecond}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rd.errCh:
		rd.errCh <- err
		if err != nil {
			t.Fatalf("Run after destroy: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not exit after destroy")
	}
}

func TestDaemonFetchesArtifacts(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	body := []byte("#!/bin/sh\necho downloaded-node-ran\n")
	sum := sha256.Sum256(body)
	build := uuid.NewString()
	fc.artifacts[proto.PathArtifacts+build+"/dl"] = body
	df := config.Dataflow{Nodes: []config.Node{{ID: "dl", Path: "./not-here-yet"}}}
	m := spawnMsg(df, "dl")
	m.Artifacts = map[string]proto.Artifact{"dl": {BuildID: build, NodeID: "dl", SHA256: hex.EncodeToString(sum[:])}}
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, fc, proto.TypeLog, func(l proto.Log) bool { return hasLine(l.Lines, proto.Stdout, "downloaded-node-ran") })

	bad := spawnMsg(df, "dl")
	bad.Artifacts = map[string]proto.Artifact{"dl": {BuildID: uuid.NewString(), NodeID: "dl", SHA256: hex.EncodeToString(sum[:])}}
	fc.artifacts[proto.PathArtifacts+bad.Artifacts["dl"].BuildID+"/dl"] = []byte("tampered")
	err := request(t, fc.conn(), proto.TypeSpawn, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered artifact: %v", err)
	}
}

func TestNewRemovesStaleSocketDirs(t *testing.T) {
	home := t.TempDir()
	stale, err := os.MkdirTemp("", "adora-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stale)
	foreign := t.TempDir() // not an adora socket dir: must stay
	recDir := filepath.Join(home, "daemon", "_unnamed", "sockets")
	os.MkdirAll(recDir, 0o700)
	os.WriteFile(filepath.Join(recDir, "flow-a"), []byte(stale+"\n"), 0o600)
	os.WriteFile(filepath.Join(recDir, "flow-b"), []byte(foreign+"\n"), 0o600)
	if _, err := New(Config{Home: home}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale socket dir kept: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("foreign dir removed: %v", err)
	}
	if ents, _ := os.ReadDir(recDir); len(ents) != 0 {
		t.Fatalf("records left: %v", ents)
	}
}

// TestDaemonDeliversResultAfterReconnect: a dataflow that ends while the
// coordinator is away is reported once the daemon is back.
func TestDaemonDeliversResultAfterReconnect(t *testing.T) {
	fc := newFakeCoordinator(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	rd := startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	m := spawnMsg(shDataflow(map[string]string{"waiter": "while [ ! -e " + gate + " ]; do sleep 0.02; done; exit 4"}), "waiter")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	// The coordinator goes away; the node ends meanwhile.
	fc.down.Store(true)
	fc.kick()
	os.WriteFile(gate, nil, 0o644)
	logPath := LogPath(rd.d.StateDir(), m.DataflowID, "waiter")
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, _ := supervisor.TailLog(logPath, 1)
		if len(lines) == 1 && strings.HasPrefix(lines[0].Line, "failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case e := <-fc.events:
		if e.Type == proto.TypeDataflowFinished {
			t.Fatal("result delivered while the coordinator was down")
		}
	default:
	}
	fc.down.Store(false)
	fin := waitEvent(t, fc, proto.TypeDataflowFinished, func(f proto.DataflowFinished) bool { return f.DataflowID == m.DataflowID })
	if !fin.Failed || fin.Nodes[0].ExitCode == nil || *fin.Nodes[0].ExitCode != 4 {
		t.Fatalf("finished %+v", fin)
	}
}

func TestDaemonMetricsCPU(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	m := spawnMsg(shDataflow(map[string]string{"busy": "while :; do :; done"}), "busy")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	got := waitEvent(t, fc, proto.TypeNodeMetrics, func(nm proto.NodeMetrics) bool {
		return len(nm.Metrics) == 1 && nm.Metrics[0].CPUPercent > 5
	})
	if got.Metrics[0].CPUPercent > 100*float64(runtime.NumCPU())+10 {
		t.Fatalf("implausible CPU %v%%", got.Metrics[0].CPUPercent)
	}
	var stopped proto.StopReply
	if err := request(t, fc.conn(), proto.TypeStop, proto.Stop{DataflowID: m.DataflowID, Force: true}, &stopped); err != nil {
		t.Fatal(err)
	}
	st := waitEvent(t, fc, proto.TypeNodeStatus, func(e proto.NodeStatusEvent) bool { return e.Node.Status.Done() })
	if st.Node.Status != proto.NodeStopped {
		t.Fatalf("final node status %s, want stopped", st.Node.Status)
	}
}

func TestReconnectBackoff(t *testing.T) {
	var got []time.Duration
	d := DefaultReconnectMin
	for range 8 {
		got = append(got, d)
		d = nextBackoff(d, DefaultReconnectMax)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff %v, want %v", got, want)
	}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 2000 {
		j := jitter(time.Second)
		lo, hi = min(lo, j), max(hi, j)
	}
	if lo < 800*time.Millisecond || hi > 1200*time.Millisecond || hi-lo < 200*time.Millisecond {
		t.Fatalf("jitter of 1s spans [%v, %v], want within +-20%% and spread", lo, hi)
	}
}

// TestLastLinesBeforeResult: a node's final output reaches the coordinator
// before the dataflow's result, so a follower sees it.
func TestLastLinesBeforeResult(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	m := spawnMsg(shDataflow(map[string]string{"brief": "echo last-words"}), "brief")
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	sawLine := false
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-fc.events:
			switch e.Type {
			case proto.TypeLog:
				var l proto.Log
				e.Into(&l)
				sawLine = sawLine || hasLine(l.Lines, proto.Stdout, "last-words")
			case proto.TypeDataflowFinished:
				if !sawLine {
					t.Fatal("the result overtook the node's last line")
				}
				return
			}
		case <-deadline:
			t.Fatal("no result")
		}
	}
}

func TestLogRepliesFitOneMessage(t *testing.T) {
	for _, fill := range []string{"x", "\x01"} { // plain, and worst-case escaping
		var lines []proto.LogLine
		for i := range 200 {
			lines = append(lines, proto.LogLine{DataflowID: "df", NodeID: "n", Stream: proto.Stdout, Line: strings.Repeat(fill, 20<<10) + strconv.Itoa(i)})
		}
		kept := fitReply(lines)
		if len(kept) == 0 || !strings.HasSuffix(lines[len(lines)-1].Line, "[cut]") || kept[len(kept)-1].NodeID != "n" {
			t.Fatalf("fill %q: kept %d lines", fill, len(kept))
		}
		env, err := proto.NewEnvelope(proto.TypeLogsReply, proto.LogsReply{DataflowID: "df", Lines: kept})
		if err != nil {
			t.Fatal(err)
		}
		env.ReplyTo = 1
		if _, err := proto.Encode(env); err != nil {
			t.Fatalf("fill %q: %v", fill, err)
		}
	}
}

// TestDaemonManyFlowsThenDestroy: concurrent spawns, then one destroy
// stops every node of every dataflow.
func TestDaemonManyFlowsThenDestroy(t *testing.T) {
	fc := newFakeCoordinator(t)
	rd := startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := spawnMsg(shDataflow(map[string]string{"a": "exec sleep 30", "b": "exec sleep 30"}), "a", "b")
			errs <- request(t, fc.conn(), proto.TypeSpawn, m, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var pids []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep := rd.d.statusReport()
		pids = pids[:0]
		for _, df := range rep.Dataflows {
			for _, n := range df.Nodes {
				if n.PID > 0 {
					pids = append(pids, n.PID)
				}
			}
		}
		if len(rep.Dataflows) == 6 && len(pids) == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status report %+v", rep)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := request(t, fc.conn(), proto.TypeDestroy, proto.Destroy{Grace: 100 * time.Millisecond}, nil); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Fatalf("node %d survived destroy", pid)
		}
	}
}

// TestDaemonRereadsToken: a daemon whose token comes from a TokenSource
// (a token file) asks it again before each connection attempt, so one
// started before the coordinator wrote its token registers once the token
// is there, instead of being refused (401) forever.
func TestDaemonRereadsToken(t *testing.T) {
	fc := newFakeCoordinator(t)
	tok := "sekret"
	fc.wantToken.Store(&tok)
	var mu sync.Mutex
	current, calls := "", 0 // no token file yet
	source := func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return current, nil
	}
	rd := startDaemonWith(t, fc, t.TempDir(), "late-token", source)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := calls
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token was asked for %d times in 10 s, want a try per attempt", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-fc.registers:
		t.Fatalf("registered without the token: %+v", r)
	default:
	}
	mu.Lock()
	current = "sekret" // the coordinator wrote its token file
	mu.Unlock()
	if r := fc.waitRegister(t); r.MachineID != "late-token" {
		t.Fatalf("registered %+v", r)
	}
	if err := rd.stop(t); err != nil {
		t.Fatalf("daemon ended with %v", err)
	}
}

// TestDaemonTokenSourceError: a token that cannot be read fails the
// attempt, which is retried; the daemon does not give up.
func TestDaemonTokenSourceError(t *testing.T) {
	fc := newFakeCoordinator(t)
	var failing atomic.Bool
	failing.Store(true)
	var calls atomic.Int32
	source := func() (string, error) {
		calls.Add(1)
		if failing.Load() {
			return "", errors.New("token file /x/token: mode 0644, want 0600")
		}
		return "sekret", nil
	}
	startDaemonWith(t, fc, t.TempDir(), "bad-token", source)
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("a failed token read was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	failing.Store(false)
	fc.waitRegister(t)
}
