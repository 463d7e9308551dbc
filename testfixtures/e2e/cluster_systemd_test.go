//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/state/statefile"
)

const brokenDaemon = `package main

import (
	"fmt"
	"os"
)

// A build that reports a version but cannot run as a daemon.
func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("adora e2e-broken (protocol 1, linux/amd64)")
		return
	}
	fmt.Fprintln(os.Stderr, "this build is broken on purpose")
	os.Exit(1)
}
`

// TestClusterSystemdLifecycle: install creates active, enabled services;
// a reboot brings a daemon back; a rolling upgrade ends with every host on
// the new binary and version; a broken binary stops the rollout at the
// first host leaving the others untouched; an unreachable host fails
// alone; uninstall removes everything.
func TestClusterSystemdLifecycle(t *testing.T) {
	f := newFleet(t, 16013)
	f.startCoordinator()
	v1, v2 := adoraBinary(t, "e2e-1"), adoraBinary(t, "e2e-2")
	names := hostNames()

	out, code := f.adora(v1, "cluster", "install", f.file)
	if code != 0 {
		t.Fatalf("cluster install exit %d", code)
	}
	mustContain(t, out, "Installing adora-daemon-h1 on "+tgt("h1")+"... OK", "3/3 succeeded.")
	for _, n := range names {
		if got := sh(t, n, "systemctl is-active adora-daemon-"+n+"; systemctl is-enabled adora-daemon-"+n+"; stat -c %a /etc/adora/daemon-"+n+".env"); got != "active\nenabled\n600" {
			t.Fatalf("%s after install: %q", n, got)
		}
		if tok := sh(t, n, "grep -c "+f.token+" /etc/adora/daemon-"+n+".env"); tok != "1" {
			t.Fatalf("%s: the token is not in the environment file", n)
		}
		if ps := sh(t, n, "ps -eo args | grep -c '[a]dora daemon.*"+f.token+"' || true"); ps != "0" {
			t.Fatalf("%s: the token appears on a command line", n)
		}
	}
	f.waitDaemons(30*time.Second, "e2e-1", names...)
	checkObserved(t, f, "h2", sha256Of(t, v1), "e2e-1")
	// cluster install is an apply: the state next to the cluster file
	// records the machines, so plan has nothing left to do.
	planShowsNoMachineChanges(t, f, v1)

	// Idempotent: a second install changes nothing and restarts nothing.
	pid := sh(t, "h1", "systemctl show -p MainPID --value adora-daemon-h1")
	out, code = f.adora(v1, "cluster", "install", f.file)
	if code != 0 || strings.Count(out, "OK (unchanged)") != 3 {
		t.Fatalf("second install: exit %d\n%s", code, out)
	}
	if again := sh(t, "h1", "systemctl show -p MainPID --value adora-daemon-h1"); again != pid {
		t.Fatalf("second install restarted the daemon (pid %s -> %s)", pid, again)
	}

	placed := f.startFlow("fleet", placedFlow)
	if placed["camera"] != "h1" || placed["inference"] != "h2" || placed["edge"] != "h3" {
		t.Fatalf("placements %v", placed)
	}
	waitNodes(t, 20*time.Second, names...)

	t.Run("reboot brings the daemon and its nodes back", func(t *testing.T) {
		before := waitNodes(t, 5*time.Second, names...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := bed.Reboot(ctx, "h2"); err != nil {
			t.Fatal(err)
		}
		if got := sh(t, "h2", "systemctl is-active adora-daemon-h2 || true"); got != "active" && got != "activating" {
			t.Fatalf("after reboot adora-daemon-h2 is %q", got)
		}
		f.waitDaemons(40*time.Second, "e2e-1", names...)
		// Auto-recovery re-spawns the node of h2; the others never stopped.
		after := waitNodes(t, 90*time.Second, names...)
		if after["h1"] != before["h1"] || after["h3"] != before["h3"] {
			t.Fatalf("nodes on h1/h3 restarted during h2's reboot: %v -> %v", before, after)
		}
	})

	t.Run("rolling upgrade", func(t *testing.T) {
		base := waitNodes(t, 5*time.Second, names...)
		sampler := samplePIDs(base, names)
		out, code := f.adora(v1, "cluster", "upgrade", "-binary", v2, f.file)
		samples := sampler.Stop()
		if code != 0 {
			t.Fatalf("cluster upgrade exit %d", code)
		}
		for _, n := range names {
			mustContain(t, out, "Upgrading "+n+" (adora@")
		}
		mustContain(t, out, "  SCP binary... OK", "  Restart service... OK", "  Waiting for reconnect... OK (", "3/3 succeeded.")
		// Sequential: each host's reconnect line comes before the next host starts.
		if strings.Index(out, "Upgrading h2") < strings.Index(out, "Waiting for reconnect") {
			t.Fatal("h2 started before h1 reconnected")
		}
		want := sha256Of(t, v2)
		for _, n := range names {
			if got := sh(t, n, "sha256sum /usr/local/bin/adora | cut -d' ' -f1; ls -A /usr/local/bin | grep -c adora-tmp || true"); got != want+"\n0" {
				t.Fatalf("%s binary after upgrade: %q, want %s", n, got, want)
			}
		}
		f.waitDaemons(10*time.Second, "e2e-2", names...)
		planShowsNoMachineChanges(t, f, v2)
		// While one host is upgraded the nodes of the hosts after it keep
		// running: the set of hosts whose node changed only ever grows in
		// rollout order (h1, then h1+h2, ...).
		seen, last := map[int]bool{}, 0
		for _, s := range samples {
			if want := names[:len(s)]; strings.Join(s, ",") != strings.Join(want, ",") || len(s) < last {
				t.Fatalf("during the rollout nodes changed on %v (samples %v)", s, samples)
			}
			seen[len(s)], last = true, len(s)
		}
		if !seen[1] || !seen[2] {
			t.Fatalf("never saw h1 upgraded while h2 and h3 kept their nodes, then h2 while h3 did (samples %v)", samples)
		}
		waitNodes(t, 90*time.Second, names...)
	})

	t.Run("broken binary stops the rollout at the first host", func(t *testing.T) {
		broken := goBinary(t, "adora-broken", brokenDaemon)
		before := map[string]string{}
		for _, n := range names[1:] {
			before[n] = sh(t, n, "systemctl show -p MainPID --value adora-daemon-"+n)
		}
		nodesBefore := waitNodes(t, 90*time.Second, names...)
		out, code := f.adora(v2, "cluster", "upgrade", "-binary", broken, "-timeout", "6s", f.file)
		if code == 0 {
			t.Fatal("upgrade with a broken binary exited 0")
		}
		mustContain(t, out, "Upgrading h1", "Waiting for reconnect... FAILED", "Roll back... OK (e2e-2 again)",
			"Rollout stopped at h1", "rolled back to e2e-2", "Not upgraded (untouched): h2, h3", "0/3 succeeded.")
		if strings.Contains(out, "Upgrading h2") {
			t.Fatal("the rollout went on after h1 failed")
		}
		want := sha256Of(t, v2)
		if got := sh(t, "h1", "sha256sum /usr/local/bin/adora | cut -d' ' -f1"); got != want {
			t.Fatalf("h1 was not rolled back: binary %s", got)
		}
		for _, n := range names[1:] {
			if got := sh(t, n, "sha256sum /usr/local/bin/adora | cut -d' ' -f1"); got != want {
				t.Fatalf("%s was touched: binary %s", n, got)
			}
			if pid := sh(t, n, "systemctl show -p MainPID --value adora-daemon-"+n); pid != before[n] {
				t.Fatalf("%s daemon restarted (%s -> %s)", n, before[n], pid)
			}
			if p, _ := nodePID(n); p != nodesBefore[n] {
				t.Fatalf("%s node restarted during the failed rollout (%s -> %s)", n, nodesBefore[n], p)
			}
		}
		f.waitDaemons(10*time.Second, "e2e-2", names...)
		// The failed machine is not recorded on the broken binary.
		planShowsNoMachineChanges(t, f, v2)
		// Upgrading to what runs everywhere changes and restarts nothing.
		out, code = f.adora(v2, "cluster", "upgrade", "-binary", v2, f.file)
		if code != 0 || strings.Count(out, "Restart service... skipped (already running e2e-2)") != 3 {
			t.Fatalf("no-op upgrade exit %d\n%s", code, out)
		}
	})

	t.Run("binary for another architecture is refused", func(t *testing.T) {
		arm := goBinaryFor(t, "adora-arm64", "arm64", brokenDaemon)
		out, code := f.adora(v2, "cluster", "upgrade", "-binary", arm, "-version", "e2e-arm", f.file)
		if code == 0 {
			t.Fatal("upgrade with an arm64 binary on x86_64 hosts exited 0")
		}
		mustContain(t, out, "Upgrading h1", "SCP binary... FAILED", "binary is built for aarch64 but machine h1 is x86_64", "Rollout stopped at h1")
		want := sha256Of(t, v2)
		for _, n := range names {
			if got := sh(t, n, "sha256sum /usr/local/bin/adora | cut -d' ' -f1; ls -A /usr/local/bin /tmp | grep -c -e adora-upload -e adora-tmp || true"); got != want+"\n0" {
				t.Fatalf("%s changed by a refused upgrade: %q", n, got)
			}
		}
	})

	t.Run("unreachable host fails alone", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := bed.PowerCut(ctx, "h3"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := bed.Start(context.Background(), "h3"); err != nil {
				t.Error(err)
			}
		}()
		out, code := f.adora(v2, "cluster", "install", f.file)
		if code != 1 {
			t.Fatalf("install with h3 powered off: exit %d, want 1", code)
		}
		mustContain(t, out, "Installing adora-daemon-h1 on "+tgt("h1")+"... OK", "Installing adora-daemon-h2 on "+tgt("h2")+"... OK",
			"Installing adora-daemon-h3 on "+tgt("h3")+"... FAILED: connect to h3", "2/3 succeeded.", "Failed on 1 machine(s): h3")
	})

	t.Run("uninstall", func(t *testing.T) {
		f.waitDaemons(60*time.Second, "e2e-2", names...) // h3 is back after its power cut
		out, code := f.adora(v2, "cluster", "uninstall", f.file)
		if code != 0 {
			t.Fatalf("cluster uninstall exit %d", code)
		}
		mustContain(t, out, "Uninstalling adora-daemon-h1 from "+tgt("h1")+"... OK", "3/3 succeeded.")
		for _, n := range names {
			if got := sh(t, n, "systemctl is-active adora-daemon-"+n+" || true; ls /etc/systemd/system/adora-daemon-"+n+".service /etc/adora/daemon-"+n+".env 2>/dev/null | wc -l"); got != "inactive\n0" {
				t.Fatalf("%s after uninstall: %q", n, got)
			}
		}
		f.waitDaemons(30*time.Second, "")
		st, err := statefile.New(filepath.Join(filepath.Dir(f.file), statefile.DefaultName)).Read(context.Background())
		if err != nil || st == nil || len(st.Machines) != 0 {
			t.Fatalf("state after uninstall: %+v, %v; want no machine recorded", st, err)
		}
	})
}

// planShowsNoMachineChanges runs adora plan -detailed-exitcode (binary
// bin) on the fleet's cluster file: the cluster commands record what they
// did in the state apply uses, so the plan has no machine change and sees
// no drift.
func planShowsNoMachineChanges(t *testing.T, f *fleet, bin string) {
	t.Helper()
	out, code := f.adora(bin, "plan", "-detailed-exitcode", "-no-color", f.file)
	if code != 0 || strings.Contains(out, "machine.") || !strings.Contains(out, "No changes") {
		t.Fatalf("plan after the cluster command: exit %d, want 0 with no machine change\n%s", code, out)
	}
	out, code = f.adora(bin, "plan", "-json", f.file)
	if code != 0 {
		t.Fatalf("plan -json: exit %d\n%s", code, out)
	}
	var doc struct {
		Changes []struct{ Address, Kind, Action string }
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &doc); err != nil {
		t.Fatalf("plan -json: %v\n%s", err, out)
	}
	for _, c := range doc.Changes {
		if c.Kind == "machine" && c.Action != "no-op" {
			t.Fatalf("plan -json has a machine change after the cluster command: %+v", c)
		}
	}
}

// checkObserved compares remote.ObserveMachine (the refresh path of plan
// and apply) with what install put on host name.
func checkObserved(t *testing.T, f *fleet, name, binSHA, version string) {
	t.Helper()
	cl, diags := config.LoadCluster(f.file)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	fl := &remote.Fleet{Cluster: cl, Dialer: remote.NewDialer(nil), Token: f.token}
	m := cl.Machine(name)
	mc, err := fl.Dial(context.Background(), *m)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	o, err := remote.ObserveMachine(context.Background(), mc, name)
	if err != nil {
		t.Fatal(err)
	}
	unit, err := remote.RenderUnit(fl.Spec(*m))
	if err != nil {
		t.Fatal(err)
	}
	env, _ := remote.RenderEnv(fl.Spec(*m), remote.DaemonHome(name))
	if !o.UnitPresent || !o.Active() || !o.Enabled() || o.UnitSHA256 != remote.ContentHash(unit) || o.EnvSHA256 != remote.ContentHash(env) ||
		o.BinarySHA256 != binSHA || remote.ParseVersion(o.BinaryVer) != version || o.Arch != "x86_64" || o.AdhocPID != 0 {
		t.Fatalf("observed %s: %+v", name, o)
	}
	obs, err := fl.ObserveMachine(context.Background(), *m)
	if err != nil || !obs.Reachable || !obs.UnitActive || obs.UnitHash != remote.ContentHash(unit) || obs.BinaryVersion != version {
		t.Fatalf("fleet observation of %s: %+v, %v", name, obs, err)
	}
}
