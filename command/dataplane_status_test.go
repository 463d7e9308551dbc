package command

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/daemon"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/transport/zenoh"
)

// realZenohDaemon runs a real daemon with a real Zenoh session on
// loopback, with the data-plane credentials of the coordinator's token.
func realZenohDaemon(t *testing.T, e *coordEnv, machine string) *zenoh.Session {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	zs, err := zenoh.Open(context.Background(), zenoh.Config{Mode: zenoh.Peer, Listen: []string{"tcp/127.0.0.1:0"}, Logger: log,
		Credentials: daemon.DataPlaneCredentials(coordTestToken), ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zs.Close() })
	d, err := daemon.New(daemon.Config{MachineID: machine, Coordinator: e.srv.Endpoint, Home: t.TempDir(), Logger: log,
		Transport: zs, Endpoints: zs.ListenEndpoints(),
		HeartbeatInterval: 100 * time.Millisecond, MetricsInterval: 100 * time.Millisecond,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return zs
}

// waitOutput runs a command until its output matches re, and returns it.
func (e *coordEnv) waitOutput(re string, c func(ui cli.Ui) interface{ Run([]string) int }, args ...string) string {
	e.t.Helper()
	rx := regexp.MustCompile(re)
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ui := cli.NewMockUi()
		if code := e.run(c(ui), args...); code != 0 {
			e.t.Fatalf("%v exit %d: %s", args, code, ui.ErrorWriter.String())
		}
		if out = ui.OutputWriter.String(); rx.MatchString(out) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("output never matched %q; last:\n%s", re, out)
	return ""
}

func clusterStatus(ui cli.Ui) interface{ Run([]string) int } {
	return &ClusterStatusCommand{Meta: &Meta{Ui: ui}}
}

func topOnce(ui cli.Ui) interface{ Run([]string) int } { return &TopCommand{Meta: &Meta{Ui: ui}} }

// TestDataPlaneInClusterStatusAndTop runs the commands against a real
// coordinator and two real daemons linked over Zenoh, one of which
// loses its data plane, while a stranger without the credentials keeps
// trying to link to the other.
func TestDataPlaneInClusterStatusAndTop(t *testing.T) {
	e := newCoordEnv(t)
	robot := realZenohDaemon(t, e, "robot")
	gpu := realZenohDaemon(t, e, "gpu")
	e.waitOutput(`(?m)^gpu .*\n^robot `, clusterStatus)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: e.srv.Endpoint.Addr, Port: e.srv.Endpoint.Port, Token: coordTestToken})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	df := config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Path: "/bin/sh", Args: []string{"-c", "sleep 60"}, Deploy: config.Deploy{Machine: "robot"}},
		{ID: "detector", Path: "/bin/sh", Args: []string{"-c", "sleep 60"}, Deploy: config.Deploy{Machine: "gpu"}},
	}}
	rep, err := c.Start(ctx, proto.Start{Name: "app", Descriptor: []byte("nodes: [camera, detector]\n"), Dataflow: df})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background(), rep.DataflowID, 0, true)

	e.waitOutput(`(?m)^gpu .* 1/1 peers\n^robot .* 1/1 peers\n`, clusterStatus)

	// A stranger with other credentials dials robot: robot refuses it.
	stranger, err := zenoh.Open(ctx, zenoh.Config{Mode: zenoh.Client, Connect: robot.ListenEndpoints(), Logger: slog.New(slog.DiscardHandler),
		Credentials: daemon.DataPlaneCredentials("another coordinator's token, 32 bytes or more"), ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	e.waitOutput(`(?m)^robot .* 1/1 peers, [1-9][0-9]* auth refused\n`, clusterStatus)

	// top --once carries the same as JSON.
	out := e.waitOutput(`"data_plane"`, topOnce, "--once")
	var top proto.TopReply
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatalf("top --once: %v\n%s", err, out)
	}
	if len(top.DataPlane) != 2 || top.DataPlane[0].MachineID != "gpu" || top.DataPlane[1].PeersUp != 1 {
		t.Fatalf("top --once data plane = %+v", top.DataPlane)
	}

	// gpu's data plane goes away: both sides say the other is unreachable.
	gpu.Close()
	out = e.waitOutput(`(?m)^gpu .* 0/1 peers \(robot unreachable\)\n^robot .* 0/1 peers \(gpu unreachable\), [1-9][0-9]* auth refused\n`, clusterStatus)
	if !regexp.MustCompile(`(?m)^DAEMON ID .* ZENOH$`).MatchString(out) {
		t.Fatalf("no ZENOH column:\n%s", out)
	}
	e.waitOutput(`"unreachable": \[\s*"gpu"\s*\]`, clusterStatus, "--json")
}
