package command

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// opsOnCoordinator is a fleetOps talking to a real coordinator on
// loopback, with a fake daemon for bot-01 (label gpu=true) connected, and
// the dataflow of deployProject.
func opsOnCoordinator(t *testing.T, machines ...config.Machine) (*fleetOps, *coordtest.Daemon, *config.Dataflow, client.Options) {
	t.Helper()
	dir := deployProject(t)
	srv := coordtest.Start(t, coordinator.Config{Token: "test-token", ArtifactsDir: t.TempDir()})
	d := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "d-bot-01", MachineID: "bot-01", Labels: map[string]string{"gpu": "true"}, ReportOnSpawn: true})
	ops, err := newFleetOps(&config.Cluster{Coordinator: config.Coordinator{Addr: "127.0.0.1", Port: srv.Endpoint.Port}, Machines: machines})
	if err != nil {
		t.Fatal(err)
	}
	df, diags := config.LoadDataflow(filepath.Join(dir, "app.yml"))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return ops, d, df, ops.coord
}

func active(t *testing.T, opts client.Options, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	flows, err := cl.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Name == name {
			return true
		}
	}
	return false
}

// TestStopOfFinishedDataflowSucceeds: a dataflow that finished by itself
// already meets a stop's goal, so destroy (and a restart's stop step)
// succeeds; a running one is still stopped.
func TestStopOfFinishedDataflowSucceeds(t *testing.T) {
	ops, d, df, opts := opsOnCoordinator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := ops.Start(ctx, "my-app", df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(ctx, id, false, ""); err != nil {
		t.Fatal(err)
	}
	if !coordtest.Wait(10*time.Second, func() bool { return !active(t, opts, "my-app") }) {
		t.Fatal("the dataflow did not finish")
	}
	if err := ops.Stop(ctx, "my-app", id); err != nil {
		t.Fatalf("stop of a finished dataflow: %v", err)
	}
	if err := ops.Stop(ctx, "never-started", ""); err != nil {
		t.Fatalf("stop of a dataflow the coordinator never ran: %v", err)
	}

	id2, err := ops.Start(ctx, "my-app", df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.Stop(ctx, "my-app", id2); err != nil {
		t.Fatalf("stop of a running dataflow: %v", err)
	}
	stopped := false
	for _, s := range d.Stops() {
		stopped = stopped || s.DataflowID == id2
	}
	if !stopped {
		t.Fatalf("the running dataflow was not stopped on its daemon: stops %+v", d.Stops())
	}
}

// TestStartSendsThePlannedDescriptor: the descriptor the coordinator
// stores parses into the dataflow that was planned (same descriptor hash),
// for a dataflow inline in the cluster file and for HCL with variables.
func TestStartSendsThePlannedDescriptor(t *testing.T) {
	ops, _, _, opts := opsOnCoordinator(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inline := write("cluster.yml", `coordinator:
  addr: 127.0.0.1
machines:
  - id: bot-01
    host: 127.0.0.1
dataflows:
  - name: inline-app
    nodes:
      - id: camera
        path: ./camera
        outputs: [image]
        _unstable_deploy:
          machine: bot-01
`)
	hcl := write("app.hcl", `variable "rate" {
  default = 10
}
node "camera" {
  path    = "./camera"
  args    = "--rate ${var.rate}"
  outputs = ["image"]
  _unstable_deploy {
    machine = "bot-01"
  }
}
`)
	_, dfs, diags := config.LoadProject(inline)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	hclDF, diags := config.LoadDataflowOptions(hcl, config.Options{Vars: map[string]string{"rate": "30"}})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for name, df := range map[string]*config.Dataflow{"inline-app": dfs["inline-app"], "hcl-app": hclDF} {
		if df == nil {
			t.Fatalf("%s: not loaded", name)
		}
		if _, err := ops.Start(ctx, name, df, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		info, err := cl.Info(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		stored, diags := config.ParseDataflow(info.Descriptor, name+".yml")
		if diags.HasErrors() {
			t.Fatalf("%s: stored descriptor does not parse: %v\n%s", name, diags.Err(), info.Descriptor)
		}
		if got, want := plan.DescriptorHash(stored), plan.DescriptorHash(df); got != want {
			t.Errorf("%s: stored descriptor differs from the planned one:\n%s", name, info.Descriptor)
		}
		if strings.Contains(string(info.Descriptor), "machines:") || strings.Contains(string(info.Descriptor), "var.rate") {
			t.Errorf("%s: stored descriptor is a source file, not the planned dataflow:\n%s", name, info.Descriptor)
		}
	}
}

// TestStartDeliversHTTPNodes: apply's start uploads the binary of a node
// with distribute: http to the coordinator before starting, as adora
// start does, so its daemon is told which artifact to fetch.
func TestStartDeliversHTTPNodes(t *testing.T) {
	ops, d, _, _ := opsOnCoordinator(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "camera")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho camera v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(dir, "app.yml")
	if err := os.WriteFile(app, []byte(`nodes:
  - id: camera
    path: ./camera
    outputs: [image]
    _unstable_deploy:
      machine: bot-01
      distribute: http
`), 0o644); err != nil {
		t.Fatal(err)
	}
	df, diags := config.LoadDataflow(app)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	want, err := fileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	if got := nodeBinaries(map[string]*config.Dataflow{"cam": df})["cam"]["camera"]; got != want {
		t.Fatalf("planned sha256 of camera = %q; want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := ops.Start(ctx, "cam", df, nil)
	if err != nil {
		t.Fatal(err)
	}
	var spawned bool
	for _, s := range d.Spawns() {
		if s.DataflowID != id {
			continue
		}
		spawned = true
		a, ok := s.Artifacts["camera"]
		if !ok || a.SHA256 != want {
			t.Fatalf("spawn of camera carries artifacts %+v; want camera at sha256 %s", s.Artifacts, want)
		}
	}
	if !spawned {
		t.Fatal("the dataflow was not spawned on bot-01")
	}

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Start(ctx, "cam-2", df, nil); err == nil || !strings.Contains(err.Error(), "build it on this machine first") {
		t.Fatalf("start with the http node's binary missing: %v; want an error saying to build it", err)
	}
}

// TestPlanRestartsWhenADeliveredBinaryChanged: apply records the sha256
// of each delivered node binary; a rebuilt binary plans a restart.
func TestPlanRestartsWhenADeliveredBinaryChanged(t *testing.T) {
	dir := deployProject(t)
	app := filepath.Join(dir, "app.yml")
	body := strings.Replace(readTestFile(t, app), "      machine: bot-01\n", "      machine: bot-01\n      distribute: http\n", 1)
	if err := os.WriteFile(app, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cam := filepath.Join(dir, "camera")
	if err := os.WriteFile(cam, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, dfs, diags := config.LoadProject(filepath.Join(dir, "cluster.yml"))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	bin, err := desiredBinary(filepath.Join(dir, "adora-bin"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := newFleetOps(c)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compute(nil, nil, plan.Desired{Cluster: c, Dataflows: dfs, Binary: bin, Placer: plan.DefaultPlacer,
		UnitHashes: ops.unitHashes(c), NodeBinaries: nodeBinaries(dfs)})
	if err != nil {
		t.Fatal(err)
	}
	st := state.New("test")
	for _, ch := range p.Changes {
		plan.Record(st, ch, "uuid-1")
	}
	st.Coordinator = p.Coordinator
	if a := st.Dataflows["my-app"].Artifacts; len(a) != 1 || a[0].Node != "camera" || a[0].Machine != "bot-01" {
		t.Fatalf("recorded artifacts = %+v; want camera on bot-01", a)
	}
	if err := statefile.New(filepath.Join(dir, "adora.state")).Write(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 0 {
		t.Fatalf("plan with the same binary: exit %d\n%s\n%s", code, out, errs)
	}
	if err := os.WriteFile(cam, []byte("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 2 || !strings.Contains(out, "node camera binary changed") || !strings.Contains(out, "1 to restart") {
		t.Fatalf("plan after rebuilding camera: exit %d\n%s\n%s", code, out, errs)
	}

	// A saved plan restarts with the v2 binary; rebuilt again before the
	// apply, the plan is stale.
	saved := filepath.Join(dir, "restart.plan")
	if code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-out", saved)...); code != 0 {
		t.Fatalf("plan -out: exit %d\n%s\n%s", code, out, errs)
	}
	if err := os.WriteFile(cam, []byte("v3"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, &ApplyCommand{}, "-state", filepath.Join(dir, "adora.state"), saved)
	if code != 1 || !strings.Contains(errs, "saved plan is stale: the binary of node camera of dataflow my-app changed") {
		t.Fatalf("apply of a saved plan after rebuilding camera: exit %d\n%s", code, errs)
	}
}

// TestStartDeliversSCPNodes: apply's start pushes the binary of a node
// with distribute: scp to the machines it can run on, where its daemon
// looks (here this machine, with a working directory elsewhere).
func TestStartDeliversSCPNodes(t *testing.T) {
	ops, d, _, _ := opsOnCoordinator(t, config.Machine{ID: "bot-01", Local: true, Labels: map[string]string{"gpu": "true"}})
	dir, remoteDir := t.TempDir(), t.TempDir()
	body := []byte("#!/bin/sh\necho camera scp\n")
	if err := os.WriteFile(filepath.Join(dir, "camera"), body, 0o755); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(dir, "app.yml")
	if err := os.WriteFile(app, []byte(`nodes:
  - id: camera
    path: ./camera
    outputs: [image]
    _unstable_deploy:
      machine: bot-01
      distribute: scp
      working_dir: `+remoteDir+`
`), 0o644); err != nil {
		t.Fatal(err)
	}
	df, diags := config.LoadDataflow(app)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := ops.Start(ctx, "cam", df, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(remoteDir, "camera"))
	if err != nil || string(got) != string(body) {
		t.Fatalf("pushed camera = %q, %v; want the built binary", got, err)
	}
	if len(d.Spawns()) == 0 {
		t.Fatal("the dataflow was not spawned after the push")
	}

	// Without a working directory the binary is already where this
	// machine's daemon looks: the push leaves it intact.
	df.Nodes[0].Deploy.WorkingDir = ""
	if _, err := ops.Start(ctx, "cam-here", df, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "camera")); err != nil || string(got) != string(body) {
		t.Fatalf("camera after pushing it onto itself = %q, %v", got, err)
	}
}
