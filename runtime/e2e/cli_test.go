package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpStartAttachDown is the local user path: adora up, adora start
// --attach of a Go pipeline (logs streamed until it ends), adora list,
// adora down.
func TestUpStartAttachDown(t *testing.T) {
	e := newEnv(t)
	dir := goNodes(t)
	port := strconv.Itoa(e.port)
	t.Cleanup(func() { killUp(e) })
	if out, code := e.adora(30*time.Second, "up", "--port", port); code != 0 {
		t.Fatalf("up: exit %d:\n%s", code, out)
	}
	e.write("pipeline.yml", `
nodes:
  - id: sender
    path: `+filepath.Join(dir, "sender")+`
    env:
      COUNT: "15"
    inputs:
      tick: adora/timer/millis/10
    outputs:
      - count
  - id: receiver
    path: `+filepath.Join(dir, "receiver")+`
    inputs:
      count:
        source: sender/count
        queue_policy: backpressure
`, 0o644)
	out, code := e.adora(60*time.Second, "start", "pipeline.yml", "--name", "pipe", "--attach", "--coordinator-port", port)
	if code != 0 || !strings.Contains(out, "received 15") || !strings.Contains(out, "sent 15") {
		t.Fatalf("start --attach: exit %d:\n%s", code, out)
	}
	out, code = e.adora(30*time.Second, "list", "--coordinator-port", port)
	if code != 0 || strings.Contains(out, "pipe ") && strings.Contains(out, "running") {
		t.Fatalf("list after the dataflow ended: exit %d:\n%s", code, out)
	}
	if out, code := e.adora(60*time.Second, "down", "--port", port); code != 0 {
		t.Fatalf("down: exit %d:\n%s", code, out)
	}
}

// killUp kills what adora up started, if it still runs.
func killUp(e *env) {
	for _, name := range []string{"daemon", "coordinator"} {
		if b, err := os.ReadFile(filepath.Join(e.home, "up", name+".pid")); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 1 && alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
