package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/testutil"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newLogger returns a logger and the buffer that collects its output for
// assertions.
func newLogger() (*slog.Logger, *testutil.SyncBuffer) {
	b := &testutil.SyncBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func dial(t *testing.T, ep wsconn.Endpoint) *client.Client {
	t.Helper()
	c, err := client.Dial(ctxT(t), client.Options{Addr: ep.Addr, Port: ep.Port, Token: ep.Token})
	if err != nil {
		t.Fatalf("client.Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func twoNodeFlow() config.Dataflow {
	return config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Path: "./camera", Deploy: config.Deploy{Machine: "robot"}},
		{ID: "inference", Path: "./inference", Deploy: config.Deploy{Labels: map[string]string{"gpu": "true"}}},
	}}
}

func startReq(name string) proto.Start {
	return proto.Start{Name: name, Descriptor: []byte("nodes: [camera, inference]\n"), Dataflow: twoNodeFlow(), WorkingDir: "/home/me/app"}
}

func TestHealthWithoutTokenAndControlNeedsToken(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{Token: token})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})

	for _, path := range []string{proto.PathHealth, proto.PathHealthAlt} {
		h, err := client.Health(ctxT(t), client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port})
		if err != nil {
			t.Fatalf("health %s: %v", path, err)
		}
		if h.Status != "ok" || h.Protocol != proto.ProtocolVersion || !h.Auth || len(h.Daemons) != 1 || h.Daemons[0].MachineID != "robot" {
			t.Fatalf("health = %+v", h)
		}
		resp, err := http.Get(srv.Endpoint.HTTPURL(path))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s without token: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}

	for _, p := range []string{proto.PathControl, proto.PathDaemon, proto.PathArtifacts + "b/n"} {
		for _, hdr := range []string{"", "Bearer wrong", "Basic " + token} {
			req, _ := http.NewRequest("GET", srv.Endpoint.HTTPURL(p), nil)
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s with %q: %d, want 401", p, hdr, resp.StatusCode)
			}
		}
	}

	ep := srv.Endpoint
	ep.Token = ""
	_, err := client.Dial(ctxT(t), client.Options{Addr: ep.Addr, Port: ep.Port})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Dial without token = %v, want 401", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("error leaks the token")
	}
	c := dial(t, srv.Endpoint)
	if _, err := c.List(ctxT(t), false); err != nil {
		t.Fatalf("List with token: %v", err)
	}
}

func rawDial(t *testing.T, ep wsconn.Endpoint, path string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(ep.URL(path), wsconn.AuthHeader(ep.Token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func TestHelloProtocolMismatch(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	for _, path := range []string{proto.PathControl, proto.PathDaemon} {
		ws := rawDial(t, srv.Endpoint, path)
		role := proto.RoleCLI
		if path == proto.PathDaemon {
			role = proto.RoleDaemon
		}
		e, _ := proto.NewEnvelope(proto.TypeHello, proto.Hello{Protocol: proto.ProtocolVersion + 1, Version: "9.0.0", Role: role})
		e.ID = 1
		b, _ := proto.Encode(e)
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
		_, frame, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		r, err := proto.Decode(frame)
		if err != nil || r.ReplyTo != 1 || !strings.Contains(r.Error, "protocol version mismatch") {
			t.Fatalf("%s: reply %+v, %v", path, r, err)
		}
		if _, _, err := ws.ReadMessage(); err == nil {
			t.Fatalf("%s: connection still open after refused hello", path)
		}
	}
	// A matching hello works.
	ws := rawDial(t, srv.Endpoint, proto.PathControl)
	if _, err := wsconn.ClientHello(ctxT(t), ws, proto.RoleCLI); err != nil {
		t.Fatalf("ClientHello: %v", err)
	}
}

func TestBadOrOversizedMessageClosesOnlyThatConnection(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	good := dial(t, srv.Endpoint)
	d := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u1", MachineID: "robot"})
	for name, frame := range map[string][]byte{
		"bad json":  []byte("{not json"),
		"no type":   []byte(`{"id":5}`),
		"oversized": append(append([]byte(`{"type":"list","id":9,"payload":"`), bytes.Repeat([]byte("x"), proto.MaxMessageSize+10)...), '"', '}'),
	} {
		t.Run(name, func(t *testing.T) {
			ws := rawDial(t, srv.Endpoint, proto.PathControl)
			if _, err := wsconn.ClientHello(ctxT(t), ws, proto.RoleCLI); err != nil {
				t.Fatal(err)
			}
			ws.WriteMessage(websocket.TextMessage, frame)
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "EOF") {
				t.Fatalf("read after %s: %v, want the connection closed", name, err)
			}
			if _, err := good.List(ctxT(t), false); err != nil {
				t.Fatalf("other client broken after %s: %v", name, err)
			}
			select {
			case <-d.Done():
				t.Fatalf("daemon connection closed after %s", name)
			default:
			}
		})
	}
	r, err := good.Daemons(ctxT(t))
	if err != nil || len(r.Daemons) != 1 {
		t.Fatalf("daemons after bad clients: %+v, %v", r, err)
	}
}

func TestDuplicateMachineIDAndLiveDuplicateIdentityRefused(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	first := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "uuid-1", MachineID: "robot"})

	_, err := coordtest.StartDaemon(ctxT(t), srv.Endpoint, coordtest.DaemonConfig{UUID: "uuid-2", MachineID: "robot"})
	if err == nil || !strings.Contains(err.Error(), `machine id "robot" is already in use by daemon uuid-1`) {
		t.Fatalf("second daemon with machine id robot: %v", err)
	}

	// A second live daemon with the same identity is refused too: the
	// first one still answers pings.
	_, err = coordtest.StartDaemon(ctxT(t), srv.Endpoint, coordtest.DaemonConfig{UUID: "uuid-1", MachineID: "robot"})
	if err == nil || !strings.Contains(err.Error(), "two daemons share one identity") {
		t.Fatalf("second live daemon with uuid-1: %v", err)
	}
	select {
	case <-first.Done():
		t.Fatal("the live daemon lost its connection")
	default:
	}
}

func TestSameUUIDReplacesStaleConnection(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{ProbeTimeout: 200 * time.Millisecond})
	// A connection whose daemon is gone: registered, then never reads
	// again, so it never answers a ping.
	stale := rawDaemon(t, srv.Endpoint, "uuid-1")
	again := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "uuid-1", MachineID: "robot"})
	stale.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := stale.ReadMessage(); err != nil {
			break // closed by the coordinator
		}
	}
	c := dial(t, srv.Endpoint)
	time.Sleep(50 * time.Millisecond) // let the stale handler finish
	r, err := c.Daemons(ctxT(t))
	if err != nil || len(r.Daemons) != 1 || r.Daemons[0].ID != "uuid-1" || r.Daemons[0].MachineID != "robot" {
		t.Fatalf("daemons after reconnect: %+v, %v", r, err)
	}
	select {
	case <-again.Done():
		t.Fatal("new connection closed by the stale one's end")
	default:
	}
}

func TestStartPlacesNodesAndStops(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu-server", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)

	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Placements) != 2 || rep.Placements[0].DaemonID != "u-robot" || rep.Placements[1].DaemonID != "u-gpu" {
		t.Fatalf("placements = %+v", rep.Placements)
	}
	if got := robot.Running(rep.DataflowID); len(got) != 1 || got[0] != "camera" {
		t.Fatalf("robot runs %v", got)
	}
	if got := gpu.Running(rep.DataflowID); len(got) != 1 || got[0] != "inference" {
		t.Fatalf("gpu runs %v", got)
	}
	sp := robot.Spawns()[0]
	if sp.WorkingDir != "/home/me/app" || sp.Name != "my-app" || len(sp.Dataflow.Nodes) != 2 || len(sp.Peers) != 2 || sp.Recovery {
		t.Fatalf("spawn = %+v", sp)
	}

	if h, err := client.Health(ctxT(t), client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port}); err != nil || h.ActiveDataflows != 1 || len(h.Daemons) != 2 {
		t.Fatalf("health = %+v, %v", h, err)
	}
	if _, err := c.Start(ctxT(t), startReq("my-app")); err == nil || !strings.Contains(err.Error(), "already a running dataflow with name `my-app`") {
		t.Fatalf("duplicate name: %v", err)
	}
	bad := startReq("other")
	bad.Dataflow.Nodes[0].Deploy.Machine = "robt"
	if _, err := c.Start(ctxT(t), bad); err == nil || !strings.Contains(err.Error(), `no matching daemon for machine id "robt"`) {
		t.Fatalf("unsatisfiable placement: %v", err)
	}

	list, err := c.List(ctxT(t), false)
	if err != nil || len(list) != 1 || list[0].Status != proto.FlowRunning || list[0].Name != "my-app" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	dr, err := c.Daemons(ctxT(t))
	if err != nil || dr.ActiveDataflows != 1 || len(dr.Daemons) != 2 || dr.Daemons[0].MachineID != "gpu-server" || dr.Daemons[0].Labels["gpu"] != "true" {
		t.Fatalf("daemons = %+v, %v", dr, err)
	}

	st, err := c.Stop(ctxT(t), "my-app", 3*time.Second, false)
	if err != nil || st.Error != "" || st.Status != proto.FlowStopped {
		t.Fatalf("stop = %+v, %v", st, err)
	}
	if s := robot.Stops(); len(s) != 1 || s[0].Grace != 3*time.Second || s[0].DataflowID != rep.DataflowID {
		t.Fatalf("robot stops = %+v", s)
	}
	if list, _ := c.List(ctxT(t), false); len(list) != 0 {
		t.Fatalf("list after stop = %+v", list)
	}
	all, _ := c.List(ctxT(t), true)
	if len(all) != 1 || all[0].Status != proto.FlowStopped {
		t.Fatalf("list all = %+v", all)
	}
	if _, err := c.Stop(ctxT(t), "my-app", 0, false); err == nil || !strings.Contains(err.Error(), "is not running") {
		t.Fatalf("second stop = %v", err)
	}
	if _, err := c.Stop(ctxT(t), "my-app", -time.Second, false); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		t.Fatalf("negative grace = %v", err)
	}
	if _, err := c.Stop(ctxT(t), "nope", 0, false); err == nil || !strings.Contains(err.Error(), "no dataflow with name or uuid `nope`") {
		t.Fatalf("stop unknown = %v", err)
	}
}

func TestStartRollsBackWhenOneDaemonFails(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu-server", Labels: map[string]string{"gpu": "true"},
		FailSpawn: func(proto.Spawn) error { return errors.New("binary ./inference not found") }})
	c := dial(t, srv.Endpoint)

	_, err := c.Start(ctxT(t), startReq("my-app"))
	if err == nil || !strings.Contains(err.Error(), "spawn failed on daemon `gpu-server`: binary ./inference not found") ||
		!strings.Contains(err.Error(), "rolled back 1 other daemon(s)") {
		t.Fatalf("start = %v", err)
	}
	stops := robot.Stops()
	if len(stops) != 1 || !stops[0].Force {
		t.Fatalf("robot stops = %+v, want one forced stop", stops)
	}
	if n := len(robot.Running(stops[0].DataflowID)); n != 0 {
		t.Fatalf("robot still runs %d nodes", n)
	}
	all, _ := c.List(ctxT(t), true)
	if len(all) != 1 || all[0].Status != proto.FlowFailed || !strings.Contains(all[0].Error, "spawn failed") {
		t.Fatalf("list = %+v", all)
	}
}

func TestRestartUsesStoredDescriptor(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	first, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"my-app", ""} {
		if ref == "" {
			l, _ := c.List(ctxT(t), false)
			ref = l[0].ID // by uuid the second time
		}
		r, err := c.Restart(ctxT(t), ref, 0, false)
		if err != nil {
			t.Fatalf("restart %s: %v", ref, err)
		}
		if r.OldID == r.NewID || r.Name != "my-app" {
			t.Fatalf("restart = %+v", r)
		}
	}
	spawns := robot.Spawns()
	if len(spawns) != 3 || spawns[2].WorkingDir != "/home/me/app" || string(spawns[2].Descriptor) != "nodes: [camera, inference]\n" {
		t.Fatalf("spawns = %d %+v", len(spawns), spawns)
	}
	info, err := c.Info(ctxT(t), first.DataflowID)
	if err != nil || info.Status != proto.FlowStopped || info.RestartedAs == "" || info.RestartedAs == first.DataflowID {
		t.Fatalf("old info = %+v, %v", info, err)
	}
	list, _ := c.List(ctxT(t), false)
	if len(list) != 1 || list[0].ID != spawns[2].DataflowID {
		t.Fatalf("list = %+v", list)
	}
}

func TestDestroyStopsEverythingAndDaemonsExit(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	if _, err := c.Start(ctxT(t), startReq("my-app")); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if len(robot.Stops()) != 1 || !robot.Destroyed() {
		t.Fatalf("robot stops=%d destroyed=%v", len(robot.Stops()), robot.Destroyed())
	}
	select {
	case <-srv.Destroyed():
	case <-time.After(5 * time.Second):
		t.Fatal("coordinator did not signal destroyed")
	}
}

func TestAllDaemonsIncludesDisconnected(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	gone := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gone", MachineID: "gone", Labels: map[string]string{"a": "b"}})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-here", MachineID: "here"})
	gone.Close()
	c := dial(t, srv.Endpoint)
	if !coordtest.Wait(5*time.Second, func() bool { r, _ := c.Daemons(ctxT(t)); return len(r.Daemons) == 1 }) {
		t.Fatal("gone daemon still listed as connected")
	}
	r, err := c.AllDaemons(ctxT(t))
	if err != nil || len(r.Daemons) != 2 {
		t.Fatalf("all daemons = %+v, %v", r, err)
	}
	if d := r.Daemons[0]; d.ID != "u-here" || !d.Connected {
		t.Fatalf("first = %+v", d)
	}
	if d := r.Daemons[1]; d.ID != "u-gone" || d.Connected || d.Labels["a"] != "b" {
		t.Fatalf("second = %+v", d)
	}
}

func TestCloseDoesNotWaitForSilentConnection(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	ws, _, err := websocket.DefaultDialer.Dial(srv.Endpoint.URL(proto.PathDaemon), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	time.Sleep(20 * time.Millisecond) // the handler is waiting for hello
	start := time.Now()
	srv.Stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stop took %v with a connection that never said hello", d)
	}
}

func TestConnectionLimit(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{MaxConnections: 1})
	dial(t, srv.Endpoint)
	_, err := client.Dial(ctxT(t), client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("second connection = %v, want 503", err)
	}
	if _, err := client.Health(ctxT(t), client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port}); err != nil {
		t.Fatalf("health at the limit: %v", err)
	}
}

// rawDaemon registers over a raw socket so a test can send anything.
func rawDaemon(t *testing.T, ep wsconn.Endpoint, uuid string) *websocket.Conn {
	t.Helper()
	ws := rawDial(t, ep, proto.PathDaemon)
	if _, err := wsconn.ClientHello(ctxT(t), ws, proto.RoleDaemon); err != nil {
		t.Fatal(err)
	}
	e, _ := proto.NewEnvelope(proto.TypeRegister, proto.Register{DaemonUUID: uuid, Version: "x"})
	e.ID = 2
	b, _ := proto.Encode(e)
	ws.WriteMessage(websocket.TextMessage, b)
	_, frame, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := proto.Decode(frame); r == nil || r.Error != "" {
		t.Fatalf("register reply = %s", frame)
	}
	return ws
}

func TestOddDaemonPayloadsDoNotHurt(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	ws := rawDaemon(t, srv.Endpoint, "u-odd")
	frames := []string{
		`{"type":"status_report","payload":{"dataflows":null,"finished":[{"dataflow_id":"nope"}]}}`,
		`{"type":"status_report","payload":{"dataflows":[{"dataflow_id":"","nodes":null}]}}`,
		`{"type":"node_metrics","payload":{"metrics":[{"dataflow_id":"","node_id":""}]}}`,
		`{"type":"log","payload":{"lines":[{"dataflow_id":"nope","node_id":"x","line":"hi"}]}}`,
		`{"type":"log","payload":"not an object"}`,
		`{"type":"heartbeat"}`,
		`{"type":"dataflow_finished","payload":{"dataflow_id":"nope","failed":true}}`,
		`{"type":"node_status","payload":{"dataflow_id":"nope","node":{"node_id":"x","status":"failed"}}}`,
		`{"type":"something_new","payload":{}}`,
		`{"type":"register","id":77,"payload":{"daemon_uuid":"u-odd"}}`,
	}
	for _, f := range frames[:len(frames)-1] {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	// A second register on the same connection is refused and closes it.
	ws.WriteMessage(websocket.TextMessage, []byte(frames[len(frames)-1]))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, frame, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := proto.Decode(frame); r == nil || r.ReplyTo != 77 || !strings.Contains(r.Error, "already registered") {
		t.Fatalf("second register reply = %s", frame)
	}
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("connection still open after a second register")
	}
	c := dial(t, srv.Endpoint)
	if _, err := c.Top(ctxT(t)); err != nil {
		t.Fatalf("coordinator hurt: %v", err)
	}
}

func TestStartRefusesHTTPNodeWithoutArtifact(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	req.Dataflow.Nodes[0].Deploy.Distribute = config.DistributeHTTP
	if _, err := c.Start(ctxT(t), req); err == nil || !strings.Contains(err.Error(), `node "camera" is distributed over http but no artifact was uploaded`) {
		t.Fatalf("start = %v", err)
	}
	if len(robot.Spawns()) != 0 {
		t.Fatal("spawned anyway")
	}
}

func TestNewIdentityTakesMachineIDFromUnresponsiveDaemon(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{ProbeTimeout: 200 * time.Millisecond})
	// The machine's old daemon: registered, then silent (the machine was
	// reinstalled and its identity file lost).
	ws := rawDial(t, srv.Endpoint, proto.PathDaemon)
	if _, err := wsconn.ClientHello(ctxT(t), ws, proto.RoleDaemon); err != nil {
		t.Fatal(err)
	}
	e, _ := proto.NewEnvelope(proto.TypeRegister, proto.Register{DaemonUUID: "u-old", MachineID: "robot", Version: "x"})
	e.ID = 2
	b, _ := proto.Encode(e)
	ws.WriteMessage(websocket.TextMessage, b)
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	fresh := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-new", MachineID: "robot"})
	r := srv.Daemons()
	if len(r.Daemons) != 1 || r.Daemons[0].ID != "u-new" {
		t.Fatalf("daemons = %+v", r.Daemons)
	}
	select {
	case <-fresh.Done():
		t.Fatal("new daemon dropped")
	default:
	}
}

// Destroy stops at most 10 dataflows at once.
func TestDestroyFanOutIsBounded(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	hold := make(chan struct{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", HoldStops: hold})
	c := dial(t, srv.Endpoint)
	const flows = 13
	for i := range flows {
		req := proto.Start{Name: fmt.Sprintf("f%02d", i), Descriptor: []byte("x"), Dataflow: config.Dataflow{Nodes: []config.Node{{ID: "cam", Path: "/bin/true", Deploy: config.Deploy{Machine: "robot"}}}}}
		if _, err := c.Start(ctxT(t), req); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Destroy(ctxT(t)) }()
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot.Stops()) >= 10 }) {
		close(hold)
		t.Fatalf("%d stops under way, want 10", len(robot.Stops()))
	}
	time.Sleep(50 * time.Millisecond) // an 11th stop would have arrived by now
	n := len(robot.Stops())
	close(hold)
	if n != 10 {
		t.Fatalf("%d dataflows stopped at once, want at most 10", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("destroy did not end")
	}
	if got := len(robot.Stops()); got != flows {
		t.Fatalf("%d dataflows stopped, want %d", got, flows)
	}
}

// A second stop of a dataflow being stopped waits for the first instead
// of stopping it again, and reports the same outcome.
func TestConcurrentStopsStopOnce(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	hold := make(chan struct{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", HoldStops: hold})
	c := dial(t, srv.Endpoint)
	req := proto.Start{Name: "f", Descriptor: []byte("x"), Dataflow: config.Dataflow{Nodes: []config.Node{{ID: "cam", Path: "/bin/true", Deploy: config.Deploy{Machine: "robot"}}}}}
	if _, err := c.Start(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep proto.StopReply
		err error
	}
	results := make(chan result, 2)
	stop := func() {
		rep, err := c.Stop(ctxT(t), "f", 0, false)
		results <- result{rep, err}
	}
	go stop()
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot.Stops()) == 1 }) {
		close(hold)
		t.Fatal("first stop not sent")
	}
	go stop()
	time.Sleep(50 * time.Millisecond) // a second Stop would have arrived by now
	n := len(robot.Stops())
	close(hold)
	if n != 1 {
		t.Fatalf("%d Stops sent for two concurrent stops, want 1", n)
	}
	for range 2 {
		select {
		case r := <-results:
			if r.err != nil || r.rep.Status != proto.FlowStopped || r.rep.Name != "f" {
				t.Fatalf("stop = %+v, %v", r.rep, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stop did not return")
		}
	}
}
