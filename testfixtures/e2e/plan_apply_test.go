//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

const planApp = `nodes:
  - id: camera
    path: /bin/sh
    args: -c 'exec sleep 3600'
    _unstable_deploy:
      machine: h1
  - id: detector
    path: /bin/sh
    args: -c 'exec sleep 3600'
    _unstable_deploy:
      labels:
        gpu: "true"
  - id: logger
    path: /bin/sh
    args: -c 'exec sleep 3600'
    _unstable_deploy:
      labels:
        role: edge
`

// TestPlanApplyFleet walks the plan/apply life of a 3-host fleet: first
// deployment, no changes, a label change moving a node, a 3-wave rolling
// upgrade with the dataflow kept running, drift from a daemon stopped out
// of band, a saved plan refused after the state changed, and an apply
// killed mid-rollout resumed with nothing done twice.
func TestPlanApplyFleet(t *testing.T) {
	lockBed(t)
	f := newFleet(t, 16113)
	f.startCoordinator()
	v1, v2 := adoraBinary(t, "e2e-1"), adoraBinary(t, "e2e-2")
	if err := os.WriteFile(filepath.Join(f.home, "app.yml"), []byte(planApp), 0o644); err != nil {
		t.Fatal(err)
	}
	appendPlanFile(t, f.file, "dataflows:\n  - name: my-app\n    path: app.yml\n")

	// First deployment.
	out, code := f.adora(v1, "plan", "-no-color", "-detailed-exitcode", f.file)
	if code != 2 {
		t.Fatalf("first plan exit %d; want 2", code)
	}
	mustContain(t, out, "+   machine.h1", "+ node detector: h2 (labels)",
		"Plan: 3 to install, 0 to upgrade, 0 to uninstall; 1 dataflow to start, 0 to restart, 0 to stop.")
	if out, code = f.adora(v1, "apply", "-auto-approve", "-no-color", f.file); code != 0 {
		t.Fatalf("first apply exit %d", code)
	}
	mustContain(t, out, "machine.h1: install complete after", "dataflow.my-app: start complete after")
	f.waitDaemons(30*time.Second, "e2e-1", hostNames()...)
	flow := f.flow(t, "my-app")
	if got := placements(flow); got["camera"] != "h1" || got["detector"] != "h2" || got["logger"] != "h3" {
		t.Fatalf("placements after the first apply: %v", got)
	}
	out, code = f.adora(v1, "plan", "-no-color", "-detailed-exitcode", f.file)
	if code != 0 {
		t.Fatalf("plan after apply exit %d; want 0", code)
	}
	mustContain(t, out, "No changes.")

	t.Run("label change moves a node", func(t *testing.T) {
		yml := readFile(t, f.file)
		yml = strings.Replace(yml, "      role: gpu-server\n      gpu: \"true\"\n", "      role: gpu-server\n", 1)
		yml = strings.Replace(yml, "      role: edge\n", "      role: edge\n      gpu: \"true\"\n", 1)
		writePlanFile(t, f.file, yml)
		out, code := f.adora(v1, "plan", "-no-color", "-detailed-exitcode", f.file)
		if code != 2 {
			t.Fatalf("plan exit %d; want 2", code)
		}
		mustContain(t, out, "~ node detector: h2 -> h3 (labels)", "-/+ dataflow.my-app", "2 to reconfigure")
		if _, code := f.adora(v1, "apply", "-auto-approve", "-no-color", f.file); code != 0 {
			t.Fatalf("apply exit %d", code)
		}
		if got := placements(f.flow(t, "my-app")); got["detector"] != "h3" {
			t.Fatalf("detector runs on %s; want h3", got["detector"])
		}
		if _, code := f.adora(v1, "plan", "-detailed-exitcode", f.file); code != 0 {
			t.Fatalf("plan after the move exit %d; want 0", code)
		}
	})

	t.Run("rolling upgrade in 3 waves keeps the dataflow", func(t *testing.T) {
		before := f.flow(t, "my-app").ID
		out, code := f.adora(v2, "plan", "-no-color", "-detailed-exitcode", f.file)
		if code != 2 {
			t.Fatalf("plan exit %d; want 2", code)
		}
		mustContain(t, out, "wave 1: h1\n  wave 2: h2\n  wave 3: h3", "3 to upgrade")
		// While h1 and h2 are upgraded, the nodes on h3 keep running: same
		// processes before the rollout and once h2 is back.
		nodesOnH3 := func() string { return sh(t, "h3", "pgrep -x sleep | sort | tr '\\n' ' '") }
		var pidsBefore, pidsDuring string
		out, code = f.adoraStream(v2, func(line string) {
			switch {
			case strings.HasPrefix(line, "machine.h1: Upgrading"):
				pidsBefore = nodesOnH3()
			case strings.HasPrefix(line, "machine.h2: upgrade complete"):
				pidsDuring = nodesOnH3()
			}
		}, "apply", "-auto-approve", "-no-color", f.file)
		if code != 0 {
			t.Fatalf("apply exit %d", code)
		}
		if i, j := strings.Index(out, "machine.h1: upgrade complete"), strings.Index(out, "machine.h2: Upgrading"); i < 0 || j < i {
			t.Fatalf("h2 started before h1 was back:\n%s", out)
		}
		if strings.TrimSpace(pidsBefore) == "" || pidsBefore != pidsDuring {
			t.Fatalf("nodes on h3 did not keep running while h1 and h2 were upgraded: %q then %q", pidsBefore, pidsDuring)
		}
		f.waitDaemons(30*time.Second, "e2e-2", hostNames()...)
		if after := f.flow(t, "my-app").ID; after != before {
			t.Fatalf("the rollout restarted the dataflow (%s -> %s)", before, after)
		}
		if _, code := f.adora(v2, "plan", "-detailed-exitcode", f.file); code != 0 {
			t.Fatalf("plan after the upgrade exit %d; want 0", code)
		}
	})

	t.Run("daemon stopped out of band is drift", func(t *testing.T) {
		sh(t, "h3", "systemctl stop adora-daemon-h3")
		out, code := f.adora(v2, "plan", "-no-color", "-detailed-exitcode", f.file)
		if code != 2 {
			t.Fatalf("plan exit %d; want 2", code)
		}
		mustContain(t, out, "machine.h3: daemon recorded running, observed stopped", "reason: daemon is not running (drift): restart it")
		if _, code := f.adora(v2, "apply", "-auto-approve", f.file); code != 0 {
			t.Fatalf("repairing apply exit %d", code)
		}
		f.waitDaemons(30*time.Second, "e2e-2", hostNames()...)
	})

	t.Run("saved plan refused after the state changed", func(t *testing.T) {
		planFile := filepath.Join(f.home, "down.plan")
		if out, code := f.adora(v1, "plan", "-out", planFile, f.file); code != 0 || !strings.Contains(out, "Saved the plan to") {
			t.Fatalf("plan -out exit %d", code)
		}
		// Someone applies something else first: the restart of h1's daemon
		// by a label change.
		yml := readFile(t, f.file)
		writePlanFile(t, f.file, strings.Replace(yml, "      zone: a\n", "      zone: a\n      extra: \"1\"\n", 1))
		if _, code := f.adora(v2, "apply", "-auto-approve", "-target", "machine.h1", f.file); code != 0 {
			t.Fatalf("other apply exit %d", code)
		}
		out, code := f.adora(v1, "apply", planFile)
		if code != 1 {
			t.Fatalf("apply of the stale plan exit %d; want 1", code)
		}
		mustContain(t, out, "saved plan is stale", "the state changed since the plan was made")
		writePlanFile(t, f.file, yml)
		if _, code := f.adora(v2, "apply", "-auto-approve", f.file); code != 0 {
			t.Fatalf("apply back exit %d", code)
		}

		// The state did not change, but the world did: a precondition the
		// plan saw no longer holds.
		if _, code := f.adora(v1, "plan", "-out", planFile, f.file); code != 0 {
			t.Fatalf("plan -out exit %d", code)
		}
		sh(t, "h2", "systemctl stop adora-daemon-h2")
		out, code = f.adora(v1, "apply", planFile)
		if code != 1 {
			t.Fatalf("apply with a broken precondition exit %d; want 1", code)
		}
		mustContain(t, out, "saved plan is stale", "machine.h2: daemon_running was true when planned, now false")
		sh(t, "h2", "systemctl start adora-daemon-h2")
		f.waitDaemons(30*time.Second, "e2e-2", hostNames()...)
	})

	t.Run("apply killed mid-rollout resumes with nothing done twice", func(t *testing.T) {
		cmd := exec.Command(v1, "apply", "-auto-approve", "-no-color", f.file)
		cmd.Env = append(os.Environ(), "ADORA_HOME="+f.home, "ADORA_AUTH_TOKEN=")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		killed, raced := false, false
		for sc.Scan() {
			t.Log(sc.Text())
			if !raced && strings.HasPrefix(sc.Text(), "machine.h1: Upgrading") {
				// A second apply while the first runs fails on the lock,
				// naming the holder.
				out, code := f.adora(v1, "apply", "-auto-approve", f.file)
				if code != 1 || !strings.Contains(out, "state is locked by") || !strings.Contains(out, `for "apply"`) {
					t.Errorf("concurrent apply: exit %d; want 1 naming the holder", code)
				}
				raced = true
			}
			if strings.HasPrefix(sc.Text(), "machine.h1: upgrade complete") {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				break
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatal("the apply ended before h1 was upgraded")
		}
		// The killed apply left its lock: the next plan names it.
		out, code := f.adora(v1, "plan", "-no-color", f.file)
		if code != 1 || !strings.Contains(out, "state is locked") {
			t.Fatalf("plan after the kill: exit %d", code)
		}
		id := regexp.MustCompile(`adora force-unlock (\S+)`).FindStringSubmatch(out)
		if id == nil {
			t.Fatalf("no lock ID in:\n%s", out)
		}
		if _, code := f.adora(v1, "force-unlock", "-force", "-state", filepath.Join(f.home, "adora.state"), id[1]); code != 0 {
			t.Fatal("force-unlock failed")
		}
		out, code = f.adora(v1, "plan", "-no-color", "-detailed-exitcode", f.file)
		if code != 2 {
			t.Fatalf("resume plan exit %d; want 2", code)
		}
		if strings.Contains(out, "machine.h1 will be") || !strings.Contains(out, "machine.h2 will be upgraded") {
			t.Fatalf("the resume plan is not exactly the remaining work:\n%s", out)
		}
		if _, code := f.adora(v1, "apply", "-auto-approve", f.file); code != 0 {
			t.Fatalf("resume apply exit %d", code)
		}
		f.waitDaemons(30*time.Second, "e2e-1", hostNames()...)
	})

	t.Run("destroy removes everything", func(t *testing.T) {
		if _, code := f.adora(v1, "destroy", "-auto-approve", f.file); code != 0 {
			t.Fatalf("destroy exit %d", code)
		}
		for _, n := range hostNames() {
			if got := sh(t, n, "test -e /etc/systemd/system/adora-daemon-"+n+".service && echo present || echo gone"); got != "gone" {
				t.Fatalf("%s: unit %s after destroy", n, got)
			}
		}
		out, _ := f.adora(v1, "state", "list", "-state", filepath.Join(f.home, "adora.state"))
		if strings.TrimSpace(out) != "" {
			t.Fatalf("state after destroy lists:\n%s", out)
		}
	})
}

// flow returns the running dataflow name.
func (f *fleet) flow(t *testing.T, name string) proto.DataflowInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, f.opts())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range flows {
		if fl.Name == name {
			return fl
		}
	}
	t.Fatalf("dataflow %s is not running (running: %v)", name, flows)
	return proto.DataflowInfo{}
}

func placements(fl proto.DataflowInfo) map[string]string {
	out := map[string]string{}
	for _, p := range fl.Placements {
		out[p.NodeID] = p.MachineID
	}
	return out
}

func writePlanFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendPlanFile(t *testing.T, path, s string) {
	t.Helper()
	writePlanFile(t, path, readFile(t, path)+s)
}

// lockBed holds an exclusive advisory lock on the bed for the rest of the
// test, so that test processes that take it do not reset hosts under each
// other (every test starts by wiping the hosts).
func lockBed(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(filepath.Dir(bed.Cluster), "e2e.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() })
}

// adoraStream runs the CLI like adora, calling onLine for each output line
// as it comes, and returns the whole output and the exit code.
func (f *fleet) adoraStream(bin string, onLine func(string), args ...string) (string, int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "ADORA_HOME="+f.home, "ADORA_AUTH_TOKEN=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	var all strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		onLine(sc.Text())
	}
	code := 0
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			f.t.Fatalf("run adora %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	f.t.Logf("$ adora %s (exit %d)\n%s", strings.Join(args, " "), code, all.String())
	return all.String(), code
}
