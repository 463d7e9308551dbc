package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/remote"
)

// setRunAs adds run_as: user to machine id in dir's cluster.yml.
func setRunAs(t *testing.T, dir, id, user string) {
	t.Helper()
	p := filepath.Join(dir, "cluster.yml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	entry := "  - id: " + id + "\n"
	if !strings.Contains(string(b), entry) {
		t.Fatalf("no machine %s in\n%s", id, b)
	}
	s := strings.Replace(string(b), entry, entry+"    run_as: "+user+"\n", 1)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPlanShowsChangedRunAs: after a deployment, setting run_as on one
// machine makes adora plan reconfigure that machine's daemon in place
// (its unit changes) and leave the others alone.
func TestPlanShowsChangedRunAs(t *testing.T) {
	dir := deployProject(t)
	recordAll(t, dir)
	setRunAs(t, dir, "bot-01", "robot-svc")
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 2 {
		t.Fatalf("exit %d; want 2 (changes)\n%s%s", code, out, errs)
	}
	for _, want := range []string{"~   machine.bot-01", "unit changed: daemon is reconfigured and restarted", "run_as: root -> robot-svc"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "machine.gpu-server") {
		t.Errorf("gpu-server did not change but is in the plan:\n%s", out)
	}
	if strings.Contains(out, "to install") && !strings.Contains(out, "0 to install") {
		t.Errorf("a changed run_as is not a reinstall:\n%s", out)
	}
}

// TestUnitHashFollowsRunAs: the unit apply records and compares is the one
// the daemon is installed with: User= of the machine's run_as, else of its
// SSH user, none for root.
func TestUnitHashFollowsRunAs(t *testing.T) {
	c, diags := config.ParseCluster([]byte(`coordinator: {addr: 10.0.0.1}
ssh: {user: ubuntu}
machines:
  - {id: a, host: 10.0.0.2}
  - {id: b, host: 10.0.0.3, run_as: robot}
  - {id: c, host: 10.0.0.4, run_as: root}
  - {id: d, host: 10.0.0.5, user: root}
  - {id: here, local: true}
`), "cluster.yml")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ops := &fleetOps{Fleet: &remote.Fleet{Cluster: c, Token: "secret-token"}}
	got := ops.unitHashes(c)
	want := map[string]string{}
	for id, user := range map[string]string{"a": "ubuntu", "b": "robot", "c": "root", "d": "root"} {
		unit, err := remote.RenderUnit(remote.DaemonSpec{MachineID: id, CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, RunAs: user})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = remote.ContentHash(unit)
	}
	for id, h := range want {
		if got[id] != h {
			t.Errorf("machine %s: unit hash %.12s, want %.12s", id, got[id], h)
		}
	}
	if len(got) != len(want) {
		t.Errorf("hashes for %d machines, want %d (the local machine has no unit): %v", len(got), len(want), got)
	}
	if got["a"] == got["c"] {
		t.Error("running as ubuntu and as root give the same unit")
	}
}

// TestPlanUpdatesDaemonsInstalledAsRoot: daemons installed before run_as
// existed have the unit of a root daemon (no User=). With an SSH user that
// is not root, adora plan updates each of them in place to run as that
// user; nothing is reinstalled.
func TestPlanUpdatesDaemonsInstalledAsRoot(t *testing.T) {
	dir := deployProject(t)
	p := filepath.Join(dir, "cluster.yml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	withSSH := strings.Replace(string(b), "machines:\n", "ssh:\n  user: ubuntu\nmachines:\n", 1)
	if err := os.WriteFile(p, []byte(withSSH), 0o644); err != nil {
		t.Fatal(err)
	}
	// The state of the old install: every unit a root one.
	setRunAs(t, dir, "bot-01", "root")
	setRunAs(t, dir, "gpu-server", "root")
	recordAll(t, dir)
	if err := os.WriteFile(p, []byte(withSSH), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 2 {
		t.Fatalf("exit %d; want 2 (changes)\n%s%s", code, out, errs)
	}
	for _, want := range []string{"~   machine.bot-01", "~   machine.gpu-server", "0 to install"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
}
