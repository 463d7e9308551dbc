package plan_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/state"
)

func scenario(t *testing.T, name string) plantest.Scenario {
	t.Helper()
	for _, s := range plantest.Scenarios() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no scenario %s", name)
	return plantest.Scenario{}
}

func compute(t *testing.T, s plantest.Scenario) *plan.Plan {
	t.Helper()
	p, err := plan.Compute(s.Prior, s.Observed, s.Desired)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// actions maps every non-no-op address to its action.
func actions(p *plan.Plan) map[string]plan.Action {
	out := map[string]plan.Action{}
	for _, c := range p.Changes {
		if c.Action != plan.NoOp {
			out[c.Address] = c.Action
		}
	}
	return out
}

func TestComputeScenarios(t *testing.T) {
	tests := []struct {
		name  string
		want  map[string]plan.Action
		waves [][]string
		drift int
	}{
		{"first-deployment", map[string]plan.Action{
			"machine.bot-01": plan.Install, "machine.bot-02": plan.Install, "machine.gpu-server": plan.Install,
			"dataflow.my-app": plan.Start, "dataflow.my-app.node.camera": plan.Start,
			"dataflow.my-app.node.detector": plan.Start, "dataflow.my-app.node.logger": plan.Start,
		}, nil, 0},
		{"label-change", map[string]plan.Action{
			"machine.bot-02": plan.Reconfigure, "machine.gpu-server": plan.Reconfigure,
			"dataflow.my-app": plan.Restart, "dataflow.my-app.node.detector": plan.Move,
		}, [][]string{{"bot-02"}, {"gpu-server"}}, 0},
		{"binary-upgrade", map[string]plan.Action{
			"machine.bot-01": plan.Upgrade, "machine.bot-02": plan.Upgrade, "machine.gpu-server": plan.Upgrade,
		}, [][]string{{"bot-01"}, {"bot-02"}, {"gpu-server"}}, 0},
		{"machine-removed", map[string]plan.Action{"machine.bot-02": plan.Uninstall}, nil, 0},
		{"dataflow-removed", map[string]plan.Action{
			"dataflow.my-app": plan.Stop, "dataflow.my-app.node.camera": plan.Stop,
			"dataflow.my-app.node.detector": plan.Stop, "dataflow.my-app.node.logger": plan.Stop,
		}, nil, 0},
		{"drift", map[string]plan.Action{
			"machine.bot-02": plan.Reconfigure, "machine.gpu-server": plan.Upgrade,
		}, [][]string{{"bot-02"}, {"gpu-server"}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compute(t, scenario(t, tt.name))
			if got := actions(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("actions = %v\nwant %v", got, tt.want)
			}
			var waves [][]string
			for _, w := range p.Waves {
				waves = append(waves, w.Machines)
			}
			if !reflect.DeepEqual(waves, tt.waves) {
				t.Errorf("waves = %v; want %v", waves, tt.waves)
			}
			if len(p.Drift) != tt.drift {
				t.Errorf("drift = %+v; want %d items", p.Drift, tt.drift)
			}
			if !slices.IsSortedFunc(p.Changes, func(a, b plan.Change) int { return strings.Compare(a.Address, b.Address) }) {
				t.Error("changes are not sorted by address")
			}
		})
	}
}

func TestNoChangesAfterDeployment(t *testing.T) {
	st := plantest.Deployed()
	desired := plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	for name, p := range map[string]*plan.Plan{
		"refreshed":     must(plan.Compute(st, plantest.Healthy(st), desired)),
		"not refreshed": must(plan.Compute(st, nil, desired)),
	} {
		if !p.Empty() {
			t.Errorf("%s: plan after deployment has changes: %v drift %v", name, actions(p), p.Drift)
		}
	}
}

func must(p *plan.Plan, err error) *plan.Plan {
	if err != nil {
		panic(err)
	}
	return p
}

func TestComputeIsDeterministic(t *testing.T) {
	s := scenario(t, "label-change")
	a := compute(t, s)
	// The same desired state with machines and nodes listed in another
	// order plans the same.
	s.Desired.Cluster.Machines = []config.Machine{s.Desired.Cluster.Machines[2], s.Desired.Cluster.Machines[0], s.Desired.Cluster.Machines[1]}
	b := compute(t, s)
	a.Cluster, b.Cluster = nil, nil
	if !reflect.DeepEqual(a, b) {
		t.Fatal("plans differ when machines are listed in another order")
	}
}

func TestUnsatisfiablePlacementIsAPlanError(t *testing.T) {
	app := plantest.App()
	app.Nodes[1].Deploy.Labels = map[string]string{"gpu": "h100"}
	app.Nodes[0].Deploy.Machine = "robt"
	_, err := plan.Compute(nil, nil, plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": app}, plantest.Binary010))
	if err == nil {
		t.Fatal("Compute succeeded with unsatisfiable placements")
	}
	for _, want := range []string{"dataflow my-app", `node "camera"`, `node "detector"`, "robt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParallelismSizesWaves(t *testing.T) {
	s := scenario(t, "binary-upgrade")
	s.Desired.Parallelism = 2
	p := compute(t, s)
	if len(p.Waves) != 2 || !reflect.DeepEqual(p.Waves[0].Machines, []string{"bot-01", "bot-02"}) {
		t.Fatalf("waves = %+v; want [bot-01 bot-02] [gpu-server]", p.Waves)
	}
	if c, _ := p.Change("machine.gpu-server"); c.Wave != 2 {
		t.Fatalf("gpu-server wave = %d; want 2", c.Wave)
	}
}

func TestPlacementReasonsPerNode(t *testing.T) {
	p := compute(t, scenario(t, "label-change"))
	c, _ := p.Change("dataflow.my-app.node.detector")
	if c.Placement == nil || c.Placement.Machine != "bot-02" || c.Placement.Rule != "labels" {
		t.Fatalf("detector placement = %+v", c.Placement)
	}
	refused := map[string]string{}
	for _, r := range c.Placement.Refused {
		refused[r.Machine] = r.Reason
	}
	if len(refused) != 1 || refused["bot-01"] != `no label "gpu"` {
		t.Fatalf("refusals = %v", refused)
	}
	if d, _ := p.Change("dataflow.my-app"); !strings.Contains(d.Reason, "node detector moves from gpu-server to bot-02") {
		t.Fatalf("dataflow reason = %q", d.Reason)
	}
}

func TestTargetsRestrictThePlan(t *testing.T) {
	s := scenario(t, "first-deployment")
	s.Desired.Targets = []string{"machine.bot-01", "dataflow.my-app"}
	p := compute(t, s)
	got := actions(p)
	if _, ok := got["machine.bot-02"]; ok || got["machine.bot-01"] != plan.Install || got["dataflow.my-app.node.camera"] != plan.Start {
		t.Fatalf("targeted plan = %v", got)
	}
}

func TestExcludesLeaveAddressesOut(t *testing.T) {
	s := scenario(t, "binary-upgrade")
	s.Desired.Excludes = []string{"machine.bot-02"}
	p := compute(t, s)
	got := actions(p)
	if _, ok := got["machine.bot-02"]; ok || len(got) != 2 {
		t.Fatalf("plan with -exclude machine.bot-02 = %v", got)
	}
	if len(p.Waves) != 2 || p.Waves[1].Machines[0] != "gpu-server" {
		t.Fatalf("waves = %+v", p.Waves)
	}
}

func TestFilterKeepsOnlyUpgradesAndRecomputesWaves(t *testing.T) {
	s := scenario(t, "drift")
	p := compute(t, s)
	q := plan.Filter(p, plan.OnlyActions(plan.Upgrade))
	if got := actions(q); !reflect.DeepEqual(got, map[string]plan.Action{"machine.gpu-server": plan.Upgrade}) {
		t.Fatalf("filtered = %v", got)
	}
	if len(q.Waves) != 1 || q.Waves[0].Machines[0] != "gpu-server" {
		t.Fatalf("filtered waves = %+v", q.Waves)
	}
	if len(p.Waves) != 2 {
		t.Fatal("Filter modified the original plan")
	}
	for _, pc := range q.Preconditions {
		if pc.Address != "machine.gpu-server" {
			t.Fatalf("precondition %+v kept for a filtered-out change", pc)
		}
	}
}

func TestPreconditions(t *testing.T) {
	s := scenario(t, "binary-upgrade")
	p := compute(t, s)
	if v := plan.CheckPreconditions(p, s.Observed); len(v) != 0 {
		t.Fatalf("violations against the same observation: %v", v)
	}
	now := plantest.Healthy(s.Prior)
	m := now.Machines["bot-02"]
	m.BinarySHA256 = strings.Repeat("cc", 32)
	now.Machines["bot-02"] = m
	v := plan.CheckPreconditions(p, now)
	if len(v) != 1 || v[0].Address != "machine.bot-02" || v[0].Field != "binary_sha256" {
		t.Fatalf("violations = %v; want bot-02 binary_sha256", v)
	}
	if !strings.Contains(v[0].String(), strings.Repeat("cc", 32)) {
		t.Fatalf("violation text %q does not say the new value", v[0])
	}
}

func TestDestroyRemovesEverything(t *testing.T) {
	p, err := plan.Compute(plantest.Deployed(), nil, plan.Desired{Destroy: true})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Summarize()
	if s.Uninstall != 3 || s.Stop != 1 || s.Install+s.Start+s.Upgrade != 0 {
		t.Fatalf("destroy summary = %+v", s)
	}
}

func TestRecordedPlanReplansToNothing(t *testing.T) {
	// Recording every change of each scenario into its prior state leaves
	// no work: a plan is exactly what Record needs to reach the desired
	// state.
	for _, s := range plantest.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			p := compute(t, s)
			st := s.Prior
			if st == nil {
				st = plantest.Deployed()
				st.Machines, st.Dataflows = map[string]state.Machine{}, map[string]state.Dataflow{}
			}
			for _, c := range p.Changes {
				plan.Record(st, c, "")
			}
			again, err := plan.Compute(st, nil, s.Desired)
			if err != nil {
				t.Fatal(err)
			}
			if again.HasChanges() {
				t.Fatalf("re-plan after recording has changes: %v", actions(again))
			}
		})
	}
}

func TestMissingUnitIsReinstalledNotUpgraded(t *testing.T) {
	s := scenario(t, "binary-upgrade")
	m := s.Observed.Machines["bot-02"]
	m.UnitPresent, m.UnitActive, m.DaemonConnected = false, false, false
	s.Observed.Machines["bot-02"] = m
	p := compute(t, s)
	c, _ := p.Change("machine.bot-02")
	if c.Action != plan.Install || c.Wave != 0 {
		t.Fatalf("bot-02 = %s (wave %d); want a reinstall outside the waves", c.Action, c.Wave)
	}
	if len(p.Waves) != 2 {
		t.Fatalf("waves = %+v; want the 2 other machines", p.Waves)
	}
}

func TestDisabledUnitIsDriftAndReenabled(t *testing.T) {
	s := scenario(t, "binary-upgrade")
	s.Desired.Binary = plantest.Binary010
	m := s.Observed.Machines["bot-01"]
	m.UnitEnabled = false
	s.Observed.Machines["bot-01"] = m
	p := compute(t, s)
	c, _ := p.Change("machine.bot-01")
	if c.Action != plan.Reconfigure || !strings.Contains(c.Reason, "not enabled") {
		t.Fatalf("bot-01 = %s %q; want a reconfigure that enables the unit", c.Action, c.Reason)
	}
	if len(p.Drift) != 1 || p.Drift[0].Field != "unit_enabled" {
		t.Fatalf("drift = %+v", p.Drift)
	}
}

func TestUnrecordedDaemonIsAdopted(t *testing.T) {
	s := scenario(t, "first-deployment")
	s.Observed = plantest.Healthy(plantest.Deployed())
	p := compute(t, s)
	c, _ := p.Change("machine.bot-01")
	if c.Action != plan.Install || !strings.Contains(c.Reason, "adopts it") {
		t.Fatalf("bot-01 = %s %q; want an install that adopts the daemon", c.Action, c.Reason)
	}
	d, _ := p.Change("dataflow.my-app")
	if d.Action != plan.Restart || d.DataflowAfter.UUID != "d7c9e0f2-0000-4000-8000-0000000000aa" {
		t.Fatalf("my-app = %s %+v; want a restart of the unrecorded run", d.Action, d.DataflowAfter)
	}
	if n, _ := p.Change("dataflow.my-app.node.camera"); n.Action != plan.Start {
		t.Fatalf("camera = %s; want start", n.Action)
	}
}

func TestUnreachableMachineIsDriftAndAWarning(t *testing.T) {
	s := scenario(t, "binary-upgrade")
	s.Desired.Binary = plantest.Binary010 // nothing to change
	m := s.Observed.Machines["gpu-server"]
	m = state.MachineObservation{ID: m.ID, Error: "dial tcp 10.0.0.4:22: connect: no route to host"}
	s.Observed.Machines["gpu-server"] = m
	p := compute(t, s)
	c, _ := p.Change("machine.gpu-server")
	if c.Action != plan.NoOp || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "no route to host") {
		t.Fatalf("gpu-server = %s %v; want a no-op with the reachability warning", c.Action, c.Warnings)
	}
	if len(p.Drift) != 1 || p.Drift[0].Field != "reachable" {
		t.Fatalf("drift = %+v; want gpu-server unreachable", p.Drift)
	}
}

func TestRefreshedStateHasNoDrift(t *testing.T) {
	s := scenario(t, "drift")
	obs := s.Observed
	// The coordinator no longer runs the dataflow, and a node moved.
	delete(obs.Dataflows, "my-app")
	st := plan.Refreshed(s.Prior, obs)
	if got := plan.DriftOf(st, obs); len(got) != 1 || got[0].Field != "daemon" {
		t.Fatalf("drift after refresh = %+v; want only the stopped daemon (a running fact, not a record)", got)
	}
	if st.Machines["gpu-server"].BinaryVersion != "0.0.9" {
		t.Fatalf("gpu-server binary = %s; want the observed 0.0.9", st.Machines["gpu-server"].BinaryVersion)
	}
	if _, ok := st.Dataflows["my-app"]; ok {
		t.Fatal("a dataflow the coordinator does not run is still recorded")
	}
	if s.Prior.Machines["gpu-server"].BinaryVersion != "0.1.0" {
		t.Fatal("Refreshed modified the prior state")
	}
	p, err := plan.Compute(st, obs, s.Desired)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(p); got["machine.gpu-server"] != plan.Upgrade || got["dataflow.my-app"] != plan.Start {
		t.Fatalf("plan after refresh = %v; want the upgrade back and the start", got)
	}
}

func TestDeltaShowsOnlyWhatMoved(t *testing.T) {
	approved := compute(t, scenario(t, "binary-upgrade"))
	if d := plan.Delta(approved, approved); len(d) != 0 {
		t.Fatalf("delta of a plan with itself = %+v", d)
	}
	s := scenario(t, "binary-upgrade")
	m := s.Observed.Machines["bot-01"] // upgraded by hand since the review
	m.BinarySHA256, m.BinaryVersion = plantest.Binary020.SHA256, "0.2.0"
	s.Observed.Machines["bot-01"] = m
	fresh := compute(t, s)
	d := plan.Delta(approved, fresh)
	got := map[string]plan.DeltaItem{}
	for _, x := range d {
		got[x.Address] = x
	}
	if x := got["machine.bot-01"]; !strings.HasPrefix(x.Was, "upgrade, wave 1") || x.Now != "" {
		t.Fatalf("bot-01 delta = %+v; want the upgrade gone", x)
	}
	if x := got["machine.bot-02"]; !strings.HasPrefix(x.Was, "upgrade, wave 2") || !strings.HasPrefix(x.Now, "upgrade, wave 1") {
		t.Fatalf("bot-02 delta = %+v; want it to move to wave 1", x)
	}
	if len(d) != 3 {
		t.Fatalf("delta = %+v; want bot-01, bot-02 and gpu-server", d)
	}
}

// finished is the healthy observation of st with dataflow name no longer
// running (it finished by itself).
func finished(st *state.State, name string) *state.Observed {
	obs := plantest.Healthy(st)
	delete(obs.Dataflows, name)
	return obs
}

func TestFinishedDataflowIsDriftAndStartedAgain(t *testing.T) {
	st := plantest.Deployed()
	desired := plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	p := must(plan.Compute(st, finished(st, "my-app"), desired))
	var ch *plan.Change
	for i := range p.Changes {
		if p.Changes[i].Address == "dataflow.my-app" {
			ch = &p.Changes[i]
		}
	}
	if ch == nil || ch.Action != plan.Start || !strings.Contains(ch.Reason, "not running (drift)") {
		t.Fatalf("dataflow.my-app = %+v; want a start again for drift", ch)
	}
	if ch.DataflowAfter == nil || ch.DataflowAfter.UUID != "" {
		t.Errorf("the restarted run keeps the finished run's uuid: %+v", ch.DataflowAfter)
	}
	want := plan.Drift{Address: "dataflow.my-app", Field: "running", Recorded: "true", Observed: "false"}
	if !slices.Contains(p.Drift, want) {
		t.Errorf("drift = %+v; want %+v", p.Drift, want)
	}
	if s := p.Summarize(); s.Start != 1 || s.Restart+s.Stop != 0 {
		t.Errorf("summary = %+v; want one dataflow to start", s)
	}
}

func TestStopOfFinishedDataflowSaysOnlyTheRecordGoes(t *testing.T) {
	st := plantest.Deployed()
	for name, desired := range map[string]plan.Desired{
		"destroy": {Destroy: true},
		"removed": plantest.Desired(plantest.Cluster(), nil, plantest.Binary010),
	} {
		p := must(plan.Compute(st, finished(st, "my-app"), desired))
		found := false
		for _, c := range p.Changes {
			if c.Address == "dataflow.my-app" {
				found = true
				if c.Action != plan.Stop || !strings.Contains(c.Reason, "not running any more") {
					t.Errorf("%s: dataflow.my-app = %s %q; want a stop that says it is not running", name, c.Action, c.Reason)
				}
			}
		}
		if !found {
			t.Errorf("%s: no change for dataflow.my-app", name)
		}
		if p.Summarize().Stop != 1 {
			t.Errorf("%s: summary %+v; want one stop", name, p.Summarize())
		}
	}
}

func TestChangedNodeBinaryPlansARestart(t *testing.T) {
	st := plantest.Deployed()
	rec := st.Dataflows["my-app"]
	rec.Artifacts = []state.Artifact{{Node: "camera", Machine: rec.Placements["camera"], SHA256: strings.Repeat("a", 64)}}
	st.Dataflows["my-app"] = rec
	desired := plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)

	desired.NodeBinaries = map[string]map[string]string{"my-app": {"camera": strings.Repeat("a", 64)}}
	if p := must(plan.Compute(st, plantest.Healthy(st), desired)); !p.Empty() {
		t.Fatalf("same node binary: plan has changes %v", actions(p))
	}

	desired.NodeBinaries = map[string]map[string]string{"my-app": {"camera": strings.Repeat("b", 64)}}
	p := must(plan.Compute(st, plantest.Healthy(st), desired))
	var ch plan.Change
	for _, c := range p.Changes {
		if c.Address == "dataflow.my-app" {
			ch = c
		}
	}
	if ch.Action != plan.Restart || !strings.Contains(ch.Reason, "node camera binary changed") {
		t.Fatalf("dataflow.my-app = %s %q; want a restart for the camera binary", ch.Action, ch.Reason)
	}
	want := plan.Diff{Field: "node camera binary", Before: strings.Repeat("a", 12), After: strings.Repeat("b", 12)}
	if !slices.Contains(ch.Diffs, want) {
		t.Errorf("diffs = %+v; want %+v", ch.Diffs, want)
	}
	after := st.Clone()
	plan.Record(after, ch, "uuid-2")
	got := after.Dataflows["my-app"].Artifacts
	if len(got) != 1 || got[0].SHA256 != strings.Repeat("b", 64) || got[0].Machine != rec.Placements["camera"] {
		t.Errorf("recorded artifacts = %+v; want camera at sha256 b… on %s", got, rec.Placements["camera"])
	}
	if p2 := must(plan.Compute(after, nil, desired)); !p2.Empty() {
		t.Errorf("after recording the restart, plan still has changes %v", actions(p2))
	}
}
