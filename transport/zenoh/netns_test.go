//go:build netns

package zenoh

// Link-cut tests across two network namespaces joined by a veth pair
// (zbench-a 10.231.0.1/24, zbench-b 10.231.0.2/24). They need root and
// iproute2, and fail rather than skip without them:
//
//	go test -tags netns -run TestNetns ./transport/zenoh/

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func netnsSetup(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netns tests need root (ip netns)")
	}
	bin := filepath.Join(t.TempDir(), "zbench")
	run(t, "go", "build", "-o", bin, "./zbench")
	del := func() {
		exec.Command("ip", "netns", "del", "zbench-a").Run()
		exec.Command("ip", "netns", "del", "zbench-b").Run()
	}
	del()
	t.Cleanup(del)
	run(t, "ip", "netns", "add", "zbench-a")
	run(t, "ip", "netns", "add", "zbench-b")
	run(t, "ip", "link", "add", "zb-a", "type", "veth", "peer", "name", "zb-b")
	run(t, "ip", "link", "set", "zb-a", "netns", "zbench-a")
	run(t, "ip", "link", "set", "zb-b", "netns", "zbench-b")
	run(t, "ip", "-n", "zbench-a", "addr", "add", "10.231.0.1/24", "dev", "zb-a")
	run(t, "ip", "-n", "zbench-b", "addr", "add", "10.231.0.2/24", "dev", "zb-b")
	run(t, "ip", "-n", "zbench-a", "link", "set", "zb-a", "up")
	run(t, "ip", "-n", "zbench-b", "link", "set", "zb-b", "up")
	return bin
}

type flowResult struct {
	Published, Unmatched, Failed, Received, Missing, Reordered, Last uint64
	LinksOpened                                                      uint64 `json:"links_opened"`
}

// flow runs a publisher in zbench-a and a subscriber in zbench-b, cuts the
// veth at cutAt for cutFor, and returns both summaries.
func flow(t *testing.T, bin string, lease, duration, cutAt, cutFor time.Duration) (pub, sub flowResult) {
	t.Helper()
	subCmd := exec.Command("ip", "netns", "exec", "zbench-b", bin, "flow-sub", "-listen", "tcp/10.231.0.2:17100", "-lease", lease.String())
	subOut, _ := subCmd.StdoutPipe()
	subCmd.Stderr = os.Stderr
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer subCmd.Process.Kill()
	sc := bufio.NewScanner(subOut)
	if !sc.Scan() || sc.Text() != "READY" {
		t.Fatalf("subscriber did not start: %q", sc.Text())
	}
	pubCmd := exec.Command("ip", "netns", "exec", "zbench-a", bin, "flow-pub", "-connect", "tcp/10.231.0.2:17100",
		"-lease", lease.String(), "-duration", duration.String(), "-interval", "5ms")
	pubCmd.Stderr = os.Stderr
	var pubOut strings.Builder
	pubCmd.Stdout = &pubOut
	if err := pubCmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cutAt)
	run(t, "ip", "-n", "zbench-a", "link", "set", "zb-a", "down")
	time.Sleep(cutFor)
	run(t, "ip", "-n", "zbench-a", "link", "set", "zb-a", "up")
	if err := pubCmd.Wait(); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // let the tail arrive
	subCmd.Process.Signal(syscall.SIGTERM)
	if !sc.Scan() {
		t.Fatal("no subscriber summary")
	}
	subCmd.Wait()
	if err := json.Unmarshal([]byte(pubOut.String()), &pub); err != nil {
		t.Fatalf("publisher summary %q: %v", pubOut.String(), err)
	}
	if err := json.Unmarshal(sc.Bytes(), &sub); err != nil {
		t.Fatalf("subscriber summary %q: %v", sc.Text(), err)
	}
	t.Logf("publisher %+v", pub)
	t.Logf("subscriber %+v", sub)
	return pub, sub
}

func TestNetnsLinkCut(t *testing.T) {
	bin := netnsSetup(t)
	t.Run("cut shorter than the lease: nothing lost", func(t *testing.T) {
		pub, sub := flow(t, bin, 5*time.Second, 6*time.Second, 2*time.Second, 1500*time.Millisecond)
		if sub.Reordered != 0 || sub.Missing != 0 || sub.Received != pub.Published || sub.Last != pub.Published {
			t.Fatalf("flow did not resume intact: published %d, received %d, missing %d, reordered %d",
				pub.Published, sub.Received, sub.Missing, sub.Reordered)
		}
	})
	t.Run("cut longer than the lease: link re-opened, loss accounted", func(t *testing.T) {
		pub, sub := flow(t, bin, time.Second, 9*time.Second, 2*time.Second, 3*time.Second)
		if sub.Reordered != 0 {
			t.Fatalf("%d samples out of order", sub.Reordered)
		}
		if pub.LinksOpened < 2 {
			t.Fatalf("publisher opened %d links, want a reconnect", pub.LinksOpened)
		}
		if sub.Last != pub.Published {
			t.Fatalf("flow did not resume: last %d of %d", sub.Last, pub.Published)
		}
		// Samples published with no reachable subscriber are counted by
		// the publisher; the rest of the loss is what the dead link held
		// when the lease expired (at most about one lease of samples).
		if sub.Missing < pub.Unmatched || sub.Missing > pub.Unmatched+pub.Failed+300 {
			t.Fatalf("missing %d, publisher counted %d unmatched and %d failed", sub.Missing, pub.Unmatched, pub.Failed)
		}
	})
}
