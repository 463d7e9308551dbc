package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDuplicateMachineIDRefused: a second daemon (another identity) that
// claims the machine id of a live daemon exits 1 with the coordinator's
// reason; the first keeps running.
func TestDuplicateMachineIDRefused(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	first := e.daemon("robot", "")
	id := e.daemonID("robot")

	other := &env{t: t, home: t.TempDir(), port: e.port, dir: e.dir}
	out, code := other.adora(30*time.Second, "daemon", "--machine-id", "robot",
		"--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(e.port), "--zenoh-listen", loopbackZenoh,
		"--token-file", filepath.Join(e.home, "token"))
	if code != 1 || !strings.Contains(out, `machine id "robot" is already in use`) {
		t.Fatalf("second daemon: exit %d:\n%s", code, out)
	}
	if !first.running() || e.daemonID("robot") != id {
		t.Fatal("the first daemon lost its registration")
	}
}

// TestDaemonWithoutTokenIsRejected: with authentication on, a daemon
// without the token keeps retrying and never registers; with it, it does.
func TestDaemonWithoutTokenIsRejected(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	stranger := &env{t: t, home: t.TempDir(), port: e.port, dir: e.dir}
	p := stranger.start("tokenless daemon", "daemon", "--machine-id", "stranger",
		"--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(e.port), "--zenoh-listen", loopbackZenoh)
	e.waitFor(10*time.Second, "a 401 in the daemon's log", func() bool {
		return strings.Contains(p.out.String(), "401")
	})
	if e.daemonID("stranger") != "" {
		t.Fatal("a daemon without the token registered")
	}
	if !p.running() {
		t.Fatalf("the daemon gave up; it should retry:\n%s", p.out.String())
	}
	if strings.Contains(p.out.String(), e.token()) {
		t.Fatal("the token appears in the daemon's output")
	}
}
