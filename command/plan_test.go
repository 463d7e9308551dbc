package command

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// deployProject writes a cluster, a dataflow and a fake adora binary into
// a temporary directory and returns the directory.
func deployProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("ADORA_HOME", filepath.Join(dir, "home"))
	t.Setenv("ADORA_AUTH_TOKEN", "test-token")
	write := func(name, body string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("cluster.yml", `coordinator:
  addr: 10.0.0.1
machines:
  - id: bot-01
    host: 10.0.0.2
  - id: gpu-server
    host: 10.0.0.3
    labels:
      gpu: "true"
dataflows:
  - name: my-app
    path: app.yml
`, 0o644)
	write("app.yml", `nodes:
  - id: camera
    path: ./camera
    outputs: [image]
    _unstable_deploy:
      machine: bot-01
  - id: detector
    path: ./detector
    inputs:
      image: camera/image
    _unstable_deploy:
      labels:
        gpu: "true"
`, 0o644)
	write("adora-bin", "#!/bin/sh\necho 'adora 9.9.9 (protocol 1, linux/amd64)'\n", 0o755)
	return dir
}

func runCmd(t *testing.T, c cli.Command, args ...string) (int, string, string) {
	t.Helper()
	ui := cli.NewMockUi()
	switch cmd := c.(type) {
	case *PlanCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *ApplyCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *ShowCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *StateListCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *StateShowCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *ForceUnlockCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *DestroyCommand:
		cmd.Meta = &Meta{Ui: ui}
	case *StatePushCommand:
		cmd.Meta = &Meta{Ui: ui}
	}
	code := c.Run(args)
	return code, ui.OutputWriter.String(), ui.ErrorWriter.String()
}

func planArgs(dir string, extra ...string) []string {
	return append([]string{"-refresh=false", "-no-color", "-binary", filepath.Join(dir, "adora-bin"),
		"-state", filepath.Join(dir, "adora.state"), filepath.Join(dir, "cluster.yml")}, extra...)
}

// recordAll writes the state apply would leave after carrying out the
// plan of dir: the fleet as configured.
func recordAll(t *testing.T, dir string) *state.State {
	t.Helper()
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
	p, err := plan.Compute(nil, nil, plan.Desired{Cluster: c, Dataflows: dfs, Binary: bin, Placer: plan.DefaultPlacer, UnitHashes: ops.unitHashes(c), RunAs: runAsUsers(c)})
	if err != nil {
		t.Fatal(err)
	}
	st := state.New("test")
	for _, ch := range p.Changes {
		plan.Record(st, ch, "uuid-1")
	}
	st.Coordinator = p.Coordinator
	if err := statefile.New(filepath.Join(dir, "adora.state")).Write(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPlanFirstDeploymentDetailedExitcode(t *testing.T) {
	dir := deployProject(t)
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 2 {
		t.Fatalf("exit %d; want 2 (changes)\n%s%s", code, out, errs)
	}
	for _, want := range []string{"+   machine.bot-01", "+ node detector: gpu-server (labels)",
		"Plan: 2 to install, 0 to upgrade, 0 to uninstall; 1 dataflow to start, 0 to restart, 0 to stop."} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
}

func TestPlanNoChangesExitsZero(t *testing.T) {
	dir := deployProject(t)
	recordAll(t, dir)
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 0 || !strings.Contains(out, "No changes.") {
		t.Fatalf("exit %d; want 0 and No changes\n%s%s", code, out, errs)
	}
}

func TestPlanJSON(t *testing.T) {
	dir := deployProject(t)
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-json")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	var doc struct {
		FormatVersion string         `json:"format_version"`
		Summary       map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan -json is not JSON: %v\n%s", err, out)
	}
	if doc.FormatVersion == "" || doc.Summary["install"] != 2 {
		t.Fatalf("doc = %+v", doc)
	}
}

func TestPlanFailsWhileStateIsLocked(t *testing.T) {
	dir := deployProject(t)
	b := statefile.New(filepath.Join(dir, "adora.state"))
	holder := state.LockInfo{ID: "lock-1234", Operation: "apply", Who: "ci@runner-7", Created: time.Now()}
	if err := b.Lock(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]cli.Command{"plan": &PlanCommand{}, "apply": &ApplyCommand{}} {
		args := planArgs(dir)
		if name == "apply" {
			args = append([]string{"-auto-approve"}, args...)
		}
		code, _, errs := runCmd(t, cmd, args...)
		if code != 1 {
			t.Fatalf("%s: exit %d while the state is locked; want 1", name, code)
		}
		for _, want := range []string{"ci@runner-7", `"apply"`, "lock-1234", "adora force-unlock lock-1234"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: error lacks %q: %s", name, want, errs)
			}
		}
	}
}

func TestPlanWithoutLockWhileLocked(t *testing.T) {
	dir := deployProject(t)
	b := statefile.New(filepath.Join(dir, "adora.state"))
	if err := b.Lock(context.Background(), state.NewLockInfo("apply", "test", time.Now())); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-lock=false")...); code != 0 {
		t.Fatalf("plan -lock=false exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCmd(t, &ApplyCommand{}, planArgs(dir, "-lock=false", "-auto-approve")...); code != 1 || !strings.Contains(errs, "only for plan and refresh") {
		t.Fatalf("apply -lock=false: exit %d %s", code, errs)
	}
}

func TestPlanWaitsForTheLockWithTimeout(t *testing.T) {
	dir := deployProject(t)
	b := statefile.New(filepath.Join(dir, "adora.state"))
	holder := state.NewLockInfo("apply", "test", time.Now())
	if err := b.Lock(context.Background(), holder); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(200 * time.Millisecond)
		b.Unlock(context.Background(), holder.ID)
	}()
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-lock-timeout", "10s")...)
	<-done
	if code != 0 {
		t.Fatalf("exit %d; want the plan once the lock was released\n%s%s", code, out, errs)
	}
	if _, err := b.Holder(); err == nil {
		t.Fatal("plan left the lock behind")
	}
}

func TestSavedPlanRefusedWhenStateChanged(t *testing.T) {
	dir := deployProject(t)
	st := recordAll(t, dir)
	// Change the desired binary so there is something to apply.
	if err := os.WriteFile(filepath.Join(dir, "adora-bin"), []byte("#!/bin/sh\necho 'adora 9.9.10 (protocol 1, linux/amd64)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	planPath := filepath.Join(dir, "upgrade.plan")
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-out", planPath)...)
	if code != 0 || !strings.Contains(out, "2 to upgrade") {
		t.Fatalf("plan exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd(t, &ShowCommand{}, "-json", planPath)
	if code != 0 || !strings.Contains(out, `"format_version"`) {
		t.Fatalf("show -json exit %d\n%s", code, out)
	}
	code, _, errs = runCmd(t, &ApplyCommand{}, "-target", "machine.bot-01", planPath)
	if code != 1 || !strings.Contains(errs, "-target cannot be used with a saved plan") {
		t.Fatalf("apply PLANFILE -target: exit %d %s", code, errs)
	}
	// Someone else applies in between: the serial moves.
	if err := statefile.New(filepath.Join(dir, "adora.state")).Write(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, &ApplyCommand{}, "-state", filepath.Join(dir, "adora.state"), planPath)
	if code != 1 || !strings.Contains(errs, "saved plan is stale") || !strings.Contains(errs, "serial 1 then, 2 now") {
		t.Fatalf("apply of a stale plan: exit %d, %s", code, errs)
	}
	code, _, errs = runCmd(t, &ShowCommand{}, "-state", filepath.Join(dir, "adora.state"), planPath)
	if code != 0 || !strings.Contains(errs, "stale") {
		t.Fatalf("show of a stale plan: exit %d, want 0 and a warning; %s", code, errs)
	}
}

func TestPlanAgainstSavedPlan(t *testing.T) {
	dir := deployProject(t)
	saved := filepath.Join(dir, "first.plan")
	if code, _, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-out", saved)...); code != 0 {
		t.Fatalf("plan -out: %s", errs)
	}
	code, out, _ := runCmd(t, &PlanCommand{}, planArgs(dir, "-against", saved)...)
	if code != 0 || !strings.Contains(out, "makes the same changes as") {
		t.Fatalf("plan -against the same plan: exit %d\n%s", code, out)
	}
	recordAll(t, dir) // applied in the meantime
	code, out, _ = runCmd(t, &PlanCommand{}, planArgs(dir, "-against", saved)...)
	if code != 0 || !strings.Contains(out, "change(s) differ") || !strings.Contains(out, "machine.bot-01\n      was: install") {
		t.Fatalf("plan -against after apply: exit %d\n%s", code, out)
	}
}

func TestApplyRefusesWithoutTerminal(t *testing.T) {
	dir := deployProject(t)
	code, _, errs := runCmd(t, &ApplyCommand{}, planArgs(dir)...)
	if code != 1 || !strings.Contains(errs, "-auto-approve") {
		t.Fatalf("apply without a terminal: exit %d, %s", code, errs)
	}
	if _, err := statefile.New(filepath.Join(dir, "adora.state")).Holder(); err == nil {
		t.Fatal("apply left the lock behind")
	}
}

func TestStateListShowAndForceUnlock(t *testing.T) {
	dir := deployProject(t)
	recordAll(t, dir)
	statePath := filepath.Join(dir, "adora.state")
	code, out, _ := runCmd(t, &StateListCommand{}, "-state", statePath)
	want := "dataflow.my-app\ndataflow.my-app.node.camera\ndataflow.my-app.node.detector\nmachine.bot-01\nmachine.gpu-server\n"
	if code != 0 || out != want {
		t.Fatalf("state list exit %d:\n%s\nwant\n%s", code, out, want)
	}
	code, out, _ = runCmd(t, &StateShowCommand{}, "-state", statePath, "dataflow.my-app.node.detector")
	if code != 0 || !strings.Contains(out, `"machine": "gpu-server"`) {
		t.Fatalf("state show exit %d: %s", code, out)
	}
	code, _, errs := runCmd(t, &StateShowCommand{}, "-state", statePath, "machine.robt")
	if code != 1 || !strings.Contains(errs, "no resource machine.robt") {
		t.Fatalf("state show of a missing address: exit %d %s", code, errs)
	}
	b := statefile.New(statePath)
	info := state.NewLockInfo("apply", "test", time.Now())
	if err := b.Lock(context.Background(), info); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, &ForceUnlockCommand{}, "-state", statePath, "-force", "wrong-id"); code != 1 || !strings.Contains(errs, info.ID) {
		t.Fatalf("force-unlock with a wrong ID: exit %d %s", code, errs)
	}
	if code, _, errs := runCmd(t, &ForceUnlockCommand{}, "-state", statePath, "-force", info.ID); code != 0 {
		t.Fatalf("force-unlock: exit %d %s", code, errs)
	}
	if _, err := b.Holder(); err == nil {
		t.Fatal("the lock is still there")
	}
}

func TestLooksLikeClusterOnFixtures(t *testing.T) {
	for path, want := range map[string]bool{
		"../testfixtures/hcl/fleet/cluster.hcl":  true,
		"../testfixtures/hcl/fleet/cluster.yml":  true,
		"../testfixtures/hcl/fleet/dataflow.hcl": false,
		"../testfixtures/hcl/fleet/dataflow.yml": false,
	} {
		got, err := looksLikeCluster(path)
		if err != nil || got != want {
			t.Errorf("looksLikeCluster(%s) = %v, %v; want %v", path, got, err, want)
		}
	}
}

func TestSplitDeployArgs(t *testing.T) {
	dir := deployProject(t)
	c, dfs, err := splitDeployArgs("", []string{filepath.Join(dir, "app.yml"), filepath.Join(dir, "cluster.yml")})
	if err != nil || c != filepath.Join(dir, "cluster.yml") || len(dfs) != 1 {
		t.Fatalf("split = %q %v %v", c, dfs, err)
	}
	if _, _, err := splitDeployArgs(filepath.Join(dir, "cluster.yml"), []string{filepath.Join(dir, "cluster.yml")}); err == nil {
		t.Fatal("two cluster files accepted")
	}
}

func TestTwoLevelInterrupt(t *testing.T) {
	ui := cli.NewMockUi()
	ctx, interrupt, stop := deployInterrupts(ui)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-interrupt:
	case <-time.After(10 * time.Second):
		t.Fatal("the first interrupt did not close the interrupt channel")
	}
	if ctx.Err() != nil {
		t.Fatal("the first interrupt aborted")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the second interrupt did not abort")
	}
	if !strings.Contains(ui.ErrorWriter.String(), "Press Ctrl-C again to abort") {
		t.Fatalf("no interrupt notice: %q", ui.ErrorWriter.String())
	}
}

func TestApplyJSONStream(t *testing.T) {
	dir := deployProject(t)
	recordAll(t, dir)
	code, _, errs := runCmd(t, &ApplyCommand{}, planArgs(dir, "-json")...)
	if code != 1 || !strings.Contains(errs, "-auto-approve") {
		t.Fatalf("apply -json without approval: exit %d %s", code, errs)
	}
	code, out, errs := runCmd(t, &ApplyCommand{}, planArgs(dir, "-json", "-auto-approve")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var types []string
	for _, l := range lines {
		var v struct {
			Type string `json:"type"`
			OK   bool   `json:"ok"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		types = append(types, v.Type)
		if v.Type == "result" && !v.OK {
			t.Fatalf("result not ok: %s", l)
		}
	}
	if strings.Join(types, ",") != "plan,result" {
		t.Fatalf("stream types = %v; want plan, result", types)
	}
}

func TestPlanIsTheSameFromYAMLAndHCL(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "test-token")
	outs := map[string]string{}
	for _, ext := range []string{"yml", "hcl"} {
		dir := "../testfixtures/hcl/fleet/"
		code, out, errs := runCmd(t, &PlanCommand{}, "-refresh=false", "-no-color", "-state", filepath.Join(t.TempDir(), "adora.state"),
			dir+"cluster."+ext, dir+"dataflow."+ext)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", ext, code, errs)
		}
		outs[ext] = out
	}
	if outs["yml"] != outs["hcl"] {
		t.Fatalf("plans differ:\n--- yml\n%s\n--- hcl\n%s", outs["yml"], outs["hcl"])
	}
	if !strings.Contains(outs["yml"], "to install") || !strings.Contains(outs["yml"], "+   dataflow.dataflow") {
		t.Fatalf("unexpected plan:\n%s", outs["yml"])
	}
}

func TestPlanUnsatisfiablePlacementIsAnErrorWithPosition(t *testing.T) {
	dir := deployProject(t)
	app := strings.Replace(readTestFile(t, filepath.Join(dir, "app.yml")), "machine: bot-01", "machine: bot-1", 1)
	if err := os.WriteFile(filepath.Join(dir, "app.yml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, "-detailed-exitcode")...)
	if code != 1 {
		t.Fatalf("exit %d; want 1\n%s", code, out)
	}
	if !strings.Contains(errs, "app.yml:") || !strings.Contains(errs, "bot-1") {
		t.Fatalf("error does not point at the file and the machine: %s", errs)
	}
	if strings.Contains(out, "Plan:") {
		t.Fatalf("a plan was printed despite the error:\n%s", out)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
