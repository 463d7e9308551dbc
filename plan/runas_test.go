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
