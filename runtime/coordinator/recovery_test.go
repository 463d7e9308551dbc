package coordinator_test

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
)

var epoch = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

// quietTick keeps the background ticker out of the way; tests call Tick.
const quietTick = time.Hour

func TestCoordinatorRestartRebuildsRunningDataflows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coordinator.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	id := rep.DataflowID

	// "kill -9": the coordinator goes away without stopping anything; the
	// daemons keep their nodes.
	c.Close()
	srv.Stop()
	st.Close()
	robot.Close()
	gpu.Close()

	st2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	logger, logs := newLogger()
	srv2 := coordtest.Start(t, coordinator.Config{Store: st2, TickInterval: quietTick, Logger: logger})
	c2 := dial(t, srv2.Endpoint)
	list, err := c2.List(ctxT(t), false)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Status != proto.FlowRecovering {
		t.Fatalf("list before daemons report = %+v, %v", list, err)
	}

	running := map[string][]string{id: {"camera"}}
	robot2 := coordtest.StartDaemonT(t, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: running})
	gpu2 := coordtest.StartDaemonT(t, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}, Running: map[string][]string{id: {"inference"}}})
	ok := coordtest.Wait(5*time.Second, func() bool {
		l, _ := c2.List(ctxT(t), false)
		return len(l) == 1 && l[0].Status == proto.FlowRunning
	})
	if !ok {
		t.Fatal("dataflow not running after the daemons reported it")
	}
	srv2.Tick()
	if n := len(robot2.Spawns()) + len(gpu2.Spawns()); n != 0 {
		t.Fatalf("%d spawns after coordinator restart; nodes must not be restarted", n)
	}
	if strings.Contains(logs.String(), "auto-recovery") {
		t.Fatalf("unexpected auto-recovery:\n%s", logs)
	}

	if err := robot2.Log(ctxT(t), proto.LogLine{DataflowID: id, NodeID: "camera", Stream: proto.Stdout, Time: epoch, Line: "frame 1"}); err != nil {
		t.Fatal(err)
	}
	lines, err := c2.Logs(ctxT(t), "my-app", "camera", 10)
	if err != nil || len(lines) != 1 || lines[0].Line != "frame 1" {
		t.Fatalf("logs after restart = %+v, %v", lines, err)
	}
	sr, err := c2.Stop(ctxT(t), "my-app", 0, false)
	if err != nil || sr.Error != "" {
		t.Fatalf("stop after restart = %+v, %v", sr, err)
	}
	if len(robot2.Stops()) != 1 || len(gpu2.Stops()) != 1 {
		t.Fatalf("stops: robot %d gpu %d", len(robot2.Stops()), len(gpu2.Stops()))
	}
}

func TestAutoRecoveryRespawnsWithBackoff(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	logger, logs := newLogger()
	srv := coordtest.Start(t, coordinator.Config{Clock: clock, TickInterval: quietTick, Logger: logger})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	id := rep.DataflowID
	srv.Tick()
	if n := len(robot.Spawns()); n != 1 {
		t.Fatalf("spawns right after start = %d", n)
	}

	// The daemon process restarts: same identity, no nodes.
	robot.Close()
	robot2 := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	want := "auto-recovery: re-spawning dataflow my-app (" + id + ") nodes [camera] on daemon robot"
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot2.Spawns()) == 1 }) {
		t.Fatalf("no recovery spawn; logs:\n%s", logs)
	}
	sp := robot2.Spawns()[0]
	if !sp.Recovery || sp.DataflowID != id || len(sp.Nodes) != 1 || sp.Nodes[0] != "camera" {
		t.Fatalf("recovery spawn = %+v", sp)
	}
	if !coordtest.Wait(time.Second, func() bool { return logs.Count(want) == 1 }) {
		t.Fatalf("log line %q missing:\n%s", want, logs)
	}

	// The re-spawned node crashes at once: retried at most once per 30 s.
	if err := robot2.Finish(ctxT(t), id, true, "camera: exited with code 1"); err != nil {
		t.Fatal(err)
	}
	waitListed(t, srv, id)
	beat := func() {
		robot2.Heartbeat(ctxT(t))
		gpu.Heartbeat(ctxT(t))
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		clock.Advance(5 * time.Second) // 25 s in total
		beat()
		srv.Tick()
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(robot2.Spawns()); n != 1 {
		t.Fatalf("%d spawns within the 30 s backoff, want 1", n)
	}
	clock.Advance(6 * time.Second)
	beat()
	srv.Tick()
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot2.Spawns()) == 2 }) {
		t.Fatalf("no retry after the backoff; logs:\n%s", logs)
	}
	// The dataflow stayed running throughout.
	l, _ := c.List(ctxT(t), false)
	if len(l) != 1 || l[0].Status != proto.FlowRunning {
		t.Fatalf("list = %+v", l)
	}

	// A report that includes the dataflow clears the backoff: the next
	// loss is recovered at once.
	if err := robot2.Report(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	robot2.Close()
	if !coordtest.Wait(5*time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatal("robot2 still connected")
	}
	robot3 := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot3.Spawns()) == 1 }) {
		t.Fatalf("backoff not cleared by the report; logs:\n%s", logs)
	}
}

func waitListed(t *testing.T, srv *coordtest.Server, id string) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	l, err := srv.List(proto.List{})
	if err != nil || len(l.Dataflows) != 1 || l.Dataflows[0].ID != id {
		t.Fatalf("dataflow %s no longer active: %+v, %v", id, l, err)
	}
}

func TestRecoveryByMachineIDAfterIdentityReset(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-old", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	robot.Close()
	time.Sleep(50 * time.Millisecond) // the old connection must be gone first
	fresh := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-new", MachineID: "robot"})
	if !coordtest.Wait(5*time.Second, func() bool { return len(fresh.Spawns()) == 1 }) {
		t.Fatal("machine robot's new daemon got no recovery spawn")
	}
	info, _ := c.Info(ctxT(t), rep.DataflowID)
	for _, p := range info.Placements {
		if p.NodeID == "camera" && p.DaemonID != "u-new" {
			t.Fatalf("camera still placed on %s", p.DaemonID)
		}
	}
}

func TestWatchdogDisconnectsSilentDaemon(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	logger, logs := newLogger()
	srv := coordtest.Start(t, coordinator.Config{Clock: clock, TickInterval: quietTick, Logger: logger})
	quiet := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-quiet", MachineID: "quiet"})
	alive := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-alive", MachineID: "alive"})
	clock.Advance(20 * time.Second)
	srv.Tick()
	srv.Tick()
	if n := logs.Count("daemon heartbeat late"); n != 2 {
		t.Fatalf("%d late-heartbeat warnings after 20 s of silence, want one per daemon:\n%s", n, logs)
	}
	if err := alive.Heartbeat(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	clock.Advance(11 * time.Second) // quiet: 31 s silent, alive: 11 s
	srv.Tick()
	select {
	case <-quiet.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent daemon not disconnected")
	}
	if !coordtest.Wait(time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatalf("daemons = %+v", srv.Daemons().Daemons)
	}
	if d := srv.Daemons().Daemons[0]; d.ID != "u-alive" || !d.LastHeartbeat.Equal(epoch.Add(20*time.Second)) {
		t.Fatalf("remaining daemon = %+v", d)
	}
}

func TestStopWithDisconnectedDaemonStopsItOnReconnect(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	robot.Close()
	time.Sleep(50 * time.Millisecond)
	sr, err := c.Stop(ctxT(t), "my-app", 0, false)
	if err != nil || !strings.Contains(sr.Error, "u-robot is not connected") {
		t.Fatalf("stop = %+v, %v", sr, err)
	}
	// The daemon comes back still running the nodes: they get stopped.
	back := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: map[string][]string{rep.DataflowID: {"camera"}}})
	if !coordtest.Wait(5*time.Second, func() bool { return len(back.Stops()) == 1 }) {
		t.Fatal("orphaned nodes not stopped on reconnect")
	}
	if r := back.Stops()[0].Reason; !strings.Contains(r, "`my-app`") || !strings.Contains(r, "disconnected") {
		t.Fatalf("stop reason %q does not say which dataflow ended while the daemon was away", r)
	}
	if len(back.Spawns()) != 0 {
		t.Fatal("a stopped dataflow was re-spawned")
	}
}

func TestDataflowEndsWhenEveryDaemonFinished(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	robot.Finish(ctxT(t), rep.DataflowID, false, "")
	waitListed(t, srv, rep.DataflowID)
	srv.Tick() // a finished part is not recovered
	time.Sleep(20 * time.Millisecond)
	if len(robot.Spawns()) != 1 {
		t.Fatal("finished part was re-spawned")
	}
	gpu.Finish(ctxT(t), rep.DataflowID, true, "inference: max restarts (3) exceeded")
	if !coordtest.Wait(5*time.Second, func() bool {
		l, _ := c.List(ctxT(t), true)
		return len(l) == 1 && l[0].Status == proto.FlowFailed
	}) {
		l, _ := c.List(ctxT(t), true)
		t.Fatalf("list = %+v", l)
	}
	info, _ := c.Info(ctxT(t), "my-app")
	if !strings.Contains(info.Error, "max restarts (3) exceeded") {
		t.Fatalf("error = %q", info.Error)
	}
}

func TestDataflowThatEndedWhileCoordinatorWasDownIsNotRecovered(t *testing.T) {
	st := store.NewMemory()
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("batch")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	rep, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Stop()
	robot.Close()

	srv2 := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: quietTick})
	back := coordtest.StartDaemonT(t, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot",
		Finished: []proto.DataflowFinished{{DataflowID: rep.DataflowID, Nodes: []proto.NodeState{{NodeID: "camera", Status: proto.NodeExited}}}}})
	c2 := dial(t, srv2.Endpoint)
	if !coordtest.Wait(5*time.Second, func() bool {
		l, _ := c2.List(ctxT(t), true)
		return len(l) == 1 && l[0].Status == proto.FlowSucceeded
	}) {
		l, _ := c2.List(ctxT(t), true)
		t.Fatalf("list = %+v", l)
	}
	srv2.Tick()
	time.Sleep(20 * time.Millisecond)
	if n := len(back.Spawns()); n != 0 {
		t.Fatalf("a finished dataflow was re-spawned %d times", n)
	}
}

func TestRestartDuringStopFinishesTheStop(t *testing.T) {
	st := store.NewMemory()
	now := epoch
	rec := store.DataflowRecord{ID: "df-1", Name: "half-stopped", Status: proto.FlowStopping, CreatedAt: now, UpdatedAt: now,
		Placements: []proto.Placement{{NodeID: "camera", DaemonID: "u-robot", MachineID: "robot"}}}
	if err := st.PutDataflow(rec); err != nil {
		t.Fatal(err)
	}
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: quietTick})
	c := dial(t, srv.Endpoint)
	if l, _ := c.List(ctxT(t), false); len(l) != 0 {
		t.Fatalf("a stopping dataflow came back active: %+v", l)
	}
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: map[string][]string{"df-1": {"camera"}}})
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot.Stops()) == 1 }) {
		t.Fatal("the daemon still running the half-stopped dataflow got no stop")
	}
	if len(robot.Spawns()) != 0 {
		t.Fatal("half-stopped dataflow re-spawned")
	}
}

func TestCoordinatorRestartThenDaemonLostItsNodes(t *testing.T) {
	st := store.NewMemory()
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	rep, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Stop()
	robot.Close()

	// Both went down (a power cut): the machine comes back without nodes.
	logger, logs := newLogger()
	srv2 := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: quietTick, Logger: logger})
	back := coordtest.StartDaemonT(t, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if !coordtest.Wait(5*time.Second, func() bool { return len(back.Spawns()) == 1 }) {
		t.Fatalf("no recovery after a power cut; logs:\n%s", logs)
	}
	if sp := back.Spawns()[0]; !sp.Recovery || sp.DataflowID != rep.DataflowID || sp.WorkingDir != "/home/me/app" {
		t.Fatalf("spawn = %+v", sp)
	}
	c2 := dial(t, srv2.Endpoint)
	if !coordtest.Wait(5*time.Second, func() bool {
		l, _ := c2.List(ctxT(t), false)
		return len(l) == 1 && l[0].Status == proto.FlowRunning
	}) {
		t.Fatal("recovered dataflow not running")
	}
	if !strings.Contains(logs.String(), "auto-recovery: re-spawning dataflow app ("+rep.DataflowID+") nodes [camera] on daemon robot") {
		t.Fatalf("log line missing:\n%s", logs)
	}
}

func TestNoSecondRecoveryWhileOneIsInFlight(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	logger, logs := newLogger()
	srv := coordtest.Start(t, coordinator.Config{Clock: clock, TickInterval: quietTick, Logger: logger})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	if _, err := c.Start(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	robot.Close()
	release := make(chan struct{})
	var calls atomic.Int32
	slow := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", FailSpawn: func(proto.Spawn) error {
		calls.Add(1)
		<-release // a slow spawn (say, a big artifact download)
		return nil
	}})
	defer close(release)
	if !coordtest.Wait(5*time.Second, func() bool { return calls.Load() == 1 }) {
		t.Fatal("no recovery spawn")
	}
	clock.Advance(31 * time.Second)
	if err := slow.Heartbeat(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if !coordtest.Wait(5*time.Second, func() bool {
		d := srv.Daemons().Daemons
		return len(d) == 1 && d[0].LastHeartbeat.Equal(epoch.Add(31*time.Second))
	}) {
		t.Fatal("heartbeat not seen")
	}
	srv.Tick()
	time.Sleep(50 * time.Millisecond)
	if n := logs.Count("auto-recovery: re-spawning"); n != 1 {
		t.Fatalf("%d recovery spawns while the first was in flight:\n%s", n, logs)
	}
}

func TestRecoveryAgainAfterASecondDaemonRestart(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	srv := coordtest.Start(t, coordinator.Config{Clock: clock, TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	if _, err := c.Start(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	// Restart 1: recovered. The daemon sends no further report.
	robot.Close()
	second := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if !coordtest.Wait(5*time.Second, func() bool { return len(second.Spawns()) == 1 }) {
		t.Fatal("first recovery missing")
	}
	time.Sleep(20 * time.Millisecond) // the spawn reply is processed
	// Restart 2, within the backoff: recovered once the backoff passed.
	second.Close()
	third := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	time.Sleep(20 * time.Millisecond)
	if n := len(third.Spawns()); n != 0 {
		t.Fatalf("recovered within the backoff: %d", n)
	}
	clock.Advance(31 * time.Second)
	third.Heartbeat(ctxT(t))
	coordtest.Wait(5*time.Second, func() bool {
		d := srv.Daemons().Daemons
		return len(d) == 1 && d[0].LastHeartbeat.Equal(epoch.Add(31*time.Second))
	})
	srv.Tick()
	if !coordtest.Wait(5*time.Second, func() bool { return len(third.Spawns()) == 1 }) {
		t.Fatal("no recovery after the second restart")
	}
}

// A daemon reports while it stops a dataflow; the coordinator does not add
// a Stop per report while one is in flight, and sends another once it
// ended if the daemon still reports the dataflow.
func TestStopOfEndedDataflowNotRepeatedWhileInFlight(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	robot.Close()
	if !coordtest.Wait(5*time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatal("robot still connected")
	}
	if _, err := c.Stop(ctxT(t), "my-app", 0, false); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	back := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot",
		Running: map[string][]string{rep.DataflowID: {"camera"}}, HoldStops: hold})
	if !coordtest.Wait(5*time.Second, func() bool { return len(back.Stops()) == 1 }) {
		close(hold)
		t.Fatal("ended dataflow not stopped on reconnect")
	}
	// The daemon keeps reporting the dataflow while its stop is held.
	before := heartbeatOf(srv, "u-robot")
	for range 3 {
		// Report uses the fake's view, which the Stop already emptied:
		// send what a daemon still stopping its nodes reports.
		if err := back.ReportRunning(ctxT(t), rep.DataflowID, "camera"); err != nil {
			t.Fatal(err)
		}
	}
	back.Heartbeat(ctxT(t))
	if !coordtest.Wait(5*time.Second, func() bool { return heartbeatOf(srv, "u-robot").After(before) }) {
		t.Fatal("reports not processed")
	}
	time.Sleep(50 * time.Millisecond) // a Stop those reports sent would arrive by now
	if n := len(back.Stops()); n != 1 {
		close(hold)
		t.Fatalf("%d Stops while the first was in flight, want 1", n)
	}
	close(hold)
	// The stop ended; a report that still lists the dataflow gets a new one.
	if !coordtest.Wait(5*time.Second, func() bool {
		back.ReportRunning(ctxT(t), rep.DataflowID, "camera")
		time.Sleep(20 * time.Millisecond)
		return len(back.Stops()) >= 2
	}) {
		t.Fatal("no Stop after the first one ended")
	}
}

func heartbeatOf(srv *coordtest.Server, id string) time.Time {
	for _, d := range srv.Daemons().Daemons {
		if d.ID == id {
			return d.LastHeartbeat
		}
	}
	return time.Time{}
}
