package plan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/state"
)

// unitHash stands for the hash of a machine's rendered unit, which holds
// User= (run_as): a changed run_as is a changed hash.
func unitHash(id, runAs string) string {
	sum := sha256.Sum256([]byte("unit of " + id + " running as " + runAs))
	return hex.EncodeToString(sum[:])
}

// deployedWithUnits is plantest.Deployed with the units of machines
// running as runAs recorded, observed as recorded.
func deployedWithUnits(t *testing.T, runAs string) (*state.State, *state.Observed, map[string]string) {
	t.Helper()
	hashes := map[string]string{}
	for _, m := range plantest.Cluster().Machines {
		hashes[m.ID] = unitHash(m.ID, runAs)
	}
	d := plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	d.UnitHashes = hashes
	p, err := plan.Compute(nil, nil, d)
	if err != nil {
		t.Fatal(err)
	}
	st := &state.State{FormatVersion: state.FormatVersion, Lineage: "3f2c1a7e-0000-4000-8000-000000000001", Serial: 4,
		Machines: map[string]state.Machine{}, Dataflows: map[string]state.Dataflow{}}
	for _, c := range p.Changes {
		plan.Record(st, c, "d7c9e0f2-0000-4000-8000-0000000000aa")
	}
	st.Coordinator = p.Coordinator
	obs := plantest.Healthy(st)
	for id, m := range obs.Machines {
		m.UnitHash = st.Machines[id].UnitHash
		obs.Machines[id] = m
	}
	return st, obs, hashes
}

// TestChangedRunAsReconfiguresThatMachine: a new run_as on one machine is
// an in-place reconfigure of that machine's daemon (its unit changes),
// not a reinstall or an upgrade; nothing else moves.
func TestChangedRunAsReconfiguresThatMachine(t *testing.T) {
	prior, obs, hashes := deployedWithUnits(t, "ubuntu")
	c := plantest.Cluster()
	c.Machines[0].RunAs = "robot"
	d := plantest.Desired(c, map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	d.UnitHashes = map[string]string{}
	for id, h := range hashes {
		d.UnitHashes[id] = h
	}
	d.UnitHashes["bot-01"] = unitHash("bot-01", "robot")
	p, err := plan.Compute(prior, obs, d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(p), map[string]plan.Action{"machine.bot-01": plan.Reconfigure}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	ch, _ := p.Change("machine.bot-01")
	want := []plan.Diff{{Field: "unit", Before: unitHash("bot-01", "ubuntu")[:12], After: unitHash("bot-01", "robot")[:12]}}
	if !reflect.DeepEqual(ch.Diffs, want) || !strings.Contains(ch.Reason, "unit changed: daemon is reconfigured and restarted") {
		t.Fatalf("bot-01: diffs %+v, reason %q", ch.Diffs, ch.Reason)
	}
	if ch.MachineAfter == nil || ch.MachineAfter.UnitHash != d.UnitHashes["bot-01"] {
		t.Fatalf("the new unit is not what apply records: %+v", ch.MachineAfter)
	}
	if len(p.Drift) != 0 {
		t.Fatalf("a config change is not drift: %+v", p.Drift)
	}
	if s := p.Summarize(); s.Install != 0 || s.Upgrade != 0 || s.Uninstall != 0 {
		t.Fatalf("summary %+v", s)
	}
}

// TestRunAsChangedOnTheMachineIsDrift: a unit edited on the machine (say
// User= removed by hand) differs from the recorded one: drift, and the
// plan puts the desired unit back.
func TestRunAsChangedOnTheMachineIsDrift(t *testing.T) {
	prior, obs, hashes := deployedWithUnits(t, "ubuntu")
	m := obs.Machines["bot-02"]
	m.UnitHash = unitHash("bot-02", "root")
	obs.Machines["bot-02"] = m
	d := plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	d.UnitHashes = hashes
	p, err := plan.Compute(prior, obs, d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(p), map[string]plan.Action{"machine.bot-02": plan.Reconfigure}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	if len(p.Drift) != 1 || p.Drift[0].Address != "machine.bot-02" || p.Drift[0].Field != "unit_hash" {
		t.Fatalf("drift %+v", p.Drift)
	}
}

// TestRecordedRunAsShowsInTheDiff: once the state records the user a
// daemon runs as, a changed run_as shows as that, user to user, next to
// the unit hash; a record from before run_as (no user) shows the unit
// only, and the same user on both sides shows nothing.
func TestRecordedRunAsShowsInTheDiff(t *testing.T) {
	runAs := func(user string) map[string]string {
		m := map[string]string{}
		for _, mc := range plantest.Cluster().Machines {
			m[mc.ID] = user
		}
		return m
	}
	prior, obs, hashes := deployedWithUnits(t, "ubuntu")
	for id, m := range prior.Machines {
		m.RunAs = "ubuntu"
		prior.Machines[id] = m
	}
	legacy := prior.Clone()
	for id, m := range legacy.Machines {
		m.RunAs = ""
		legacy.Machines[id] = m
	}

	c := plantest.Cluster()
	c.Machines[0].RunAs = "robot"
	d := plantest.Desired(c, map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	d.UnitHashes = map[string]string{}
	for id, h := range hashes {
		d.UnitHashes[id] = h
	}
	d.UnitHashes["bot-01"] = unitHash("bot-01", "robot")
	d.RunAs = runAs("ubuntu")
	d.RunAs["bot-01"] = "robot"

	p, err := plan.Compute(prior, obs, d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(p), map[string]plan.Action{"machine.bot-01": plan.Reconfigure}; !reflect.DeepEqual(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	ch, _ := p.Change("machine.bot-01")
	want := []plan.Diff{
		{Field: "run_as", Before: "ubuntu", After: "robot"},
		{Field: "unit", Before: unitHash("bot-01", "ubuntu")[:12], After: unitHash("bot-01", "robot")[:12]},
	}
	if !reflect.DeepEqual(ch.Diffs, want) {
		t.Fatalf("diffs %+v, want %+v", ch.Diffs, want)
	}
	if ch.MachineAfter == nil || ch.MachineAfter.RunAs != "robot" {
		t.Fatalf("apply would not record the new user: %+v", ch.MachineAfter)
	}

	p, err = plan.Compute(legacy, obs, d)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ = p.Change("machine.bot-01")
	if len(ch.Diffs) != 1 || ch.Diffs[0].Field != "unit" {
		t.Fatalf("record without a user: diffs %+v, want the unit only", ch.Diffs)
	}
	if got := actions(p); len(got) != 1 {
		t.Fatalf("record without a user: actions %v, want bot-01 only", got)
	}
}
