package coordinator_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/proto"
)

// dataPlaneOf waits until the Top reply's data plane of daemon id
// satisfies ok, and returns it.
func dataPlaneOf(t *testing.T, c *client.Client, id string, ok func(proto.DataPlaneStatus) bool) proto.DataPlaneStatus {
	t.Helper()
	var last proto.TopReply
	if coordtest.Wait(5*time.Second, func() bool {
		top, err := c.Top(ctxT(t))
		if err != nil {
			return false
		}
		last = top
		for _, st := range top.DataPlane {
			if st.DaemonID == id && ok(st) {
				return true
			}
		}
		return false
	}) {
		for _, st := range last.DataPlane {
			if st.DaemonID == id {
				return st
			}
		}
	}
	t.Fatalf("data plane of %s never as expected; last top: %+v", id, last.DataPlane)
	return proto.DataPlaneStatus{}
}

func daemonInfo(t *testing.T, c *client.Client, id string) proto.DaemonInfo {
	t.Helper()
	r, err := c.Daemons(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Daemons {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("daemon %s not listed: %+v", id, r.Daemons)
	return proto.DaemonInfo{}
}

func TestDataPlaneLatestReportPerDaemon(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", ZenohEndpoints: []string{"tcp/10.0.0.1:7447"}})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}, ZenohEndpoints: []string{"tcp/10.0.0.2:7447"}})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-spare", MachineID: "spare", ZenohEndpoints: []string{"tcp/10.0.0.3:7447"}})
	c := dial(t, srv.Endpoint)
	if _, err := c.Start(ctxT(t), startReq("my-app")); err != nil {
		t.Fatal(err)
	}

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	send := func(d *coordtest.Daemon, at time.Time, r proto.DataPlaneReport) {
		t.Helper()
		if err := d.DataPlane(ctxT(t), at, r); err != nil {
			t.Fatal(err)
		}
	}
	send(gpu, t0, proto.DataPlaneReport{ZID: "bb"})
	// gpu's and robot's reports come over different connections: robot's
	// link is recognised by gpu's id once gpu's report is in.
	dataPlaneOf(t, c, "u-gpu", func(proto.DataPlaneStatus) bool { return true })
	send(robot, t0, proto.DataPlaneReport{ZID: "aa", Links: []proto.DataPlaneLink{{ZID: "bb"}},
		Counters: proto.DataPlaneCounters{MessagesSent: 100, MessagesReceived: 50, BytesSent: 1000, BytesReceived: 500}})
	send(robot, t0.Add(2*time.Second), proto.DataPlaneReport{ZID: "aa", Links: []proto.DataPlaneLink{{ZID: "bb"}, {ZID: "ee"}},
		Counters: proto.DataPlaneCounters{MessagesSent: 300, MessagesReceived: 150, BytesSent: 3000, BytesReceived: 1500, Dropped: 4, AuthRefused: 2}})

	st := dataPlaneOf(t, c, "u-robot", func(st proto.DataPlaneStatus) bool { return st.Counters.MessagesSent == 300 })
	want := proto.DataPlaneStatus{DaemonID: "u-robot", MachineID: "robot", Time: t0.Add(2 * time.Second), PeersUp: 1, PeersExpected: 1, Links: 2,
		Counters:         proto.DataPlaneCounters{MessagesSent: 300, MessagesReceived: 150, BytesSent: 3000, BytesReceived: 1500, Dropped: 4, AuthRefused: 2},
		MessagesInPerSec: 50, MessagesOutPerSec: 100, BytesInPerSec: 500, BytesOutPerSec: 1000}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("robot data plane:\n got %+v\nwant %+v", st, want)
	}
	// gpu has no link to robot, which shares a dataflow with it.
	g := dataPlaneOf(t, c, "u-gpu", func(proto.DataPlaneStatus) bool { return true })
	if g.PeersUp != 0 || g.PeersExpected != 1 || !reflect.DeepEqual(g.Unreachable, []string{"robot"}) || !g.Degraded() {
		t.Fatalf("gpu data plane = %+v", g)
	}
	// cluster status serves the same summary; spare never reported one.
	if d := daemonInfo(t, c, "u-robot"); d.DataPlane == nil || d.DataPlane.PeersUp != 1 || d.DataPlane.Degraded() {
		t.Fatalf("robot info data plane = %+v", d.DataPlane)
	}
	if d := daemonInfo(t, c, "u-spare"); d.DataPlane != nil {
		t.Fatalf("spare info data plane = %+v, want none", d.DataPlane)
	}

	// A link robot dialled to gpu's registered endpoint counts too, even
	// under a Zenoh id gpu has not reported (gpu restarted its session).
	send(robot, t0.Add(4*time.Second), proto.DataPlaneReport{ZID: "aa", Links: []proto.DataPlaneLink{{ZID: "cc", Remote: "10.0.0.2:7447", Initiator: true}},
		Counters: proto.DataPlaneCounters{MessagesSent: 1}})
	st = dataPlaneOf(t, c, "u-robot", func(st proto.DataPlaneStatus) bool { return st.Counters.MessagesSent == 1 })
	if st.PeersUp != 1 || st.MessagesOutPerSec != 0 || st.MessagesInPerSec != 0 {
		t.Fatalf("after counters went back: %+v (want the link matched by endpoint, rates zero)", st)
	}

	// gpu goes away; robot loses its link: gpu is still expected.
	gpu.Close()
	<-gpu.Done()
	send(robot, t0.Add(6*time.Second), proto.DataPlaneReport{ZID: "aa", Counters: proto.DataPlaneCounters{MessagesSent: 2}})
	st = dataPlaneOf(t, c, "u-robot", func(st proto.DataPlaneStatus) bool { return st.Counters.MessagesSent == 2 })
	if st.PeersUp != 0 || st.PeersExpected != 1 || !reflect.DeepEqual(st.Unreachable, []string{"gpu"}) {
		t.Fatalf("robot after gpu left = %+v", st)
	}
	if !coordtest.Wait(5*time.Second, func() bool {
		top, err := c.Top(ctxT(t))
		return err == nil && len(top.DataPlane) == 1
	}) {
		t.Fatal("a disconnected daemon's data plane is still in top")
	}
}

// A daemon without a data plane (no Zenoh endpoints, no report) is not a
// peer anyone should link to.
func TestDataPlaneIgnoresDaemonsWithoutOne(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", ZenohEndpoints: []string{"tcp/10.0.0.1:7447"}})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	if _, err := c.Start(ctxT(t), startReq("my-app")); err != nil {
		t.Fatal(err)
	}
	if err := robot.DataPlane(ctxT(t), time.Now(), proto.DataPlaneReport{ZID: "aa", Counters: proto.DataPlaneCounters{MessagesSent: 9}}); err != nil {
		t.Fatal(err)
	}
	st := dataPlaneOf(t, c, "u-robot", func(st proto.DataPlaneStatus) bool { return st.Counters.MessagesSent == 9 })
	if st.PeersExpected != 0 || st.PeersUp != 0 || len(st.Unreachable) != 0 || st.Degraded() {
		t.Fatalf("robot data plane = %+v, want no expected peer", st)
	}
	if d := daemonInfo(t, c, "u-gpu"); d.DataPlane != nil {
		t.Fatalf("gpu data plane = %+v, want none", d.DataPlane)
	}
}

// A daemon that comes back without a data plane (restarted without Zenoh,
// or as an older version) shows none, while the Zenoh id it reported
// before still tells other daemons' links to it.
func TestDataPlaneReportOfAnEarlierConnection(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robotCfg := coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", ZenohEndpoints: []string{"tcp/10.0.0.1:7447"}}
	robot := coordtest.StartDaemonT(t, srv.Endpoint, robotCfg)
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}, ZenohEndpoints: []string{"tcp/10.0.0.2:7447"}})
	c := dial(t, srv.Endpoint)
	if _, err := c.Start(ctxT(t), startReq("my-app")); err != nil {
		t.Fatal(err)
	}
	if err := robot.DataPlane(ctxT(t), time.Now(), proto.DataPlaneReport{ZID: "aa"}); err != nil {
		t.Fatal(err)
	}
	dataPlaneOf(t, c, "u-robot", func(proto.DataPlaneStatus) bool { return true })
	robot.Close()
	<-robot.Done()
	if !coordtest.Wait(5*time.Second, func() bool {
		r, err := c.Daemons(ctxT(t))
		return err == nil && len(r.Daemons) == 1
	}) {
		t.Fatal("robot still connected")
	}
	coordtest.StartDaemonT(t, srv.Endpoint, robotCfg) // back, reporting no data plane
	if err := gpu.DataPlane(ctxT(t), time.Now(), proto.DataPlaneReport{ZID: "bb", Links: []proto.DataPlaneLink{{ZID: "aa", Remote: "10.0.0.1:40000"}}}); err != nil {
		t.Fatal(err)
	}
	g := dataPlaneOf(t, c, "u-gpu", func(proto.DataPlaneStatus) bool { return true })
	if g.PeersUp != 1 || g.PeersExpected != 1 {
		t.Fatalf("gpu data plane = %+v, want its link to robot's reported id counted", g)
	}
	if d := daemonInfo(t, c, "u-robot"); d.DataPlane != nil {
		t.Fatalf("robot shows the data plane of its earlier connection: %+v", d.DataPlane)
	}
}
