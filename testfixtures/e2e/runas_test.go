//go:build e2e

package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// runAsUser is the unprivileged user TestRunAs creates on h1, a member of
// video (the supplementary group a camera node needs).
const runAsUser = "adora-e2e-svc"

// h1State lists what an installation puts on h1, one line per path that
// exists, with owner, mode and digest of files: equal before and after a
// refused install means the machine was left unchanged.
const h1State = `for p in /etc/adora /etc/adora/daemon-h1.env /var/lib/adora /var/lib/adora/h1 /usr/local/bin/adora /etc/systemd/system/adora-daemon-h1.service; do
  [ -e "$p" ] || continue
  if [ -f "$p" ]; then echo "$p $(stat -c '%U %a' "$p") $(sha256sum < "$p")"; else echo "$p $(stat -c '%U %a' "$p")"; fi
done
echo "active=$(systemctl is-active adora-daemon-h1 || true) pid=$(systemctl show -p MainPID --value adora-daemon-h1)"`

// setClusterRunAs writes f's cluster file with run_as: user on h1 (none
// when user is "").
func setClusterRunAs(t *testing.T, f *fleet, base, user string) {
	t.Helper()
	s := base
	if user != "" {
		s = strings.Replace(base, "  - id: h1\n", "  - id: h1\n    run_as: "+user+"\n", 1)
		if s == base {
			t.Fatalf("no h1 entry in the cluster file:\n%s", base)
		}
	}
	if err := os.WriteFile(f.file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunAs: the systemd daemon runs as the machine's run_as user (h1), or
// by default as the SSH user (h2, h3); the nodes it spawns run as that
// user with its groups and without the token; the token file stays root's.
// A run_as user missing on the machine fails that machine with a clear
// error and changes nothing on it, on a fresh host and on an installed
// one. A changed run_as is an in-place reconfigure in adora plan.
func TestRunAs(t *testing.T) {
	lockBed(t)
	sh(t, "h1", "userdel -r "+runAsUser+" >/dev/null 2>&1; useradd --system --no-create-home --shell /usr/sbin/nologin -G video "+runAsUser)
	t.Cleanup(func() { sh(t, "h1", "userdel "+runAsUser+" || true") })
	f := newFleet(t, 16213)
	f.startCoordinator()
	bin := adoraBinary(t, "e2e-1")
	base, err := os.ReadFile(f.file)
	if err != nil {
		t.Fatal(err)
	}
	names := hostNames()

	t.Run("missing user on a fresh machine", func(t *testing.T) {
		setClusterRunAs(t, f, string(base), "adora-e2e-nobody")
		before := sh(t, "h1", h1State)
		out, code := f.adora(bin, "cluster", "install", f.file)
		if code != 1 {
			t.Fatalf("cluster install exit %d; want 1", code)
		}
		mustContain(t, out, "machine h1: user adora-e2e-nobody given by run_as does not exist; create it or set run_as",
			"Failed on 1 machine(s): h1")
		if after := sh(t, "h1", h1State); after != before {
			t.Fatalf("h1 changed although its install was refused:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if strings.Contains(sh(t, "h1", h1State), "/etc/adora") {
			t.Fatal("h1 has /etc/adora before any install")
		}
	})

	setClusterRunAs(t, f, string(base), runAsUser)
	out, code := f.adora(bin, "cluster", "install", f.file)
	if code != 0 {
		t.Fatalf("cluster install exit %d", code)
	}
	mustContain(t, out, "3/3 succeeded.")
	f.waitDaemons(30*time.Second, "e2e-1", names...)

	t.Run("units and files", func(t *testing.T) {
		want := map[string]string{"h1": runAsUser, "h2": bed.User, "h3": bed.User}
		for _, n := range names {
			unit := "adora-daemon-" + n
			got := sh(t, n, "systemctl show -p User --value "+unit+"; ps -o user:32= -p $(systemctl show -p MainPID --value "+unit+")")
			if got != want[n]+"\n"+want[n] {
				t.Errorf("%s: unit User= and daemon process user %q, want %s", n, got, want[n])
			}
		}
		if got := sh(t, "h1", "stat -c '%U %a' /etc/adora/daemon-h1.env; stat -c %U /var/lib/adora/h1"); got != "root 600\n"+runAsUser {
			t.Fatalf("h1 environment file and home: %q; want the token root's 0600 and the home %s's", got, runAsUser)
		}
		// The daemon's user (its nodes' user) can read the token neither
		// from disk nor from the daemon's environment, which holds it.
		if got := sh(t, "h1", "runuser -u "+runAsUser+" -- cat /etc/adora/daemon-h1.env >/dev/null 2>&1 && echo readable || echo denied"); got != "denied" {
			t.Fatalf("%s can read the environment file (%s)", runAsUser, got)
		}
		environ := "/proc/$(systemctl show -p MainPID --value adora-daemon-h1)/environ"
		if got := sh(t, "h1", "tr '\\0' '\\n' < "+environ+" | grep -c '^ADORA_AUTH_TOKEN=' || true"); got != "1" {
			t.Fatalf("the daemon's environment has %s ADORA_AUTH_TOKEN lines, want 1", got)
		}
		if got := sh(t, "h1", "runuser -u "+runAsUser+" -- cat "+environ+" >/dev/null 2>&1 && echo readable || echo denied"); got != "denied" {
			t.Fatalf("%s can read the daemon's environment (%s)", runAsUser, got)
		}
	})
	planShowsNoMachineChanges(t, f, bin)

	placed := f.startFlow("runas", placedFlow)
	if placed["camera"] != "h1" || placed["inference"] != "h2" {
		t.Fatalf("placements %v", placed)
	}
	waitNodes(t, 30*time.Second, names...)

	t.Run("nodes run as the daemon's user", func(t *testing.T) {
		video := sh(t, "h1", "getent group video | cut -d: -f3")
		for n, user := range map[string]string{"h1": runAsUser, "h2": bed.User} {
			// The node of placedFlow on n is "sleep ARG"; inside the host
			// it is the only one.
			pid := sh(t, n, "pgrep -xf '/bin/sleep "+nodeOf[n].arg+"'")
			if got := sh(t, n, "ps -o user:32= -p "+pid); got != user {
				t.Errorf("%s: node %s runs as %q, want %s", n, nodeOf[n].node, got, user)
			}
			if got := sh(t, n, "tr '\\0' '\\n' < /proc/"+pid+"/environ | grep -c '^ADORA_AUTH_TOKEN=' || true"); got != "0" {
				t.Errorf("%s: the node's environment carries ADORA_AUTH_TOKEN", n)
			}
			if n != "h1" {
				continue
			}
			groups := strings.Fields(strings.TrimPrefix(sh(t, n, "grep '^Groups:' /proc/"+pid+"/status"), "Groups:"))
			if !slices.Contains(groups, video) {
				t.Errorf("h1: node groups %v lack video (%s), a supplementary group of %s", groups, video, runAsUser)
			}
		}
	})

	t.Run("changed run_as is an in-place reconfigure", func(t *testing.T) {
		setClusterRunAs(t, f, string(base), "root")
		out, code := f.adora(bin, "plan", "-detailed-exitcode", "-no-color", f.file)
		if code != 2 {
			t.Fatalf("plan exit %d; want 2", code)
		}
		mustContain(t, out, "~   machine.h1", "unit changed: daemon is reconfigured and restarted", "0 to install")
		if strings.Contains(out, "machine.h2") || strings.Contains(out, "machine.h3") {
			t.Fatalf("plan changes machines whose run_as did not change:\n%s", out)
		}
		out, code = f.adora(bin, "cluster", "install", f.file)
		if code != 0 {
			t.Fatalf("cluster install exit %d", code)
		}
		if got := sh(t, "h1", "systemctl show -p User --value adora-daemon-h1; stat -c %U /var/lib/adora/h1"); got != "\nroot" && got != "root" {
			t.Fatalf("h1 after run_as: root: User= and home owner %q; want no User= and root", got)
		}
		planShowsNoMachineChanges(t, f, bin)
	})

	t.Run("missing user on an installed machine", func(t *testing.T) {
		setClusterRunAs(t, f, string(base), "adora-e2e-nobody")
		before := sh(t, "h1", h1State)
		out, code := f.adora(bin, "cluster", "install", f.file)
		if code != 1 {
			t.Fatalf("cluster install exit %d; want 1", code)
		}
		mustContain(t, out, "machine h1: user adora-e2e-nobody given by run_as does not exist; create it or set run_as")
		if after := sh(t, "h1", h1State); after != before {
			t.Fatalf("h1 changed although its install was refused:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}
