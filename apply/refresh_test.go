package apply

import (
	"context"
	"fmt"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/state"
)

func TestRefreshRecordsUnreachableAndCoordinatorDown(t *testing.T) {
	w := newWorld()
	w.machines["bot-01"] = &liveMachine{installed: true, running: true, sha: "aa", version: "0.1.0"}
	w.unreachable["bot-02"] = true
	w.coordinatorDown = true
	obs, err := Refresh(context.Background(), w, w, plantest.Cluster(), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if o := obs.Machines["bot-01"]; !o.Reachable || !o.UnitActive || o.BinarySHA256 != "aa" {
		t.Errorf("bot-01 = %+v", o)
	}
	if o := obs.Machines["bot-02"]; o.Reachable || o.Error == "" {
		t.Errorf("bot-02 = %+v; want unreachable with the error", o)
	}
	if obs.CoordinatorReachable || obs.CoordinatorError == "" {
		t.Errorf("coordinator reachable %v error %q", obs.CoordinatorReachable, obs.CoordinatorError)
	}
}

func TestRefreshIsBounded(t *testing.T) {
	w := newWorld()
	c := &config.Cluster{}
	for i := range 40 {
		c.Machines = append(c.Machines, config.Machine{ID: fmt.Sprintf("m%02d", i), Host: "h"})
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 40)
	bw := blockingObserver{w: w, entered: entered, release: release}
	done := make(chan error)
	go func() {
		_, err := Refresh(context.Background(), bw, nil, c, nil, 5)
		done <- err
	}()
	for range 5 {
		<-entered
	}
	select {
	case <-entered:
		t.Fatal("a sixth observation started while five were in flight")
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(entered) != 35 {
		t.Fatalf("%d further observations; want 35", len(entered))
	}
}

type blockingObserver struct {
	w       *world
	entered chan struct{}
	release chan struct{}
}

func (b blockingObserver) ObserveMachine(ctx context.Context, m config.Machine) (state.MachineObservation, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.w.ObserveMachine(ctx, m)
}
