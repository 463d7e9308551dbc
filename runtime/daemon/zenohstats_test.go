package daemon

import (
	"context"
	"encoding/hex"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
	"github.com/adora-rs/adora/transport/zenoh"
)

type fakeLinks struct {
	zid   []byte
	st    zenoh.Stats
	peers []zenoh.PeerInfo
}

func (f fakeLinks) ZID() []byte             { return f.zid }
func (f fakeLinks) Stats() zenoh.Stats      { return f.st }
func (f fakeLinks) Peers() []zenoh.PeerInfo { return f.peers }

func TestDataPlaneReport(t *testing.T) {
	got := dataPlaneReport(fakeLinks{
		zid: []byte{0x0a, 0x01},
		st:  zenoh.Stats{MessagesSent: 1, MessagesReceived: 2, BytesSent: 3, BytesReceived: 4, Dropped: 5, LinksOpened: 6, LinksClosed: 7, AuthRefused: 8},
		peers: []zenoh.PeerInfo{
			{ZID: []byte{0xcc}, Remote: "10.0.0.3:7447", Initiator: true},
			{ZID: []byte{0xbb}, Remote: "10.0.0.2:51000"},
		},
	})
	want := &proto.DataPlaneReport{
		ZID:      "0a01",
		Counters: proto.DataPlaneCounters{MessagesSent: 1, MessagesReceived: 2, BytesSent: 3, BytesReceived: 4, Dropped: 5, LinksOpened: 6, LinksClosed: 7, AuthRefused: 8},
		Links:    []proto.DataPlaneLink{{ZID: "bb", Remote: "10.0.0.2:51000"}, {ZID: "cc", Remote: "10.0.0.3:7447", Initiator: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report:\n got %+v\nwant %+v", got, want)
	}
	// A transport that cannot describe its links reports none.
	d := &Daemon{cfg: Config{Transport: newMemTransport()}}
	if r := d.dataPlane(); r != nil {
		t.Fatalf("memory transport reported %+v", r)
	}
}

// zenohDaemon is a real daemon with a real Zenoh session on loopback.
type zenohDaemon struct {
	rd *runningDaemon
	zs *zenoh.Session
}

func startZenohDaemon(t *testing.T, ep wsconn.Endpoint, machine string) *zenohDaemon {
	t.Helper()
	zs, err := zenoh.Open(context.Background(), zenoh.Config{Mode: zenoh.Peer, Listen: []string{"tcp/127.0.0.1:0"},
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zs.Close() })
	d, err := New(Config{
		MachineID: machine, Coordinator: ep, Home: t.TempDir(), Logger: discard(),
		Transport: zs, Endpoints: zs.ListenEndpoints(),
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
	return &zenohDaemon{rd: rd, zs: zs}
}

// waitStatus polls the coordinator until cond holds for the top and
// daemons replies, and returns them.
func waitStatus(t *testing.T, c *client.Client, what string, cond func(proto.TopReply, proto.DaemonsReply) bool) (proto.TopReply, proto.DaemonsReply) {
	t.Helper()
	var top proto.TopReply
	var ds proto.DaemonsReply
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var err1, err2 error
		top, err1 = c.Top(ctx)
		ds, err2 = c.Daemons(ctx)
		if err1 == nil && err2 == nil && cond(top, ds) {
			return top, ds
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: never seen; last top data plane %+v, daemons %+v", what, top.DataPlane, ds.Daemons)
	return top, ds
}

func dataPlaneByMachine(top proto.TopReply, machine string) (proto.DataPlaneStatus, bool) {
	for _, st := range top.DataPlane {
		if st.MachineID == machine {
			return st, true
		}
	}
	return proto.DataPlaneStatus{}, false
}

func infoByMachine(ds proto.DaemonsReply, machine string) *proto.DataPlaneStatus {
	for _, d := range ds.Daemons {
		if d.MachineID == machine {
			return d.DataPlane
		}
	}
	return nil
}

// TestDataPlaneStatusEndToEnd runs a real coordinator and two real daemons
// linked over Zenoh on loopback with a dataflow across both; when one
// daemon's data plane goes away, the other's status says so.
func TestDataPlaneStatusEndToEnd(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	robot := startZenohDaemon(t, srv.Endpoint, "robot")
	gpu := startZenohDaemon(t, srv.Endpoint, "gpu")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitStatus(t, c, "both daemons registered", func(_ proto.TopReply, ds proto.DaemonsReply) bool { return len(ds.Daemons) == 2 })

	df := config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Path: "/bin/sh", Args: []string{"-c", "sleep 60"}, Deploy: config.Deploy{Machine: "robot"}},
		{ID: "detector", Path: "/bin/sh", Args: []string{"-c", "sleep 60"}, Deploy: config.Deploy{Machine: "gpu"}},
	}}
	rep, err := c.Start(ctx, proto.Start{Name: "app", Descriptor: []byte("nodes: [camera, detector]\n"), Dataflow: df})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background(), rep.DataflowID, 0, true)

	// Both daemons link to each other: 1/1 peers on each side.
	top, ds := waitStatus(t, c, "links up", func(top proto.TopReply, ds proto.DaemonsReply) bool {
		r, ok1 := dataPlaneByMachine(top, "robot")
		g, ok2 := dataPlaneByMachine(top, "gpu")
		return ok1 && ok2 && r.PeersUp == 1 && g.PeersUp == 1
	})
	for _, m := range []string{"robot", "gpu"} {
		st, _ := dataPlaneByMachine(top, m)
		if st.PeersExpected != 1 || len(st.Unreachable) != 0 || st.Links != 1 || st.Counters.LinksOpened == 0 {
			t.Fatalf("%s data plane with links up = %+v", m, st)
		}
		if info := infoByMachine(ds, m); info == nil || info.PeersExpected != 1 {
			t.Fatalf("%s cluster status data plane = %+v", m, info)
		}
	}
	robotZID := hex.EncodeToString(robot.zs.ZID())

	// gpu's data plane goes away (its daemon stays connected to the
	// coordinator): robot sees gpu unreachable, gpu sees robot unreachable.
	gpu.zs.Close()
	_, ds = waitStatus(t, c, "gpu unreachable", func(top proto.TopReply, ds proto.DaemonsReply) bool {
		r, ok := dataPlaneByMachine(top, "robot")
		return ok && r.PeersUp == 0 && slices.Equal(r.Unreachable, []string{"gpu"})
	})
	if info := infoByMachine(ds, "robot"); info == nil || info.PeersExpected != 1 || !slices.Equal(info.Unreachable, []string{"gpu"}) {
		t.Fatalf("robot cluster status data plane = %+v", info)
	}
	waitStatus(t, c, "robot unreachable from gpu", func(_ proto.TopReply, ds proto.DaemonsReply) bool {
		g := infoByMachine(ds, "gpu")
		return g != nil && g.PeersUp == 0 && slices.Equal(g.Unreachable, []string{"robot"})
	})

	// The gpu daemon goes away too: it leaves top, and robot still
	// expects it.
	gpu.rd.stop(t)
	top, _ = waitStatus(t, c, "gpu daemon gone", func(top proto.TopReply, _ proto.DaemonsReply) bool {
		_, ok := dataPlaneByMachine(top, "gpu")
		return !ok
	})
	if r, ok := dataPlaneByMachine(top, "robot"); !ok || r.PeersExpected != 1 || !slices.Equal(r.Unreachable, []string{"gpu"}) {
		t.Fatalf("robot after gpu left = %+v (robot zid %s)", r, robotZID)
	}
}

// A daemon with a data plane reports it every metrics interval, even
// while it runs no node.
func TestIdleDaemonReportsDataPlane(t *testing.T) {
	fc := newFakeCoordinator(t)
	zs, err := zenoh.Open(context.Background(), zenoh.Config{Mode: zenoh.Peer, Listen: []string{"tcp/127.0.0.1:0"}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer zs.Close()
	d, err := New(Config{MachineID: "robot", Coordinator: fc.endpoint(), Home: t.TempDir(), Logger: discard(),
		Transport: zs, Endpoints: zs.ListenEndpoints(), HeartbeatInterval: 50 * time.Millisecond, MetricsInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	m := waitEvent(t, fc, proto.TypeNodeMetrics, func(m proto.NodeMetrics) bool { return m.DataPlane != nil })
	if len(m.Metrics) != 0 || m.DataPlane.ZID != hex.EncodeToString(zs.ZID()) || len(m.DataPlane.Links) != 0 {
		t.Fatalf("idle daemon's metrics = %+v, data plane %+v", m, m.DataPlane)
	}
}
