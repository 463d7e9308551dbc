package coordinator_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
)

// beat has every daemon send a heartbeat at the clock's time and waits
// until the coordinator recorded them all.
func beat(t *testing.T, srv *coordtest.Server, clock *coordtest.Clock, ds ...*coordtest.Daemon) {
	t.Helper()
	for _, d := range ds {
		if err := d.Heartbeat(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if !coordtest.Wait(5*time.Second, func() bool {
		for _, d := range srv.Daemons().Daemons {
			if !d.LastHeartbeat.Equal(clock.Now()) {
				return false
			}
		}
		return true
	}) {
		t.Fatal("heartbeats not recorded")
	}
}

func stoppedIDs(d *coordtest.Daemon) []string {
	var ids []string
	for _, s := range d.Stops() {
		ids = append(ids, s.DataflowID)
	}
	return ids
}

// A daemon that reports a dataflow nobody knows (the coordinator came back
// with an empty memory store) has it stopped once the grace window passed,
// with the reason in the Stop; dataflows the coordinator runs, or that
// its store knows, are never stopped so, even when the store learns of
// one only during the grace window.
func TestUnknownDataflowStoppedAfterGrace(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	logger, logs := newLogger()
	st := store.NewMemory()
	srv := coordtest.Start(t, coordinator.Config{Store: st, Clock: clock, TickInterval: quietTick, Logger: logger, UnknownGrace: time.Minute})
	// A dataflow this coordinator starts (known from before its spawn).
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", ReportOnSpawn: true})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	rep, err := dial(t, srv.Endpoint).Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	// One the store knows as running, though this coordinator does not run it.
	if err := st.PutDataflow(store.DataflowRecord{ID: "df-stored", Name: "stored", Status: proto.FlowRunning, CreatedAt: epoch}); err != nil {
		t.Fatal(err)
	}
	other := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-other", MachineID: "other", ReportOnSpawn: true,
		Running: map[string][]string{"df-ghost": {"cam"}, "df-late": {"cam"}, "df-stored": {"cam"}}})
	if !coordtest.Wait(5*time.Second, func() bool { return logs.Count("has no record of; stopping it in 1m0s") == 2 }) {
		t.Fatalf("unknown dataflows not noted:\n%s", logs)
	}
	if n := logs.Count("dataflow=df-stored"); n != 0 {
		t.Fatalf("a dataflow the store knows was taken for unknown:\n%s", logs)
	}

	all := []*coordtest.Daemon{robot, gpu, other}
	clock.Advance(59 * time.Second)
	beat(t, srv, clock, all...)
	srv.Tick()
	if n := logs.Count("stopping a dataflow this coordinator has no record of"); n != 0 {
		t.Fatalf("stopped before the grace window passed:\n%s", logs)
	}
	// The store learns of df-late meanwhile: it must survive.
	if err := st.PutDataflow(store.DataflowRecord{ID: "df-late", Name: "late", Status: proto.FlowRunning, CreatedAt: epoch}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	beat(t, srv, clock, all...)
	srv.Tick()
	if !coordtest.Wait(5*time.Second, func() bool { return len(other.Stops()) == 1 }) {
		t.Fatalf("unknown dataflow not stopped after the grace window:\n%s", logs)
	}
	stop := other.Stops()[0]
	if stop.DataflowID != "df-ghost" || !strings.Contains(stop.Reason, "no coordinator has a record of dataflow df-ghost") {
		t.Fatalf("stop = %+v", stop)
	}
	if !coordtest.Wait(5*time.Second, func() bool { return logs.Count("stopped a dataflow this coordinator had no record of") == 1 }) {
		t.Fatalf("no log line for the stop:\n%s", logs)
	}

	// Much later: nothing else is stopped, the dataflow it runs included.
	for range 3 {
		clock.Advance(2 * time.Minute)
		beat(t, srv, clock, all...)
		srv.Tick()
	}
	// A round trip through the coordinator orders the test after any stop
	// those ticks could have sent.
	if _, err := dial(t, srv.Endpoint).List(ctxT(t), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := stoppedIDs(other); !slices.Equal(got, []string{"df-ghost"}) {
		t.Fatalf("stops on the other daemon = %v, want only df-ghost", got)
	}
	if got := stoppedIDs(robot); len(got) != 0 {
		t.Fatalf("the running dataflow %s was stopped: %v", rep.DataflowID, got)
	}
	if got := other.Running("df-stored"); len(got) != 1 {
		t.Fatalf("df-stored nodes = %v", got)
	}
}

// With a negative grace unknown dataflows are left alone (and said so).
func TestUnknownDataflowLeftAloneWithNegativeGrace(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	logger, logs := newLogger()
	srv := coordtest.Start(t, coordinator.Config{Clock: clock, TickInterval: quietTick, Logger: logger, UnknownGrace: -1})
	other := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-other", MachineID: "other", Running: map[string][]string{"df-ghost": {"cam"}}})
	if !coordtest.Wait(5*time.Second, func() bool { return logs.Count("has no record of; leaving it alone") == 1 }) {
		t.Fatalf("unknown dataflow not noted:\n%s", logs)
	}
	clock.Advance(time.Hour)
	beat(t, srv, clock, other)
	srv.Tick()
	if n := logs.Count("stopping a dataflow"); n != 0 || len(other.Stops()) != 0 {
		t.Fatalf("stopped with a negative grace:\n%s", logs)
	}
}

// The grace window of an unknown dataflow runs on across reconnections of
// its daemon: one that reconnects more often than the window still has it
// stopped.
func TestUnknownGraceSurvivesReconnects(t *testing.T) {
	clock := coordtest.NewClock(epoch)
	logger, logs := newLogger()
	srv := coordtest.Start(t, coordinator.Config{Clock: clock, TickInterval: quietTick, Logger: logger, UnknownGrace: time.Minute})
	cfg := coordtest.DaemonConfig{UUID: "u-other", MachineID: "other", Running: map[string][]string{"df-ghost": {"cam"}}}
	d := coordtest.StartDaemonT(t, srv.Endpoint, cfg)
	if !coordtest.Wait(5*time.Second, func() bool { return logs.Count("stopping it in 1m0s") == 1 }) {
		t.Fatalf("unknown dataflow not noted:\n%s", logs)
	}
	for range 2 { // 2 x 40 s, reconnecting in between
		clock.Advance(40 * time.Second)
		d.Close()
		if !coordtest.Wait(5*time.Second, func() bool { return len(srv.Daemons().Daemons) == 0 }) {
			t.Fatal("daemon still connected")
		}
		d = coordtest.StartDaemonT(t, srv.Endpoint, cfg)
		// A tick maybe before its first report must not forget the
		// dataflow; then wait for the report.
		srv.Tick()
		if !coordtest.Wait(5*time.Second, func() bool {
			ds := srv.Daemons().Daemons
			return len(ds) == 1 && len(ds[0].Dataflows) == 1
		}) {
			t.Fatal("daemon not back")
		}
		beat(t, srv, clock, d)
		srv.Tick()
	}
	if !coordtest.Wait(5*time.Second, func() bool { return len(d.Stops()) == 1 }) {
		t.Fatalf("unknown dataflow not stopped after 80 s across reconnects:\n%s", logs)
	}
	if n := logs.Count("stopping it in 1m0s"); n != 1 {
		t.Fatalf("noted %d times, want once:\n%s", n, logs)
	}
}
