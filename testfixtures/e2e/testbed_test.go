//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/testfixtures/testbed"
)

// TestTestbedSelf boots a second, one-host bed next to the main one
// (other prefix, other /16, other directories) and checks the fault
// helpers and that "down" removes everything, twice.
func TestTestbedSelf(t *testing.T) {
	dir, hostsDir := "/run/adora-testbed-selftest", "/var/lib/adora-testbed-selftest"
	t.Setenv("ADORA_TESTBED_PREFIX", "adtx")
	t.Setenv("ADORA_TESTBED_NET", "10.78")
	t.Setenv("ADORA_TESTBED_DIR", dir)
	t.Setenv("ADORA_TESTBED_HOSTS", hostsDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Cleanup(func() { exec.Command(testbed.Script(), "down").Run() })

	b, err := testbed.Up(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := b.Host("h1")
	if h.Addr != "10.78.1.2" || h.Netns != "adtx-h1" || !b.Running("h1") {
		t.Fatalf("self-test host %+v (running %v)", h, b.Running("h1"))
	}
	if out, err := b.Exec(ctx, "h1", "systemctl is-system-running; hostname; sudo -n -u adora sudo -n true && echo sudo-ok"); err != nil ||
		!strings.Contains(out, "h1") || !strings.Contains(out, "sudo-ok") {
		t.Fatalf("h1: %q, %v", out, err)
	}
	if err := b.Stop(ctx, "h1"); err != nil || b.Running("h1") {
		t.Fatalf("stop: %v, running %v", err, b.Running("h1"))
	}
	if err := b.Start(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if err := b.PowerCut(ctx, "h1"); err != nil || b.Running("h1") {
		t.Fatalf("power cut: %v", err)
	}
	if err := b.Start(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Partition(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 8*time.Second)
	if _, err := b.Exec(pctx, "h1", "true"); err == nil {
		t.Fatal("a partitioned host answered")
	}
	pcancel()
	if err := b.Heal(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "h1", "true"); err != nil {
		t.Fatalf("healed host: %v", err)
	}

	for i := 0; i < 2; i++ {
		if err := testbed.Down(ctx); err != nil {
			t.Fatalf("down #%d: %v", i+1, err)
		}
	}
	leftovers := map[string]string{
		"netns": "ip netns list | grep -c adtx- || true",
		"links": "ip -o link show | grep -c adtx- || true",
		"route": "ip route show | grep -c '10.78' || true",
	}
	for what, cmd := range leftovers {
		out, _ := exec.Command("sh", "-c", cmd).Output()
		if strings.TrimSpace(string(out)) != "0" {
			t.Errorf("down left %s behind: %s", what, out)
		}
	}
	for _, d := range []string{dir, hostsDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("down left %s behind (%v)", d, err)
		}
	}
	if h.PID > 0 {
		if _, err := os.Stat("/proc/" + strconv.Itoa(h.PID)); err == nil {
			t.Errorf("nspawn pid %d still exists", h.PID)
		}
	}
	// The main bed is untouched.
	if _, err := bed.Exec(ctx, "h1", "true"); err != nil {
		t.Fatalf("the main bed broke: %v", err)
	}
}
