package command

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

var (
	oldBin = plan.Binary{Version: "1.0", SHA256: strings.Repeat("a", 64)}
	newBin = plan.Binary{Version: "2.0", SHA256: strings.Repeat("b", 64)}
)

func testCluster() *config.Cluster {
	return &config.Cluster{
		Coordinator: config.Coordinator{Addr: "10.0.0.1", Port: 6013},
		Machines: []config.Machine{
			{ID: "a", Host: "10.0.0.2", User: "ubuntu", Labels: map[string]string{"role": "robot"}},
			{ID: "b", Host: "10.0.0.3", User: "ubuntu", IdentityFile: "/keys/b"},
			{ID: "c", Host: "10.0.0.4", User: "ubuntu"},
			{ID: "d", Host: "10.0.0.5", User: "ubuntu"},
		},
	}
}

// recorded is the state record of cluster machine id deployed with bin.
func recorded(c *config.Cluster, id string, bin plan.Binary) state.Machine {
	m := c.Machine(id)
	return state.Machine{ID: id, Host: m.Host, User: m.User, DaemonMode: state.Systemd, UnitHash: "unit-" + id,
		BinaryVersion: bin.Version, BinarySHA256: bin.SHA256, Labels: m.Labels, CoordinatorAddr: "10.0.0.1:6013"}
}

func testDesired(c *config.Cluster, bin plan.Binary, parallelism int) plan.Desired {
	hashes := map[string]string{}
	for _, m := range c.Machines {
		hashes[m.ID] = "unit-" + m.ID
	}
	return plan.Desired{Cluster: c, Binary: bin, Parallelism: parallelism, AdoraVersion: "2.0", UnitHashes: hashes, Placer: plan.DefaultPlacer}
}

// running is the observation of a healthy daemon of rec.
func running(rec state.Machine) state.MachineObservation {
	return state.MachineObservation{ID: rec.ID, Reachable: true, UnitPresent: true, UnitActive: true, UnitEnabled: true,
		UnitHash: rec.UnitHash, BinarySHA256: rec.BinarySHA256, BinaryVersion: rec.BinaryVersion}
}

func changeActions(p *plan.Plan) string {
	var out []string
	for _, c := range p.Changes {
		s := c.Address + "=" + string(c.Action)
		if c.Wave > 0 {
			s += "@" + string(rune('0'+c.Wave))
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// priorWithExtras records z (a machine outside the cluster file) and a
// dataflow: the cluster commands must never touch either.
func priorWithExtras(c *config.Cluster) *state.State {
	st := state.New("1.0")
	st.Machines["z"] = state.Machine{ID: "z", Host: "10.0.0.9", DaemonMode: state.Systemd}
	st.Dataflows["app"] = state.Dataflow{Name: "app", UUID: "u-1", Placements: map[string]string{"cam": "z"}}
	return st
}

func TestClusterPlanInstallKeepsInstallsAndReconfigurations(t *testing.T) {
	c := testCluster()
	prior := priorWithExtras(c)
	prior.Machines["a"] = recorded(c, "a", newBin) // as desired
	b := recorded(c, "b", newBin)
	b.Labels = map[string]string{"role": "old"} // labels changed: reconfigure
	prior.Machines["b"] = b
	prior.Machines["d"] = recorded(c, "d", oldBin) // other binary: an upgrade's job
	// c is not recorded: install.
	cp, err := computeClusterPlan(opInstall, prior, nil, testDesired(c, newBin, 10))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeActions(cp.Run), "machine.b=reconfigure@1 machine.c=install"; got != want {
		t.Fatalf("install plan: %s, want %s", got, want)
	}
	if got := cp.fullChange("d").Action; got != plan.Upgrade {
		t.Fatalf("full plan has %s for d, want upgrade", got)
	}
	if _, ok := cp.Full.Change("machine.z"); !ok {
		t.Fatal("the full plan should uninstall z (it is not in the file); the restricted one must not")
	}
	if _, ok := prior.Machines["c"]; ok {
		t.Fatal("computeClusterPlan modified prior")
	}
}

func TestClusterPlanUpgradeIsRollingAndAdoptsInstalledDaemons(t *testing.T) {
	c := testCluster()
	prior := priorWithExtras(c)
	prior.Machines["a"] = recorded(c, "a", oldBin)
	prior.Machines["d"] = recorded(c, "d", newBin) // already there: no-op
	observed := &state.Observed{Machines: map[string]state.MachineObservation{
		"a": running(prior.Machines["a"]),
		// b: installed by hand (not recorded), old binary: adopted and upgraded.
		"b": running(recorded(c, "b", oldBin)),
		// c: reachable, nothing installed: not for upgrade.
		"c": {ID: "c", Reachable: true},
		"d": running(prior.Machines["d"]),
	}}
	cp, err := computeClusterPlan(opUpgrade, prior, observed, testDesired(c, newBin, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeActions(cp.Run), "machine.a=upgrade@1 machine.b=upgrade@2"; got != want {
		t.Fatalf("upgrade plan: %s, want %s", got, want)
	}
	if len(cp.Run.Waves) != 2 || cp.Run.Waves[0].Machines[0] != "a" || cp.Run.Waves[1].Machines[0] != "b" {
		t.Fatalf("waves %+v, want [a] then [b]", cp.Run.Waves)
	}
	if cp.fullChange("d").Action != plan.NoOp || cp.fullChange("c").Action != plan.Install {
		t.Fatalf("full plan: d %s (want no-op), c %s (want install)", cp.fullChange("d").Action, cp.fullChange("c").Action)
	}
	if err := upgradable(cp, c, observed); err == nil || !strings.Contains(err.Error(), "c: adora-daemon-c is not installed") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("upgradable = %v, want c refused as not installed", err)
	}
	observed.Machines["c"] = state.MachineObservation{ID: "c", Error: "connect to c: timeout"}
	if err := upgradable(cp, c, observed); err == nil || !strings.Contains(err.Error(), "c: unreachable") || !strings.Contains(err.Error(), "connect to c: timeout") {
		t.Fatalf("upgradable = %v, want c refused as unreachable", err)
	}
	if _, ok := prior.Machines["b"]; ok {
		t.Fatal("computeClusterPlan modified prior")
	}
}

func TestClusterPlanUninstallRemovesEveryMachineOfTheFile(t *testing.T) {
	c := testCluster()
	prior := priorWithExtras(c)
	prior.Machines["a"] = recorded(c, "a", newBin)
	cp, err := computeClusterPlan(opUninstall, prior, nil, testDesired(c, plan.Binary{}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeActions(cp.Run), "machine.a=uninstall machine.b=uninstall machine.c=uninstall machine.d=uninstall"; got != want {
		t.Fatalf("uninstall plan: %s, want %s", got, want)
	}
	// The executor reaches the machines through the plan's cluster: the
	// file's, with each machine's SSH settings.
	if cp.Run.Cluster != c || cp.Run.Cluster.Machine("b").IdentityFile != "/keys/b" {
		t.Fatalf("the uninstall plan does not carry the cluster file's machines: %+v", cp.Run.Cluster)
	}
	if len(prior.Machines) != 2 {
		t.Fatalf("computeClusterPlan modified prior: %v", prior.Machines)
	}
}

// fakeFleet stands for the machines in executor tests.
type fakeFleet struct {
	lines   *upgradeLines
	mu      sync.Mutex
	fail    map[string]error
	touched []string
}

func (f *fakeFleet) op(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touched = append(f.touched, id)
	return f.fail[id]
}

func (f *fakeFleet) Install(_ context.Context, m config.Machine, _ state.Machine, _ plan.Binary) error {
	return f.op(m.ID)
}
func (f *fakeFleet) Uninstall(_ context.Context, m config.Machine) error { return f.op(m.ID) }
func (f *fakeFleet) Upgrade(_ context.Context, m config.Machine, _ state.Machine, _ plan.Binary) error {
	f.lines.step("SCP binary", "OK", false)
	f.lines.step("Restart service", "OK", false)
	return nil
}
func (f *fakeFleet) WaitDaemon(_ context.Context, id, _ string) error {
	if err := f.op(id); err != nil {
		f.lines.step("Waiting for reconnect", "FAILED", true)
		return err
	}
	f.lines.step("Waiting for reconnect", "OK (3.2s)", false)
	return nil
}

func readStateFile(t *testing.T, path string) *state.State {
	t.Helper()
	st, err := statefile.New(path).Read(context.Background())
	if err != nil || st == nil {
		t.Fatalf("read state: %v", err)
	}
	return st
}

func TestClusterInstallLinesFromExecutorProgress(t *testing.T) {
	c := testCluster()
	cp, err := computeClusterPlan(opInstall, nil, nil, testDesired(c, newBin, 10))
	if err != nil {
		t.Fatal(err)
	}
	ui := cli.NewMockUi()
	lines := newClusterLines(ui, c.Machines, func(m config.Machine) string {
		return "Installing adora-daemon-" + m.ID + " on " + m.User + "@" + m.Host
	})
	lines.note = func(id string) string {
		if id == "a" {
			return "(unchanged)"
		}
		return ""
	}
	path := filepath.Join(t.TempDir(), "adora.state")
	fake := &fakeFleet{fail: map[string]error{"c": errors.New("connect to c: no route to host")}}
	e := &apply.Executor{Installer: fake, Backend: statefile.New(path), Progress: lines.event}
	_, res, err := e.Apply(context.Background(), nil, cp.Run, state.New("2.0"))
	if err == nil {
		t.Fatal("apply with a failing machine returned no error")
	}
	code := clusterSummary(ui, len(c.Machines), lines.finish(notCarriedOut(res)))
	wantOut := "Installing adora-daemon-a on ubuntu@10.0.0.2... OK (unchanged)\n" +
		"Installing adora-daemon-b on ubuntu@10.0.0.3... OK\n" +
		"Installing adora-daemon-d on ubuntu@10.0.0.5... OK\n" +
		"3/4 succeeded.\n"
	if code != 1 || ui.OutputWriter.String() != wantOut {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s", code, ui.OutputWriter.String(), wantOut)
	}
	if got := ui.ErrorWriter.String(); got != "Installing adora-daemon-c on ubuntu@10.0.0.4... FAILED: connect to c: no route to host\nFailed on 1 machine(s): c\n" {
		t.Fatalf("stderr %q", got)
	}
	st := readStateFile(t, path)
	if len(st.Machines) != 3 || st.Machines["b"].BinarySHA256 != newBin.SHA256 {
		t.Fatalf("state records %v, want a, b and d installed", st.Machines)
	}
	if _, ok := st.Machines["c"]; ok {
		t.Fatal("the state records c, whose install failed")
	}
}

func TestClusterUpgradeLinesFromExecutorProgress(t *testing.T) {
	c := testCluster()
	prior := state.New("1.0")
	for _, m := range c.Machines {
		prior.Machines[m.ID] = recorded(c, m.ID, oldBin)
	}
	prior.Machines["b"] = recorded(c, "b", newBin)
	observed := &state.Observed{Machines: map[string]state.MachineObservation{}}
	for id, rec := range prior.Machines {
		observed.Machines[id] = running(rec)
	}
	cp, err := computeClusterPlan(opUpgrade, prior, observed, testDesired(c, newBin, 1))
	if err != nil {
		t.Fatal(err)
	}
	ui := cli.NewMockUi()
	lines := &upgradeLines{ui: ui, target: func(id string) string { return "ubuntu@" + c.Machine(id).Host }}
	already := 0
	for _, m := range sortedMachines(c) {
		if !inRun(cp.Run, m.ID) {
			lines.unchanged(m.ID, cp.fullChange(m.ID), newBin.Version)
			already++
		}
	}
	path := filepath.Join(t.TempDir(), "adora.state")
	fake := &fakeFleet{lines: lines, fail: map[string]error{"c": errors.New("daemon did not reconnect with version 2.0 within 30s; rolled back to 1.0")}}
	e := &apply.Executor{Upgrader: fake, Waiter: fake, Backend: statefile.New(path), Progress: lines.event}
	_, res, err := e.Apply(context.Background(), nil, cp.Run, prior.Clone())
	if err == nil {
		t.Fatal("apply with a failing machine returned no error")
	}
	code := lines.summary(already+res.Done, len(c.Machines), res)
	wantOut := "Upgrading b (ubuntu@10.0.0.3)...\n" +
		"  SCP binary... OK (unchanged)\n" +
		"  Restart service... skipped (already running 2.0)\n" +
		"Upgrading a (ubuntu@10.0.0.2)...\n" +
		"  SCP binary... OK\n" +
		"  Restart service... OK\n" +
		"  Waiting for reconnect... OK (3.2s)\n" +
		"Upgrading c (ubuntu@10.0.0.4)...\n" +
		"  SCP binary... OK\n" +
		"  Restart service... OK\n" +
		"2/4 succeeded.\n"
	if code != 1 || ui.OutputWriter.String() != wantOut {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s", code, ui.OutputWriter.String(), wantOut)
	}
	wantErr := "  Waiting for reconnect... FAILED\n" +
		"Rollout stopped at c: wait for daemon c 2.0: daemon did not reconnect with version 2.0 within 30s; rolled back to 1.0\n" +
		"Not upgraded (untouched): d\n"
	if got := ui.ErrorWriter.String(); got != wantErr {
		t.Fatalf("stderr:\n%s\nwant:\n%s", got, wantErr)
	}
	if strings.Join(fake.touched, ",") != "a,c" {
		t.Fatalf("machines waited for: %v, want a then c (and never d after c failed)", fake.touched)
	}
	st := readStateFile(t, path)
	if st.Machines["a"].BinarySHA256 != newBin.SHA256 || st.Machines["c"].BinarySHA256 != oldBin.SHA256 || st.Machines["d"].BinarySHA256 != oldBin.SHA256 {
		t.Fatalf("state after the failed rollout: a %s, c %s, d %s; want only a on the new binary",
			st.Machines["a"].BinaryVersion, st.Machines["c"].BinaryVersion, st.Machines["d"].BinaryVersion)
	}
}

func TestClusterUpgradeLinesAllDone(t *testing.T) {
	ui := cli.NewMockUi()
	lines := &upgradeLines{ui: ui, target: func(id string) string { return "u@" + id }}
	lines.event(apply.Event{Address: "machine.h1", Action: plan.Upgrade, Status: apply.Started})
	lines.event(apply.Event{Address: "machine.h1", Action: plan.Upgrade, Status: apply.Running})
	lines.event(apply.Event{Address: "machine.h1", Action: plan.Upgrade, Status: apply.Done})
	if code := lines.summary(2, 2, apply.Result{Done: 1}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := ui.OutputWriter.String(); got != "Upgrading h1 (u@h1)...\n2/2 succeeded.\n" {
		t.Fatalf("stdout %q", got)
	}
	if ui.ErrorWriter.String() != "" {
		t.Fatalf("stderr %q", ui.ErrorWriter.String())
	}
}

func TestClusterLinesInterruptedMachinesFail(t *testing.T) {
	ui := cli.NewMockUi()
	ms := []config.Machine{{ID: "a"}, {ID: "b"}}
	lines := newClusterLines(ui, ms, func(m config.Machine) string { return "Uninstalling " + m.ID })
	lines.event(apply.Event{Address: "machine.b", Action: plan.Uninstall, Status: apply.Done})
	if ui.OutputWriter.String() != "" {
		t.Fatalf("b printed before a: %q", ui.OutputWriter.String())
	}
	failed := lines.finish(notCarriedOut(apply.Result{Interrupted: true}))
	if strings.Join(failed, ",") != "a" || ui.OutputWriter.String() != "Uninstalling b... OK\n" ||
		ui.ErrorWriter.String() != "Uninstalling a... FAILED: not carried out: interrupted\n" {
		t.Fatalf("failed %v, stdout %q, stderr %q", failed, ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
}

func TestClusterCommandsHonourTheStateLock(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ADORA_HOME", dir)
	file := filepath.Join(dir, "cluster.yml")
	if err := os.WriteFile(file, []byte("coordinator:\n  addr: 127.0.0.1\n  port: 1\nmachines:\n  - id: bot\n    host: 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An apply holds the state next to the cluster file.
	backend := statefile.New(filepath.Join(dir, statefile.DefaultName))
	holder := state.NewLockInfo("apply", "2.0", time.Now())
	if err := backend.Lock(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	defer backend.Unlock(context.Background(), holder.ID)
	for name, run := range map[string]func(cli.Ui) int{
		"install":   func(ui cli.Ui) int { return (&ClusterInstallCommand{Meta: &Meta{Ui: ui}}).Run([]string{file}) },
		"upgrade":   func(ui cli.Ui) int { return (&ClusterUpgradeCommand{Meta: &Meta{Ui: ui}}).Run([]string{file}) },
		"uninstall": func(ui cli.Ui) int { return (&ClusterUninstallCommand{Meta: &Meta{Ui: ui}}).Run([]string{file}) },
	} {
		t.Run(name, func(t *testing.T) {
			ui := cli.NewMockUi()
			if code := run(ui); code != 1 || !strings.Contains(ui.ErrorWriter.String(), holder.ID) || !strings.Contains(ui.ErrorWriter.String(), "apply") {
				t.Fatalf("exit %d, stderr %q: want a refusal naming the lock holder", code, ui.ErrorWriter.String())
			}
			if ui.OutputWriter.String() != "" {
				t.Fatalf("something was done while the state was locked: %q", ui.OutputWriter.String())
			}
		})
	}
}

func TestInstalledAlready(t *testing.T) {
	for name, tc := range map[string]struct {
		change plan.Change
		obs    state.MachineObservation
		want   string
	}{
		"as desired":      {plan.Change{Action: plan.NoOp}, state.MachineObservation{ID: "a", Reachable: true}, "OK (unchanged)"},
		"not observed":    {plan.Change{Action: plan.NoOp}, state.MachineObservation{}, "OK (unchanged)"},
		"upgrade pending": {plan.Change{Action: plan.Upgrade}, state.MachineObservation{ID: "a", Reachable: true}, "OK (installed; it runs another adora binary: adora cluster upgrade replaces it)"},
		"unreachable":     {plan.Change{Action: plan.NoOp}, state.MachineObservation{ID: "a", Error: "connect to a: refused"}, "FAILED: connect to a: refused"},
	} {
		t.Run(name, func(t *testing.T) {
			r := installedAlready(tc.change, tc.obs)
			got := "OK " + r.note
			if r.err != nil {
				got = "FAILED: " + r.err.Error()
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
