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
)

// opsOnCoordinator is a fleetOps talking to a real coordinator on
// loopback, with a fake daemon for bot-01 (label gpu=true) connected, and
// the dataflow of deployProject.
func opsOnCoordinator(t *testing.T) (*fleetOps, *coordtest.Daemon, *config.Dataflow, client.Options) {
	t.Helper()
	dir := deployProject(t)
	srv := coordtest.Start(t, coordinator.Config{Token: "test-token"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	d, err := coordtest.StartDaemon(ctx, srv.Endpoint, coordtest.DaemonConfig{UUID: "d-bot-01", MachineID: "bot-01", Labels: map[string]string{"gpu": "true"}, ReportOnSpawn: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ops, err := newFleetOps(&config.Cluster{Coordinator: config.Coordinator{Addr: "127.0.0.1", Port: srv.Endpoint.Port}})
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
