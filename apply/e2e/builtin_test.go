// Package e2e runs adora plan, apply and destroy end to end on the
// built-in one-machine cluster: the real binary, a real coordinator and
// daemon started by apply, and the pipeline example's nodes.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, two directories above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// freePort is a loopback TCP port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// bed is a temporary directory with the adora binary and the pipeline
// nodes built into it, its own HOME and ADORA_HOME, and a free coordinator
// port for the built-in cluster.
type bed struct {
	t    *testing.T
	dir  string
	bin  string
	env  []string
	port int
}

func newBed(t *testing.T) *bed {
	t.Helper()
	dir := t.TempDir()
	b := &bed{t: t, dir: dir, bin: filepath.Join(dir, "bin", "adora"), port: freePort(t)}
	root := repoRoot(t)
	for _, args := range [][]string{
		{"build", "-o", b.bin, "."},
		{"build", "-o", filepath.Join(dir, "bin") + string(filepath.Separator), "./examples/pipeline/..."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "ADORA_HOME", "ADORA_COORDINATOR_PORT", "ADORA_AUTH_TOKEN", "ADORA_LOG", "NO_COLOR":
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "HOME="+filepath.Join(dir, "home"), "ADORA_HOME="+filepath.Join(dir, "adora-home"),
		"ADORA_COORDINATOR_PORT="+strconv.Itoa(b.port))
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.killLeftovers)
	return b
}

// dataflow writes the pipeline as name.yml with the sender's COUNT.
func (b *bed) dataflow(name string, count, tickMillis int) string {
	b.t.Helper()
	bin := filepath.Join(b.dir, "bin")
	body := fmt.Sprintf(`nodes:
  - id: sender
    path: %[1]s/sender
    env:
      COUNT: "%[2]d"
    inputs:
      tick: adora/timer/millis/%[3]d
    outputs: [numbers]
    _unstable_deploy:
      distribute: http
  - id: transformer
    path: %[1]s/transformer
    inputs:
      numbers:
        source: sender/numbers
        queue_policy: backpressure
    outputs: [squares]
  - id: receiver
    path: %[1]s/receiver
    inputs:
      squares:
        source: transformer/squares
        queue_policy: backpressure
`, bin, count, tickMillis)
	path := filepath.Join(b.dir, name+".yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// adora runs the binary in the bed's directory; it returns the exit code
// and the combined output.
func (b *bed) adora(args ...string) (int, string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Dir, cmd.Env = b.dir, b.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		b.t.Fatalf("adora %s did not end within 2 minutes:\n%s", strings.Join(args, " "), out.String())
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		b.t.Fatalf("adora %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String()
}

// processes lists the pids whose command line names a file of the bed
// (its adora binary, its nodes, the daemon binary under its HOME).
func (b *bed) processes() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), b.dir+string(filepath.Separator)) && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(s[i+1:], " Z")
}

// killLeftovers kills whatever the bed started and a failed test left
// running, so nothing outlives the test.
func (b *bed) killLeftovers() {
	for _, pid := range b.processes() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// waitFor polls cond every 200 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBuiltinClusterApplyPlanDestroy deploys on the built-in cluster from
// nothing: apply starts a coordinator and a daemon and the dataflow; the
// next plan has nothing to do; a dataflow that finishes by itself is drift
// that plan starts again; destroy stops everything (the finished dataflow
// included) and leaves no process behind.
func TestBuiltinClusterApplyPlanDestroy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds adora and runs a coordinator and a daemon: not in -short")
	}
	b := newBed(t)
	long := b.dataflow("long", 100000000, 100)
	// A sender alone: it exits after 5 numbers and the dataflow ends.
	short := filepath.Join(b.dir, "short.yml")
	if err := os.WriteFile(short, []byte(fmt.Sprintf(`nodes:
  - id: sender
    path: %s
    env:
      COUNT: "5"
    inputs:
      tick: adora/timer/millis/10
    outputs: [numbers]
`, filepath.Join(b.dir, "bin", "sender"))), 0o644); err != nil {
		t.Fatal(err)
	}

	if code, out := b.adora("apply", "-auto-approve", "-no-color", long); code != 0 || !strings.Contains(out, "Apply complete") {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if code, out := b.adora("plan", "-detailed-exitcode", "-no-color", long); code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply: exit %d; want 0 (no changes)\n%s", code, out)
	}
	// The sender went through the coordinator's artifact store
	// (distribute: http); the state records what was delivered.
	sum := sha256.Sum256(mustRead(t, filepath.Join(b.dir, "bin", "sender")))
	if code, out := b.adora("state", "show", "dataflow.long"); code != 0 || !strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Fatalf("state show dataflow.long: exit %d; want the sender's sha256 among its artifacts\n%s", code, out)
	}

	if code, out := b.adora("apply", "-auto-approve", "-no-color", long, short); code != 0 {
		t.Fatalf("apply of a second dataflow: exit %d\n%s", code, out)
	}
	var list string
	if !waitFor(45*time.Second, func() bool {
		_, list = b.adora("list")
		return strings.Contains(list, "long") && !strings.Contains(list, "short")
	}) {
		t.Fatalf("the short pipeline did not finish by itself:\n%s", list)
	}
	code, out := b.adora("plan", "-detailed-exitcode", "-no-color", long, short)
	if code != 2 || !strings.Contains(out, "dataflow.short: running recorded true, observed false") ||
		!strings.Contains(out, "dataflow is not running (drift): start it again") {
		t.Fatalf("plan after the short dataflow finished: exit %d; want 2 with drift and a start\n%s", code, out)
	}

	code, out = b.adora("destroy", "-auto-approve", "-no-color")
	if code != 0 || !strings.Contains(out, "2 stopped") || !strings.Contains(out, "Stopped the coordinator") {
		t.Fatalf("destroy: exit %d; want 0 with both dataflows stopped and the coordinator stopped\n%s", code, out)
	}
	if !waitFor(15*time.Second, func() bool { return len(b.processes()) == 0 }) {
		t.Fatalf("processes left after destroy: %v", b.processes())
	}
	if code, out := b.adora("plan", "-detailed-exitcode", "-refresh=false", "-no-color", long); code != 2 || !strings.Contains(out, "machine.local will be installed") {
		t.Fatalf("plan after destroy: exit %d; want a fresh install\n%s", code, out)
	}
}

// TestCoordinatorStateApplyPlanDestroy keeps the state in a running
// coordinator (-state coordinator:///WORKSPACE): apply records into it,
// adora state reads it, the next plan has nothing to do, another
// workspace is another state, and destroy empties it and leaves the
// coordinator (which holds the state) running.
func TestCoordinatorStateApplyPlanDestroy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds adora and runs a coordinator and a daemon: not in -short")
	}
	b := newBed(t)
	b.dataflow("long", 100000000, 100)
	cluster := filepath.Join(b.dir, "cluster.yml")
	if err := os.WriteFile(cluster, []byte(fmt.Sprintf(`coordinator:
  addr: 127.0.0.1
  port: %d
machines:
  - id: here
    local: true
dataflows:
  - name: long
    path: long.yml
`, b.port)), 0o644); err != nil {
		t.Fatal(err)
	}
	coord := exec.Command(b.bin, "coordinator", "--interface", "127.0.0.1", "--port", strconv.Itoa(b.port))
	coord.Dir, coord.Env = b.dir, b.env
	var coordOut bytes.Buffer
	coord.Stdout, coord.Stderr = &coordOut, &coordOut
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		coord.Process.Signal(syscall.SIGTERM)
		coord.Wait()
	})
	if !waitFor(30*time.Second, func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)))
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the coordinator did not listen:\n%s", coordOut.String())
	}
	const ws = "coordinator:///team"

	if code, out := b.adora("apply", "-auto-approve", "-no-color", "-state", ws); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "adora.state")); err == nil {
		t.Fatal("apply with -state coordinator:// wrote a local state file")
	}
	if code, out := b.adora("state", "list", "-state", ws); code != 0 || !strings.Contains(out, "machine.here") || !strings.Contains(out, "dataflow.long.node.sender") {
		t.Fatalf("state list from the coordinator: exit %d\n%s", code, out)
	}
	if code, out := b.adora("plan", "-detailed-exitcode", "-no-color", "-state", ws); code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("plan against the coordinator state: exit %d; want 0\n%s", code, out)
	}
	if code, out := b.adora("plan", "-detailed-exitcode", "-no-color", "-state", "coordinator:///other"); code != 2 || !strings.Contains(out, "machine.here will be installed") {
		t.Fatalf("plan against an empty workspace: exit %d; want 2 and a first deployment\n%s", code, out)
	}
	if code, out := b.adora("destroy", "-auto-approve", "-no-color", "-state", ws); code != 0 || !strings.Contains(out, "1 stopped") {
		t.Fatalf("destroy: exit %d\n%s", code, out)
	}
	if code, out := b.adora("state", "list", "-state", ws); code != 0 || strings.Contains(out, "machine.here") {
		t.Fatalf("state list after destroy: exit %d; want nothing recorded\n%s", code, out)
	}
	if !waitFor(15*time.Second, func() bool { return len(b.processes()) == 1 }) {
		t.Fatalf("processes left after destroy besides the coordinator: %v", b.processes())
	}
}
