// Package plantest holds the plan scenarios of the deployment guide
// (first deployment, label change, binary upgrade, machine removed,
// dataflow removed, drift) shared by the plan, render and apply tests.
package plantest

import (
	"maps"
	"slices"
	"strings"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// Placer is the placer of the scenarios: the real scheduler.
var Placer = plan.DefaultPlacer

// Scenario is one plan case: prior state, observation and desired config.
type Scenario struct {
	Name     string
	Prior    *state.State
	Observed *state.Observed
	Desired  plan.Desired
}

// Binary010 and Binary020 are the two adora binaries of the scenarios.
var (
	Binary010 = plan.Binary{Version: "0.1.0", SHA256: strings.Repeat("a1", 32)}
	Binary020 = plan.Binary{Version: "0.2.0", SHA256: strings.Repeat("b2", 32)}
)

// Cluster is the three-machine cluster of the scenarios.
func Cluster() *config.Cluster {
	return &config.Cluster{
		Coordinator: config.Coordinator{Addr: "10.0.0.1", Port: 6013},
		Machines: []config.Machine{
			{ID: "bot-01", Host: "10.0.0.2", Labels: map[string]string{"arch": "arm64"}},
			{ID: "bot-02", Host: "10.0.0.3", Labels: map[string]string{"arch": "arm64"}},
			{ID: "gpu-server", Host: "10.0.0.4", Labels: map[string]string{"gpu": "true"}},
		},
	}
}

// App is the dataflow of the scenarios: a camera pinned to bot-01, a
// detector that needs a GPU, and a logger placed by default.
func App() *config.Dataflow {
	return &config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Path: "./camera", Outputs: []string{"image"}, Deploy: config.Deploy{Machine: "bot-01"}},
		{ID: "detector", Path: "./detector", Outputs: []string{"boxes"},
			Inputs: []config.Input{{ID: "image", Source: config.Source{Node: "camera", Output: "image"}}},
			Deploy: config.Deploy{Labels: map[string]string{"gpu": "true"}}},
		{ID: "logger", Path: "./logger",
			Inputs: []config.Input{{ID: "boxes", Source: config.Source{Node: "detector", Output: "boxes"}}}},
	}}
}

// Desired is the scenarios' desired state with binary b.
func Desired(c *config.Cluster, dataflows map[string]*config.Dataflow, b plan.Binary) plan.Desired {
	return plan.Desired{Cluster: c, Dataflows: dataflows, Binary: b, Placer: Placer, Parallelism: 1, AdoraVersion: "0.2.0"}
}

// Deployed returns the state after the first deployment has been applied.
func Deployed() *state.State {
	st := &state.State{FormatVersion: state.FormatVersion, Lineage: "3f2c1a7e-0000-4000-8000-000000000001", Serial: 4,
		AdoraVersion: "0.1.0", Machines: map[string]state.Machine{}, Dataflows: map[string]state.Dataflow{}}
	p, err := plan.Compute(nil, nil, Desired(Cluster(), map[string]*config.Dataflow{"my-app": App()}, Binary010))
	if err != nil {
		panic(err)
	}
	for _, c := range p.Changes {
		plan.Record(st, c, "d7c9e0f2-0000-4000-8000-0000000000aa")
	}
	st.Coordinator = p.Coordinator
	return st
}

// Healthy is an observation of Deployed with everything as recorded.
func Healthy(st *state.State) *state.Observed {
	o := &state.Observed{CoordinatorReachable: true, Machines: map[string]state.MachineObservation{}, Dataflows: map[string]state.DataflowObservation{}}
	for id, m := range st.Machines {
		o.Machines[id] = state.MachineObservation{ID: id, Reachable: true, UnitPresent: true, UnitActive: true, UnitEnabled: true,
			BinarySHA256: m.BinarySHA256, BinaryVersion: m.BinaryVersion, DaemonConnected: true, DaemonVersion: m.BinaryVersion,
			DaemonLabels: maps.Clone(m.Labels)}
	}
	for name, d := range st.Dataflows {
		o.Dataflows[name] = state.DataflowObservation{Name: name, UUID: d.UUID, Placements: maps.Clone(d.Placements)}
	}
	return o
}

// Scenarios returns the guide's cases, in a fixed order.
func Scenarios() []Scenario {
	apps := map[string]*config.Dataflow{"my-app": App()}
	moved := Cluster()
	moved.Machines[1].Labels = map[string]string{"arch": "arm64", "gpu": "true"}
	moved.Machines[2].Labels = map[string]string{"gpu": "false"}
	removed := Cluster()
	removed.Machines = slices.Delete(removed.Machines, 1, 2)
	drifted := Healthy(Deployed())
	bot2 := drifted.Machines["bot-02"]
	bot2.UnitActive, bot2.DaemonConnected = false, false
	drifted.Machines["bot-02"] = bot2
	gpu := drifted.Machines["gpu-server"]
	gpu.BinarySHA256, gpu.BinaryVersion = strings.Repeat("ee", 32), "0.0.9"
	drifted.Machines["gpu-server"] = gpu
	return []Scenario{
		{Name: "first-deployment", Desired: Desired(Cluster(), apps, Binary010)},
		{Name: "label-change", Prior: Deployed(), Observed: Healthy(Deployed()), Desired: Desired(moved, apps, Binary010)},
		{Name: "binary-upgrade", Prior: Deployed(), Observed: Healthy(Deployed()), Desired: Desired(Cluster(), apps, Binary020)},
		{Name: "machine-removed", Prior: Deployed(), Observed: Healthy(Deployed()), Desired: Desired(removed, apps, Binary010)},
		{Name: "dataflow-removed", Prior: Deployed(), Observed: Healthy(Deployed()), Desired: Desired(Cluster(), nil, Binary010)},
		{Name: "drift", Prior: Deployed(), Observed: drifted, Desired: Desired(Cluster(), apps, Binary010)},
	}
}
