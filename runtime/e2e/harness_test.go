// Package e2e runs adora's runtime end to end on this machine: the adora
// binary is built once per test run, and every test starts real
// coordinator and daemon processes (loopback, free ports, a private
// ADORA_HOME) and drives them through the control API and the CLI.
//
// ADORA_E2E_BIN=/path/to/adora skips the build and uses that binary.
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/internal/testutil"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

var adoraBin string

// loopbackZenoh keeps the daemons' data-plane listeners on loopback.
const loopbackZenoh = "tcp/127.0.0.1:0"

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if p := os.Getenv("ADORA_E2E_BIN"); p != "" {
		adoraBin = p
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "adora-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	adoraBin = filepath.Join(dir, "adora")
	build := exec.Command("go", "build", "-o", adoraBin, ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build adora: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// proc is an adora process a test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer // the process's output
	done chan struct{}
}

// env is one test's private environment.
type env struct {
	t    *testing.T
	home string
	port int
	dir  string // dataflow files and node scripts
}

// newEnv makes a private environment; the test runs in parallel with the
// other e2e tests (each has its own ports and ADORA_HOME).
func newEnv(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	return &env{t: t, home: t.TempDir(), port: freePort(t), dir: t.TempDir()}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (e *env) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ADORA_") {
			out = append(out, kv)
		}
	}
	return append(out, "ADORA_HOME="+e.home)
}

// start runs adora with args in the background until the test ends.
func (e *env) start(name string, args ...string) *proc {
	e.t.Helper()
	return e.startIn("", name, args...)
}

// startIn is start with a working directory.
func (e *env) startIn(dir, name string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, cmd: exec.Command(adoraBin, args...), out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = e.environ()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			e.t.Logf("---- %s output ----\n%s", p.name, p.out.String())
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits up to d.
func (p *proc) stop(t *testing.T, d time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v of SIGTERM", p.name, d)
	}
}

// adora runs adora with args to completion and returns its output and
// exit code. timeout only bounds a hang (at least two minutes: the machine
// may be loaded).
func (e *env) adora(timeout time.Duration, args ...string) (string, int) {
	e.t.Helper()
	timeout = max(timeout, 2*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, adoraBin, args...)
	cmd.Env = e.environ()
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		e.t.Fatalf("adora %s timed out after %v:\n%s", strings.Join(args, " "), timeout, out)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("adora %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

func (e *env) coordinator(extra ...string) *proc {
	e.t.Helper()
	args := append([]string{"coordinator", "--interface", "127.0.0.1", "--port", strconv.Itoa(e.port)}, extra...)
	p := e.start("coordinator", args...)
	e.waitFor(60*time.Second, "coordinator health", func() bool {
		_, err := e.health()
		return err == nil
	})
	return p
}

// daemon starts a daemon and waits until the coordinator lists it.
func (e *env) daemon(machineID, labels string) *proc {
	e.t.Helper()
	args := []string{"daemon", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(e.port), "--zenoh-listen", loopbackZenoh}
	if machineID != "" {
		args = append(args, "--machine-id", machineID)
	}
	if labels != "" {
		args = append(args, "--labels", labels)
	}
	name := "daemon " + machineID
	p := e.start(name, args...)
	e.waitFor(60*time.Second, name+" registered", func() bool { return e.daemonID(machineID) != "" })
	return p
}

func (e *env) health() (proto.Health, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return client.Health(ctx, client.Options{Addr: "127.0.0.1", Port: e.port})
}

// daemonID returns the id of the connected daemon with machineID ("" when
// none is connected).
func (e *env) daemonID(machineID string) string {
	h, err := e.health()
	if err != nil {
		return ""
	}
	for _, d := range h.Daemons {
		if d.MachineID == machineID {
			return d.ID
		}
	}
	return ""
}

func (e *env) client() *client.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1", Port: e.port, Token: e.token()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// token is the coordinator's bearer token ("" when it has none yet).
func (e *env) token() string {
	tok, err := auth.Read(filepath.Join(e.home, "token"))
	if err != nil {
		return ""
	}
	return tok
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// minWait is the least any waitFor waits: the machine running the tests
// may be heavily loaded, and a wait only bounds a hang (timing properties
// are asserted explicitly, from recorded times).
const minWait = time.Minute

// waitFor polls cond every 50 ms until it holds, for d (at least minWait).
func (e *env) waitFor(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	d = max(d, minWait)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// write creates a file in the test's dataflow directory.
func (e *env) write(name, content string, mode os.FileMode) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// startFlow starts the dataflow in YAML src under name.
func (e *env) startFlow(c *client.Client, name, src string) (proto.StartReply, error) {
	e.t.Helper()
	path := e.write(name+".yml", src, 0o644)
	df, diags := config.ParseDataflow([]byte(src), path)
	if err := diags.Err(); err != nil {
		e.t.Fatalf("dataflow %s: %v", name, err)
	}
	return c.Start(ctx(e.t), proto.Start{Name: name, Descriptor: []byte(src), Dataflow: *df, WorkingDir: e.dir})
}

// nodePID reads the pid the daemon recorded for a node ("" machine id:
// unnamed daemon); 0 when there is none.
func (e *env) nodePID(machineID, dataflowID, node string) int {
	if machineID == "" {
		machineID = "_unnamed"
	}
	b, err := os.ReadFile(filepath.Join(e.home, "daemon", machineID, "pids", dataflowID, node+".pid"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// alive reports whether pid runs (zombies count as dead).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}

// flowStatus returns a dataflow's status as the coordinator reports it.
func flowStatus(t *testing.T, c *client.Client, name string) proto.FlowStatus {
	info, err := c.Info(ctx(t), name)
	if err != nil {
		return ""
	}
	return info.Status
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
