//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/testfixtures/testbed"
)

// TestQuickStart is the guide's Quick Start on three hosts, through the
// CLI only: cluster up starts the coordinator here and a daemon per host
// (binary pushed to ~/.adora/bin, token in a 0600 file, never on a command
// line), a second up changes nothing, adora start runs a dataflow placed by
// machine id and by labels across the hosts, cluster status shows the
// daemons, cluster down destroys it all.
func TestQuickStart(t *testing.T) {
	f := newFleet(t, 16014)
	bin := adoraBinary(t, "e2e-1")
	names := hostNames()
	coord := []string{"--coordinator-addr", bed.CoordinatorAddr, "--coordinator-port", "16014"}

	out, code := f.adora(bin, "cluster", "up", f.file)
	if code != 0 {
		t.Fatalf("cluster up exit %d", code)
	}
	mustContain(t, out, "Starting coordinator on "+coordHP(16014)+"...",
		"Starting daemon on h1 ("+tgt("h1")+")... OK", "Starting daemon on h3 ("+tgt("h3")+")... OK", "All 3 daemons connected.")
	f.waitDaemons(5*time.Second, "e2e-1", names...)
	pids := map[string]string{}
	for _, n := range names {
		got := sh(t, n, "cat /home/adora/.adora/daemon-"+n+"/daemon.pid; stat -c %a /home/adora/.adora/daemon-"+n+"/daemon.env")
		pid, mode, _ := strings.Cut(got, "\n")
		if mode != "600" {
			t.Fatalf("%s: daemon.env mode %s", n, mode)
		}
		if args := sh(t, n, "tr '\\0' ' ' </proc/"+pid+"/cmdline"); strings.Contains(args, f.token) || !strings.Contains(args, "daemon --machine-id "+n) {
			t.Fatalf("%s daemon command line %q (token must not appear)", n, args)
		}
		pids[n] = pid
	}

	out, code = f.adora(bin, "cluster", "up", f.file)
	if code != 0 {
		t.Fatalf("second cluster up exit %d", code)
	}
	mustContain(t, out, "Coordinator already running at "+coordHP(16014)+".")
	for _, n := range names {
		mustContain(t, out, "Starting daemon on "+n+" ("+tgt(n)+")... OK (already running, pid "+pids[n]+")")
		if c := sh(t, n, "ps -eo args | grep -c '^/home/adora/.adora/bin/adora daemon' || true"); c != "1" {
			t.Fatalf("%s runs %s daemons after a second up, want 1", n, c)
		}
	}

	// A CLI of another version finds the daemons and says they lag behind.
	out, code = f.adora(adoraBinary(t, "e2e-2"), "cluster", "up", f.file)
	if code != 0 {
		t.Fatalf("cluster up with another version: exit %d", code)
	}
	for _, n := range names {
		mustContain(t, out, "Warning: the daemon on "+n+" runs adora e2e-1, this CLI is e2e-2")
	}

	flow := filepath.Join(f.home, "dataflow.yml")
	if err := os.WriteFile(flow, []byte(placedFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = f.adora(bin, append([]string{"start", flow, "--name", "my-app", "--detach"}, coord...)...)
	if code != 0 {
		t.Fatalf("adora start exit %d", code)
	}
	mustContain(t, out, "dataflow `my-app` started", "(machine h1)", "(machine h2)", "(machine h3)")
	waitNodes(t, 20*time.Second, names...)
	out, code = f.adora(bin, append([]string{"cluster", "status", "--json"}, coord...)...)
	if code != 0 {
		t.Fatalf("cluster status exit %d", code)
	}
	var st struct {
		Daemons []struct {
			MachineID string `json:"machine_id"`
			Version   string `json:"version"`
		} `json:"daemons"`
		ActiveDataflows int `json:"active_dataflows"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &st); err != nil {
		t.Fatalf("cluster status --json: %v", err)
	}
	if len(st.Daemons) != 3 || st.ActiveDataflows != 1 {
		t.Fatalf("cluster status shows %d daemons and %d dataflows, want 3 and 1", len(st.Daemons), st.ActiveDataflows)
	}
	out, code = f.adora(bin, append([]string{"cluster", "status"}, coord...)...)
	if code != 0 {
		t.Fatalf("cluster status exit %d", code)
	}
	mustContain(t, out, "h1", "h2", "h3", "Active dataflows: 1")

	out, code = f.adora(bin, "cluster", "down", f.file)
	if code != 0 {
		for _, n := range names {
			t.Logf("%s daemon.log:\n%s", n, sh(t, n, "tail -n 20 /home/adora/.adora/daemon-"+n+"/daemon.log"))
		}
		t.Fatalf("cluster down exit %d", code)
	}
	mustContain(t, out, "Coordinator and daemons destroyed.", "Stopping daemon on h2 ("+tgt("h2")+")... OK")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := testbed.WaitFor(ctx, 200*time.Millisecond, func() error {
		if _, err := f.daemons(); err == nil {
			return fmt.Errorf("the coordinator still answers")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if c := sh(t, n, "ps -eo args | grep -c '^/home/adora/.adora/bin/adora daemon' || true"); c != "0" {
			t.Fatalf("%s still runs %s daemon(s) after down", n, c)
		}
		if p, err := nodePID(n); err != nil || p != "" {
			t.Fatalf("%s still runs its node (%q, %v) after down", n, p, err)
		}
	}
}

// TestClusterUpUnreachableHost: a partitioned host fails alone, named,
// and the command exits 1 while the other daemons connect.
func TestClusterUpUnreachableHost(t *testing.T) {
	f := newFleet(t, 16015)
	f.startCoordinator()
	bin := adoraBinary(t, "e2e-1")
	if err := bed.Partition(t.Context(), "h2"); err != nil {
		t.Fatal(err)
	}
	defer bed.Heal(t.Context(), "h2")
	out, code := f.adora(bin, "cluster", "up", f.file)
	if code != 1 {
		t.Fatalf("cluster up with h2 cut off: exit %d, want 1", code)
	}
	mustContain(t, out, "Starting daemon on h1 ("+tgt("h1")+")... OK", "Starting daemon on h2 ("+tgt("h2")+")... FAILED: connect to h2",
		"Starting daemon on h3 ("+tgt("h3")+")... OK", "2/3 daemons connected.", "Failed on 1 machine(s): h2")
	f.waitDaemons(5*time.Second, "e2e-1", "h1", "h3")
}
