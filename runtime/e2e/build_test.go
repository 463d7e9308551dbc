package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// copyBuildNode copies the testdata/buildnode module (a Go node with no
// binary) into the test's dataflow directory and returns its path.
func copyBuildNode(t *testing.T, e *env) string {
	t.Helper()
	dst := filepath.Join(e.dir, "buildnode")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "main.go"} {
		b, err := os.ReadFile(filepath.Join("testdata", "buildnode", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// buildEnv keeps the node's go build offline and independent of any
// workspace the test runs in; it also shows that node env reaches builds.
const buildEnv = `
    env:
      GOWORK: "off"
      GOTOOLCHAIN: local
      BUILD_CHECK: from-node-env`

// TestRunBuildsNodes: adora run runs a node's build: lines (a go build of
// a module next to the dataflow) before starting it; --no-build skips
// them; a failing line stops adora run before anything starts.
func TestRunBuildsNodes(t *testing.T) {
	e := newEnv(t)
	mod := copyBuildNode(t, e)
	e.write("run.yml", `
env:
  GREETING: hello-from-run
nodes:
  - id: gonode
    path: buildnode/node
    build: |
      test "$BUILD_CHECK" = from-node-env
      cd buildnode && go build -o node .`+buildEnv+`
`, 0o644)
	out, code := e.adora(5*time.Minute, "run", "run.yml")
	if code != 0 || !strings.Contains(out, "gonode | built node says hello-from-run") ||
		!strings.Contains(out, "build line 2: cd buildnode && go build -o node .") {
		t.Fatalf("run: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(mod, "node")); err != nil {
		t.Fatalf("the build wrote no binary: %v", err)
	}

	// --no-build runs what is there; without a binary it cannot start.
	os.Remove(filepath.Join(mod, "node"))
	out, code = e.adora(2*time.Minute, "run", "--no-build", "run.yml")
	if code != 1 || strings.Contains(out, "build line") || !strings.Contains(out, "not found") {
		t.Fatalf("run --no-build without a binary: exit %d:\n%s", code, out)
	}

	e.write("broken.yml", `
nodes:
  - id: first
    path: /bin/sh
    args: -c "echo first-node-ran"
  - id: broken
    path: buildnode/node
    build: |
      echo compiling
      go build -o node ./no-such-package`+buildEnv+`
`, 0o644)
	out, code = e.adora(5*time.Minute, "run", "broken.yml")
	if code != 1 || !strings.Contains(out, `build of node broken failed: line 2 "go build -o node ./no-such-package": exit status 1`) ||
		strings.Contains(out, "first-node-ran") {
		t.Fatalf("run with a broken build: exit %d:\n%s", code, out)
	}
	out, code = e.adora(5*time.Minute, "build", "broken.yml")
	if code != 1 || !strings.Contains(out, "adora build: build of node broken failed: line 2") {
		t.Fatalf("build of a broken dataflow: exit %d:\n%s", code, out)
	}
}

// TestStartBuildsNodesOnDaemon: with adora up + adora start, the daemon
// builds a distribute: local node in the node's working directory before
// spawning it, the build's output reaches adora logs, and a failing build
// makes adora start exit non-zero with the failing line.
func TestStartBuildsNodesOnDaemon(t *testing.T) {
	e := newEnv(t)
	mod := copyBuildNode(t, e)
	port := strconv.Itoa(e.port)
	t.Cleanup(func() { killUp(e) })
	if out, code := e.adora(60*time.Second, "up", "--port", port); code != 0 {
		t.Fatalf("up: exit %d:\n%s", code, out)
	}
	e.write("start.yml", `
env:
  GREETING: hello-from-daemon
nodes:
  - id: gonode
    path: ./node
    _unstable_deploy:
      working_dir: buildnode
    build: |
      test "$BUILD_CHECK" = from-node-env
      go build -o node .`+buildEnv+`
`, 0o644)
	out, code := e.adora(5*time.Minute, "start", "start.yml", "--name", "built", "--attach", "--coordinator-port", port)
	if code != 0 || !strings.Contains(out, "built node says hello-from-daemon") {
		t.Fatalf("start --attach: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(mod, "node")); err != nil {
		t.Fatalf("the daemon's build wrote no binary in the node's working directory: %v", err)
	}
	out, code = e.adora(60*time.Second, "logs", "built", "gonode", "--coordinator-port", port)
	if code != 0 || !strings.Contains(out, "build line 2: go build -o node .") || !strings.Contains(out, "built node says hello-from-daemon") {
		t.Fatalf("logs: exit %d:\n%s", code, out)
	}

	e.write("broken.yml", `
nodes:
  - id: broken
    path: ./node
    _unstable_deploy:
      working_dir: buildnode
    build: |
      echo compiling
      go build -o node ./no-such-package`+buildEnv+`
`, 0o644)
	out, code = e.adora(5*time.Minute, "start", "broken.yml", "--name", "broken", "--coordinator-port", port)
	if code == 0 || !strings.Contains(out, `build of node broken failed: line 2 "go build -o node ./no-such-package": exit status 1`) {
		t.Fatalf("start with a broken build: exit %d:\n%s", code, out)
	}
	if out, code := e.adora(60*time.Second, "down", "--port", port); code != 0 {
		t.Fatalf("down: exit %d:\n%s", code, out)
	}
}

// TestRecoveryDoesNotRebuild: auto-recovery after a daemon restart
// re-spawns a built node from what its first build produced.
func TestRecoveryDoesNotRebuild(t *testing.T) {
	e := newEnv(t)
	e.coordinator("--store", "memory")
	d := e.daemon("robot", "")
	c := e.client()
	rep, err := e.startFlow(c, "built-once", `
nodes:
  - id: worker
    _unstable_deploy:
      machine: robot
    path: ./worker.sh
    build: |
      echo build >> builds.txt
      printf '#!/bin/sh\nexec sleep 300\n' > worker.sh
      chmod +x worker.sh
`)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	e.waitFor(time.Minute, "first run", func() bool { pid = e.nodePID("robot", rep.DataflowID, "worker"); return alive(pid) })
	d.kill()
	e.waitFor(time.Minute, "node to die with its daemon", func() bool { return !alive(pid) })
	e.daemon("robot", "")
	e.waitFor(2*time.Minute, "auto-recovery to re-spawn the node", func() bool {
		p := e.nodePID("robot", rep.DataflowID, "worker")
		return p != pid && alive(p)
	})
	if b, err := readFile(filepath.Join(e.dir, "builds.txt")); err != nil || b != "build\n" {
		t.Fatalf("builds.txt = %q, %v: the recovery rebuilt the node", b, err)
	}
	if _, err := c.Stop(ctx(t), rep.DataflowID, time.Second, true); err != nil {
		t.Fatal(err)
	}
}
