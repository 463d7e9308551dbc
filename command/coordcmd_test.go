package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

const coordTestToken = "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"

type coordEnv struct {
	t     *testing.T
	srv   *coordtest.Server
	flags []string
	dir   string
}

func newCoordEnv(t *testing.T) *coordEnv {
	t.Helper()
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	art := t.TempDir()
	srv := coordtest.Start(t, coordinator.Config{Token: coordTestToken, ArtifactsDir: art, TickInterval: time.Hour})
	return &coordEnv{t: t, srv: srv, dir: t.TempDir(), flags: []string{
		"--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(srv.Endpoint.Port), "--token", coordTestToken,
	}}
}

func (e *coordEnv) daemon(cfg coordtest.DaemonConfig) *coordtest.Daemon {
	e.t.Helper()
	return coordtest.StartDaemonT(e.t, e.srv.Endpoint, cfg)
}

// run runs a command with the coordinator flags appended.
func (e *coordEnv) run(c interface{ Run([]string) int }, args ...string) int {
	return c.Run(append(args, e.flags...))
}

func (e *coordEnv) writeFlow(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

const robotFlow = `nodes:
  - id: camera
    path: ./camera
    _unstable_deploy:
      machine: robot
  - id: detector
    path: ./detector
    _unstable_deploy:
      labels:
        gpu: "true"
`

func TestStartListStatusLogsTopRestartStopCommands(t *testing.T) {
	e := newCoordEnv(t)
	robot := e.daemon(coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	e.daemon(coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu-server", Labels: map[string]string{"gpu": "true"}})
	file := e.writeFlow("dataflow.yml", robotFlow)

	ui := cli.NewMockUi()
	m := &Meta{Ui: ui}
	// Flags after the file work too.
	if code := (&StartCommand{Meta: m}).Run(append([]string{file, "--name", "my-app", "--detach"}, e.flags...)); code != 0 {
		t.Fatalf("start = %d: %s", code, ui.ErrorWriter.String())
	}
	out := ui.OutputWriter.String()
	if !strings.Contains(out, "dataflow `my-app` started: ") || !strings.Contains(out, "camera -> u-robot (machine robot): requested machine") {
		t.Fatalf("start output:\n%s", out)
	}
	sp := robot.Spawns()
	if len(sp) != 1 || sp[0].WorkingDir != e.dir || sp[0].Nodes[0] != "camera" {
		t.Fatalf("spawns = %+v", sp)
	}
	id := sp[0].DataflowID

	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&ListCommand{Meta: m}); code != 0 {
		t.Fatal(ui.ErrorWriter.String())
	}
	if out := ui.OutputWriter.String(); !strings.Contains(out, id) || !strings.Contains(out, "my-app") || !strings.Contains(out, "running") || !strings.Contains(out, "gpu-server,robot") {
		t.Fatalf("list:\n%s", out)
	}

	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&ClusterStatusCommand{Meta: m}); code != 0 {
		t.Fatal(ui.ErrorWriter.String())
	}
	out = ui.OutputWriter.String()
	for _, want := range []string{"DAEMON ID", "LAST HEARTBEAT", "gpu-server", "gpu=true", "robot", "Active dataflows: 1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster status lacks %q:\n%s", want, out)
		}
	}

	ctx := context.Background()
	robot.Log(ctx, proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "frame 1"},
		proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "frame 2"})
	time.Sleep(20 * time.Millisecond)
	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&LogsCommand{Meta: m}, "my-app", "--tail", "1"); code != 0 {
		t.Fatal(ui.ErrorWriter.String())
	}
	if out := ui.OutputWriter.String(); out != "camera: frame 2\n" {
		t.Fatalf("logs --tail 1 = %q", out)
	}
	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&LogsCommand{Meta: m}, "my-app", "camera"); code != 0 || ui.OutputWriter.String() != "frame 1\nframe 2\n" {
		t.Fatalf("logs NODE = %d %q %s", code, ui.OutputWriter.String(), ui.ErrorWriter.String())
	}

	robot.Metrics(ctx, proto.NodeMetric{DataflowID: id, NodeID: "camera", PID: 77, Status: proto.NodeRunning, MemoryBytes: 2048})
	var top proto.TopReply
	coordtest.Wait(5*time.Second, func() bool {
		ui = cli.NewMockUi()
		m.Ui = ui
		if code := e.run(&TopCommand{Meta: m}, "--once"); code != 0 {
			t.Fatal(ui.ErrorWriter.String())
		}
		if err := json.Unmarshal(ui.OutputWriter.Bytes(), &top); err != nil {
			t.Fatalf("top --once is not JSON: %v\n%s", err, ui.OutputWriter.String())
		}
		return len(top.Nodes) == 1
	})
	if len(top.Nodes) != 1 || top.Nodes[0].PID != 77 || top.Nodes[0].DataflowName != "my-app" {
		t.Fatalf("top = %+v", top)
	}

	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&RestartCommand{Meta: m, Cluster: true}, "my-app"); code != 0 {
		t.Fatal(ui.ErrorWriter.String())
	}
	out = ui.OutputWriter.String()
	if !strings.HasPrefix(out, "Restarting dataflow `my-app`\ndataflow restarted: "+id+" -> ") {
		t.Fatalf("cluster restart output:\n%s", out)
	}
	newID := strings.TrimSpace(out[strings.LastIndex(out, "-> ")+3:])

	// cluster restart CLUSTER_FILE NAME takes the coordinator from the file.
	cluster := e.writeFlow("cluster.yml", "coordinator:\n  addr: 127.0.0.1\n  port: "+strconv.Itoa(e.srv.Endpoint.Port)+"\nmachines:\n  - id: robot\n    host: 127.0.0.1\n")
	ui = cli.NewMockUi()
	m.Ui = ui
	if code := (&RestartCommand{Meta: m, Cluster: true}).Run([]string{"--token", coordTestToken, cluster, newID}); code != 0 {
		t.Fatalf("cluster restart FILE NAME = %d: %s", code, ui.ErrorWriter.String())
	}

	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&StopCommand{Meta: m}, "my-app", "--grace-duration", "2s"); code != 0 {
		t.Fatal(ui.ErrorWriter.String())
	}
	if !strings.Contains(ui.OutputWriter.String(), "dataflow `my-app` (") || !strings.Contains(ui.OutputWriter.String(), ") stopped") {
		t.Fatalf("stop output: %s", ui.OutputWriter.String())
	}
	stops := robot.Stops()
	if last := stops[len(stops)-1]; last.Grace != 2*time.Second {
		t.Fatalf("stop grace = %v", last.Grace)
	}

	ui = cli.NewMockUi()
	m.Ui = ui
	if code := e.run(&StopCommand{Meta: m}, "my-app"); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "is not running") {
		t.Fatalf("second stop = %d %s", code, ui.ErrorWriter.String())
	}
}

func TestStartFailuresExitNonZero(t *testing.T) {
	e := newCoordEnv(t)
	e.daemon(coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	m := &Meta{}
	tests := []struct {
		name string
		body string
		want string
	}{
		{"unknown machine", "nodes:\n  - id: a\n    path: /bin/true\n    _unstable_deploy:\n      machine: robt\n", `no matching daemon for machine id "robt"`},
		{"no label match", "nodes:\n  - id: a\n    path: /bin/true\n    _unstable_deploy:\n      labels:\n        gpu: \"true\"\n", `no daemon matches labels {"gpu": "true"}`},
		{"bad file", "nodes: [", "dataflow.yml"},
		{"scp without cluster file", "nodes:\n  - id: a\n    path: ./a\n    _unstable_deploy:\n      machine: robot\n      distribute: scp\n", "give the cluster file (--cluster PATH)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ui := cli.NewMockUi()
			m.Ui = ui
			file := e.writeFlow("dataflow.yml", tt.body)
			if code := e.run(&StartCommand{Meta: m}, "--detach", file); code != 1 {
				t.Fatalf("start = %d", code)
			}
			if !strings.Contains(ui.ErrorWriter.String(), tt.want) {
				t.Fatalf("error %q lacks %q", ui.ErrorWriter.String(), tt.want)
			}
		})
	}
}

func TestStartAttachEndsWithDataflow(t *testing.T) {
	e := newCoordEnv(t)
	robot := e.daemon(coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	file := e.writeFlow("df.yml", "nodes:\n  - id: camera\n    path: /bin/true\n    _unstable_deploy:\n      machine: robot\n")
	ui := cli.NewMockUi()
	done := make(chan int, 1)
	go func() { done <- e.run(&StartCommand{Meta: &Meta{Ui: ui}}, "--attach", "--name", "att", file) }()
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot.Spawns()) == 1 }) {
		t.Fatal("not started")
	}
	id := robot.Spawns()[0].DataflowID
	// Keep logging until the follower sees a line, then fail the node.
	coordtest.Wait(5*time.Second, func() bool {
		robot.Log(context.Background(), proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "hello"})
		time.Sleep(20 * time.Millisecond)
		return strings.Contains(ui.OutputWriter.String(), "camera: hello")
	})
	robot.Finish(context.Background(), id, true, "camera: exited with code 3")
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(ui.ErrorWriter.String(), "dataflow `att` failed: camera: exited with code 3") {
			t.Fatalf("attach = %d, stderr %q", code, ui.ErrorWriter.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not return when the dataflow ended")
	}
	if !strings.Contains(ui.OutputWriter.String(), "camera: hello") {
		t.Fatalf("attach printed no logs: %q", ui.OutputWriter.String())
	}
}

func TestStartUploadsHTTPArtifacts(t *testing.T) {
	e := newCoordEnv(t)
	robot := e.daemon(coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	bin := []byte("#!/bin/sh\necho hi\n")
	if err := os.WriteFile(filepath.Join(e.dir, "camera"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	file := e.writeFlow("df.yml", "nodes:\n  - id: camera\n    path: ./camera\n    _unstable_deploy:\n      machine: robot\n      distribute: http\n")
	ui := cli.NewMockUi()
	if code := e.run(&StartCommand{Meta: &Meta{Ui: ui}}, "--detach", file); code != 0 {
		t.Fatalf("start = %d: %s", code, ui.ErrorWriter.String())
	}
	sum := sha256.Sum256(bin)
	a := robot.Spawns()[0].Artifacts["camera"]
	if a.SHA256 != hex.EncodeToString(sum[:]) || a.BuildID == "" || a.NodeID != "camera" || a.Size != int64(len(bin)) {
		t.Fatalf("artifact = %+v", a)
	}
}

func TestCoordinatorCommandsReportUnreachableCoordinator(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	flags := []string{"--coordinator-addr", "127.0.0.1", "--coordinator-port", "1"}
	for name, c := range map[string]interface{ Run([]string) int }{
		"list":           &ListCommand{},
		"cluster status": &ClusterStatusCommand{},
		"stop":           &StopCommand{},
		"top":            &TopCommand{},
	} {
		ui := cli.NewMockUi()
		setMeta(c, &Meta{Ui: ui})
		args := flags
		if name == "stop" {
			args = append([]string{"x"}, flags...)
		}
		if code := c.Run(args); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "could not connect to coordinator") {
			t.Errorf("%s = %d: %q", name, code, ui.ErrorWriter.String())
		}
	}
}

func setMeta(c any, m *Meta) {
	switch v := c.(type) {
	case *ListCommand:
		v.Meta = m
	case *ClusterStatusCommand:
		v.Meta = m
	case *StopCommand:
		v.Meta = m
	case *TopCommand:
		v.Meta = m
	}
}

func TestReorderArgs(t *testing.T) {
	fs := coordFlagSet("x")
	fs.String("name", "", "")
	fs.Bool("detach", false, "")
	got := reorderArgs([]string{"df.yml", "--name", "a", "--detach", "--name=b", "--", "-odd"}, fs)
	want := "--name a --detach --name=b -- df.yml -odd"
	if strings.Join(got, " ") != want {
		t.Fatalf("reorderArgs = %q, want %q", strings.Join(got, " "), want)
	}
}

func TestCoordFlagsEnvDefaults(t *testing.T) {
	t.Setenv("ADORA_COORDINATOR_ADDR", "10.0.0.1")
	t.Setenv("ADORA_COORDINATOR_PORT", "7000")
	t.Setenv("ADORA_AUTH_TOKEN", "envtoken")
	var cf coordFlags
	fs := coordFlagSet("x")
	cf.register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	o, err := cf.options()
	if err != nil || o.Addr != "10.0.0.1" || o.Port != 7000 || o.Token != "envtoken" {
		t.Fatalf("options = %+v, %v", o, err)
	}
}

func TestRenderClusterStatusNoDaemons(t *testing.T) {
	got := renderClusterStatus(proto.DaemonsReply{ActiveDataflows: 2})
	if got != "No daemons connected.\n\nActive dataflows: 2" {
		t.Fatalf("render = %q", got)
	}
}

func TestRenderClusterStatusShowsDisconnected(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	got := renderClusterStatus(proto.DaemonsReply{Now: now, ActiveDataflows: 1, Daemons: []proto.DaemonInfo{
		{ID: "u1", MachineID: "robot", Version: "1.0", Connected: true, LastHeartbeat: now.Add(-2 * time.Second), Labels: map[string]string{"b": "2", "a": "1"}, NodesRunning: 3, Hostname: "bot"},
		{ID: "u2", Version: "1.0", LastHeartbeat: now.Add(-5 * time.Minute)},
	}})
	want := "DAEMON ID  LAST HEARTBEAT         MACHINE  VERSION  LABELS   NODES  HOST\n" +
		"robot      2s ago                 robot    1.0      a=1,b=2  3      bot\n" +
		"u2         disconnected (5m ago)  -        1.0      -        0      -\n" +
		"\nActive dataflows: 1"
	if got != want {
		t.Fatalf("render:\n%s\nwant:\n%s", got, want)
	}
}

func TestCoordinatorCommandServesWithStableToken(t *testing.T) {
	home := t.TempDir()
	t.Setenv("ADORA_HOME", home)
	t.Setenv("ADORA_AUTH_TOKEN", "")
	var tokens []string
	for round := 0; round < 2; round++ {
		ui := cli.NewMockUi()
		done := make(chan int, 1)
		go func() {
			done <- (&CoordinatorCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--interface", "127.0.0.1", "--port", "0", "--store", "file"})
		}()
		var port int
		if !coordtest.Wait(10*time.Second, func() bool {
			out := ui.OutputWriter.String()
			i := strings.Index(out, "(port ")
			if i < 0 {
				return false
			}
			port, _ = strconv.Atoi(strings.TrimSuffix(strings.Fields(out[i+6:])[0], ")"))
			return port > 0
		}) {
			t.Fatalf("coordinator did not start: %s %s", ui.OutputWriter.String(), ui.ErrorWriter.String())
		}
		fi, err := os.Stat(filepath.Join(home, "token"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("token file: %v %v", fi, err)
		}
		tok, _ := os.ReadFile(filepath.Join(home, "token"))
		tokens = append(tokens, strings.TrimSpace(string(tok)))
		if strings.Contains(ui.OutputWriter.String()+ui.ErrorWriter.String(), tokens[round]) {
			t.Fatal("the coordinator printed its token")
		}
		// The CLI finds the token in ADORA_HOME by itself.
		lui := cli.NewMockUi()
		if code := (&ListCommand{Meta: &Meta{Ui: lui}}).Run([]string{"--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(port)}); code != 0 {
			t.Fatalf("list = %d: %s", code, lui.ErrorWriter.String())
		}
		// cluster down's Destroy ends the coordinator.
		opts := []string{"--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(port)}
		var cf coordFlags
		fs := coordFlagSet("x")
		cf.register(fs)
		fs.Parse(opts)
		cl, err := cf.dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		select {
		case code := <-done:
			if code != 0 || !strings.Contains(ui.OutputWriter.String(), "Coordinator destroyed") {
				t.Fatalf("coordinator = %d: %s", code, ui.OutputWriter.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("coordinator did not exit after destroy")
		}
	}
	if tokens[0] == "" || tokens[0] != tokens[1] {
		t.Fatal("the token changed across restarts")
	}
	if _, err := os.Stat(filepath.Join(home, "coordinator.db")); err != nil {
		t.Fatalf("store file: %v", err)
	}
}

func TestRenderList(t *testing.T) {
	now := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
	got := renderList([]proto.DataflowInfo{
		{ID: "id-1", Name: "app", Status: proto.FlowRunning, CreatedAt: now.Add(-90 * time.Second),
			Placements: []proto.Placement{{NodeID: "a", MachineID: "robot"}, {NodeID: "b", DaemonID: "0123456789"}},
			Nodes:      []proto.NodeState{{NodeID: "a", Status: proto.NodeFailed}}},
		{ID: "id-2", Name: "old", Status: proto.FlowFailed, Error: "b: exited with code 1", CreatedAt: now.Add(-3 * time.Hour)},
	}, now)
	want := "UUID  NAME  STATUS                          NODES  MACHINES        AGE\n" +
		"id-1  app   running (1 node(s) failed)      2      01234567,robot  1m ago\n" +
		"id-2  old   failed (b: exited with code 1)  0      -               3h ago"
	if got != want {
		t.Fatalf("renderList:\n%s\nwant:\n%s", got, want)
	}
}

func TestLogsFollowEndsWithTheDataflow(t *testing.T) {
	e := newCoordEnv(t)
	robot := e.daemon(coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	file := e.writeFlow("df.yml", "nodes:\n  - id: camera\n    path: /bin/true\n    _unstable_deploy:\n      machine: robot\n")
	if code := e.run(&StartCommand{Meta: &Meta{Ui: cli.NewMockUi()}}, "--detach", "--name", "f", file); code != 0 {
		t.Fatal("start failed")
	}
	id := robot.Spawns()[0].DataflowID
	ui := cli.NewMockUi()
	done := make(chan int, 1)
	go func() { done <- e.run(&LogsCommand{Meta: &Meta{Ui: ui}}, "f", "camera", "--follow") }()
	coordtest.Wait(5*time.Second, func() bool {
		robot.Log(context.Background(), proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "live"})
		time.Sleep(20 * time.Millisecond)
		return strings.Contains(ui.OutputWriter.String(), "live\n")
	})
	robot.Finish(context.Background(), id, false, "")
	select {
	case code := <-done:
		if code != 0 || !strings.HasPrefix(ui.OutputWriter.String(), "live\n") || !strings.Contains(ui.OutputWriter.String(), "dataflow succeeded") {
			t.Fatalf("logs -f = %d, out %q err %q", code, ui.OutputWriter.String(), ui.ErrorWriter.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs --follow did not end with the dataflow")
	}
}

func TestStopWithoutNameStopsTheOnlyDataflow(t *testing.T) {
	e := newCoordEnv(t)
	robot := e.daemon(coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	ui := cli.NewMockUi()
	if code := e.run(&StopCommand{Meta: &Meta{Ui: ui}}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "no dataflow is running") {
		t.Fatalf("stop with nothing running = %d %q", code, ui.ErrorWriter.String())
	}
	flow := "nodes:\n  - id: camera\n    path: /bin/true\n    _unstable_deploy:\n      machine: robot\n"
	for _, name := range []string{"one", "two"} {
		if code := e.run(&StartCommand{Meta: &Meta{Ui: cli.NewMockUi()}}, "--detach", "--name", name, e.writeFlow(name+".yml", flow)); code != 0 {
			t.Fatal("start failed")
		}
	}
	ui = cli.NewMockUi()
	if code := e.run(&StopCommand{Meta: &Meta{Ui: ui}}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "2 dataflows are running (one, two)") {
		t.Fatalf("stop with two running = %d %q", code, ui.ErrorWriter.String())
	}
	if code := e.run(&StopCommand{Meta: &Meta{Ui: cli.NewMockUi()}}, "two"); code != 0 {
		t.Fatal("stop two failed")
	}
	ui = cli.NewMockUi()
	if code := e.run(&StopCommand{Meta: &Meta{Ui: ui}}); code != 0 || !strings.Contains(ui.OutputWriter.String(), "dataflow `one`") {
		t.Fatalf("stop the only one = %d %q %q", code, ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
	if n := len(robot.Stops()); n != 2 {
		t.Fatalf("%d stops", n)
	}
}

func TestRenderTop(t *testing.T) {
	if got := renderTop(proto.TopReply{}); got != "No nodes running." {
		t.Fatalf("empty top = %q", got)
	}
	got := renderTop(proto.TopReply{Nodes: []proto.NodeMetric{
		{DataflowName: "app", NodeID: "camera", MachineID: "robot", PID: 42, CPUPercent: 12.345, MemoryBytes: 3 << 20, Restarts: 1, Status: proto.NodeRunning, Drops: 9},
		{DataflowName: "app", NodeID: "x", DaemonID: "0123456789ab", Status: proto.NodeRestarting, MemoryBytes: 512},
	}})
	want := "DATAFLOW  NODE    MACHINE   PID  CPU%  MEMORY   RESTARTS  STATUS      DROPS\n" +
		"app       camera  robot     42   12.3  3.0 MiB  1         running     9\n" +
		"app       x       01234567  -    0.0   512 B    0         restarting  0"
	if got != want {
		t.Fatalf("renderTop:\n%s\nwant:\n%s", got, want)
	}
}

func TestCoordFlagsHostPort(t *testing.T) {
	t.Setenv("ADORA_AUTH_TOKEN", "x")
	for in, want := range map[string]string{
		"10.0.0.1:7000": "10.0.0.1 7000", "robot.local": "robot.local 6013", "::1": "::1 6013", "[::1]:7001": "::1 7001",
	} {
		var cf coordFlags
		fs := coordFlagSet("x")
		cf.register(fs)
		if err := fs.Parse([]string{"--coordinator-addr", in}); err != nil {
			t.Fatal(err)
		}
		o, err := cf.options()
		if err != nil || fmt.Sprintf("%s %d", o.Addr, o.Port) != want {
			t.Errorf("%s: %+v, %v; want %s", in, o, err, want)
		}
	}
}

func TestLogsFollowSurvivesCoordinatorRestart(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	st := store.NewMemory()
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: time.Hour})
	port := srv.Endpoint.Port
	ctx := context.Background()
	robot, err := coordtest.StartDaemon(ctx, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	req := proto.Start{Name: "f", Descriptor: []byte("x"), Dataflow: config.Dataflow{Nodes: []config.Node{{ID: "camera", Path: "/bin/true", Deploy: config.Deploy{Machine: "robot"}}}}}
	rep, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	id := rep.DataflowID
	base := time.Now()
	robot.Log(ctx, proto.LogLine{DataflowID: id, NodeID: "camera", Time: base, Line: "before"})

	ui := cli.NewMockUi()
	done := make(chan int, 1)
	go func() {
		done <- (&LogsCommand{Meta: &Meta{Ui: ui}}).Run([]string{"f", "camera", "--follow", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(port)})
	}()
	if !coordtest.Wait(5*time.Second, func() bool { return strings.Contains(ui.OutputWriter.String(), "before\n") }) {
		t.Fatal("history not shown")
	}
	time.Sleep(50 * time.Millisecond) // the follow is live
	robot.Close()
	srv.Stop()

	// The coordinator comes back on the same port; the daemon too.
	srv2 := coordtest.StartOn(t, coordinator.Config{Store: st, TickInterval: time.Hour}, port)
	robot2, err := coordtest.StartDaemon(ctx, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: map[string][]string{id: {"camera"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer robot2.Close()
	robot2.Log(ctx, proto.LogLine{DataflowID: id, NodeID: "camera", Time: base, Line: "before"}) // the daemon's history
	coordtest.Wait(10*time.Second, func() bool {
		robot2.Log(ctx, proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "after"})
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(ui.OutputWriter.String(), "after\n")
	})
	robot2.Finish(ctx, id, false, "")
	select {
	case code := <-done:
		out := ui.OutputWriter.String()
		if code != 0 || strings.Count(out, "before\n") != 1 || !strings.Contains(out, "after\n") || !strings.Contains(ui.ErrorWriter.String(), "reconnecting") {
			t.Fatalf("logs -f across a restart = %d\nout %q\nerr %q", code, out, ui.ErrorWriter.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("follow did not end; out %q err %q", ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
}

func TestStartAttachSurvivesCoordinatorRestart(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	st := store.NewMemory()
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: time.Hour})
	port := srv.Endpoint.Port
	ctx := context.Background()
	robot, err := coordtest.StartDaemon(ctx, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "df.yml")
	os.WriteFile(file, []byte("nodes:\n  - id: camera\n    path: /bin/true\n    _unstable_deploy:\n      machine: robot\n"), 0o644)
	ui := cli.NewMockUi()
	done := make(chan int, 1)
	go func() {
		done <- (&StartCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--attach", "--name", "a", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(port), file})
	}()
	if !coordtest.Wait(5*time.Second, func() bool { return len(robot.Spawns()) == 1 }) {
		t.Fatal("not started")
	}
	id := robot.Spawns()[0].DataflowID
	coordtest.Wait(5*time.Second, func() bool {
		robot.Log(ctx, proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "one"})
		time.Sleep(30 * time.Millisecond)
		return strings.Contains(ui.OutputWriter.String(), "camera: one\n")
	})
	robot.Close()
	srv.Stop()

	srv2 := coordtest.StartOn(t, coordinator.Config{Store: st, TickInterval: time.Hour}, port)
	robot2, err := coordtest.StartDaemon(ctx, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: map[string][]string{id: {"camera"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer robot2.Close()
	coordtest.Wait(10*time.Second, func() bool {
		robot2.Log(ctx, proto.LogLine{DataflowID: id, NodeID: "camera", Time: time.Now(), Line: "two"})
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(ui.OutputWriter.String(), "camera: two\n")
	})
	robot2.Finish(ctx, id, false, "")
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(ui.OutputWriter.String(), "dataflow `a` succeeded") || !strings.Contains(ui.ErrorWriter.String(), "reconnecting") {
			t.Fatalf("attach across a restart = %d\nout %q\nerr %q", code, ui.OutputWriter.String(), ui.ErrorWriter.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("attach did not end; out %q err %q", ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
}

// Across a coordinator restart, follow resumes after the last line shown
// of each node: a line of another node older than the newest line shown,
// or one with the very timestamp of a shown line, is shown once, and no
// line twice.
func TestLogsFollowResumesEachNodeExactlyOnce(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	st := store.NewMemory()
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: time.Hour})
	port := srv.Endpoint.Port
	ctx := context.Background()
	robot, err := coordtest.StartDaemon(ctx, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	req := proto.Start{Name: "f", Descriptor: []byte("x"), Dataflow: config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Path: "/bin/true", Deploy: config.Deploy{Machine: "robot"}},
		{ID: "lidar", Path: "/bin/true", Deploy: config.Deploy{Machine: "robot"}},
	}}}
	rep, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	id := rep.DataflowID
	base := time.Now()
	mk := func(node, text string, sec int) proto.LogLine {
		return proto.LogLine{DataflowID: id, NodeID: node, Stream: proto.Stdout, Time: base.Add(time.Duration(sec) * time.Second), Line: text}
	}
	c1, c1b, c2, l3, l4 := mk("camera", "c1", 1), mk("camera", "c1b", 1), mk("camera", "c2", 2), mk("lidar", "l3", 3), mk("lidar", "l4", 4)
	robot.Log(ctx, c1)

	ui := cli.NewMockUi()
	done := make(chan int, 1)
	go func() {
		done <- (&LogsCommand{Meta: &Meta{Ui: ui}}).Run([]string{"f", "--follow", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(port)})
	}()
	shown := func(s string) bool { return strings.Contains(ui.OutputWriter.String(), s+"\n") }
	if !coordtest.Wait(5*time.Second, func() bool { return shown("c1") }) {
		t.Fatal("history not shown")
	}
	if !coordtest.Wait(5*time.Second, func() bool {
		robot.Stream(ctx, l3) // until the follow is live
		time.Sleep(30 * time.Millisecond)
		return shown("l3")
	}) {
		t.Fatal("live line not shown")
	}
	robot.Close()
	srv.Stop()

	srv2 := coordtest.StartOn(t, coordinator.Config{Store: st, TickInterval: time.Hour}, port)
	robot2, err := coordtest.StartDaemon(ctx, srv2.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: map[string][]string{id: {"camera", "lidar"}},
		History: []proto.LogLine{c1, l3}})
	if err != nil {
		t.Fatal(err)
	}
	defer robot2.Close()
	if !coordtest.Wait(10*time.Second, func() bool {
		robot2.Stream(ctx, l4) // until the follow is live again
		time.Sleep(30 * time.Millisecond)
		return shown("l4")
	}) {
		t.Fatal("follow did not resume")
	}
	// Older than the newest line shown (l4), from another node; c1b
	// even has c1's very timestamp.
	robot2.Stream(ctx, c1b, c2)
	if !coordtest.Wait(10*time.Second, func() bool { return shown("c2") && shown("c1b") }) {
		t.Fatalf("lines of a node behind the others not shown: %q", ui.OutputWriter.String())
	}
	robot2.Finish(ctx, id, false, "")
	select {
	case code := <-done:
		out := ui.OutputWriter.String()
		for _, s := range []string{"c1", "c1b", "c2", "l3", "l4"} {
			if n := strings.Count(out, " "+s+"\n"); n != 1 {
				t.Errorf("line %s shown %d times", s, n)
			}
		}
		if code != 0 {
			t.Fatalf("logs -f = %d\nout %q\nerr %q", code, out, ui.ErrorWriter.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("follow did not end; out %q err %q", ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
}

func TestCoordinatorCommandUnknownGrace(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	ui := cli.NewMockUi()
	if code := (&CoordinatorCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--unknown-grace", "soon"}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "unknown-grace") {
		t.Fatalf("bad --unknown-grace = %d: %s", code, ui.ErrorWriter.String())
	}

	ui = cli.NewMockUi()
	done := make(chan int, 1)
	go func() {
		done <- (&CoordinatorCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--interface", "127.0.0.1", "--port", "0", "--store", "memory", "--auth=false", "--unknown-grace", "-1s"})
	}()
	var port int
	if !coordtest.Wait(10*time.Second, func() bool {
		out := ui.OutputWriter.String()
		i := strings.Index(out, "(port ")
		if i < 0 {
			return false
		}
		port, _ = strconv.Atoi(strings.TrimSuffix(strings.Fields(out[i+6:])[0], ")"))
		return port > 0
	}) {
		t.Fatalf("coordinator did not start: %s %s", ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
	ep := wsconn.Endpoint{Addr: "127.0.0.1", Port: port}
	d, err := coordtest.StartDaemon(context.Background(), ep, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", Running: map[string][]string{"df-ghost": {"cam"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !coordtest.Wait(10*time.Second, func() bool { return strings.Contains(ui.ErrorWriter.String(), "has no record of; leaving it alone") }) {
		t.Fatalf("a negative --unknown-grace did not reach the coordinator: %s", ui.ErrorWriter.String())
	}
	cl, err := client.Dial(context.Background(), client.Options{Addr: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("coordinator did not exit after destroy")
	}
}

func TestFormatLineWithoutNode(t *testing.T) {
	note := proto.LogLine{Stream: proto.System, Line: "... 3 lines dropped"}
	if got := formatLine(note, true); got != "... 3 lines dropped" {
		t.Fatalf("coordinator note = %q", got)
	}
	if got := formatLine(proto.LogLine{NodeID: "cam", Line: "hi"}, true); got != "cam: hi" {
		t.Fatalf("node line = %q", got)
	}
}

func TestCoordinatorCommandSpawnTimeout(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	for _, arg := range []string{"soon", "0s", "-1m"} {
		ui := cli.NewMockUi()
		code := (&CoordinatorCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--store", "memory", "--port", "0", "--spawn-timeout", arg})
		if code != 1 || !strings.Contains(ui.ErrorWriter.String(), "spawn-timeout") {
			t.Fatalf("--spawn-timeout %s = %d: %s", arg, code, ui.ErrorWriter.String())
		}
	}
}
