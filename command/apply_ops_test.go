package command

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
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
