package command

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

func TestParseCoordinatorState(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want coordinatorState
		err  string
	}{
		{in: "coordinator:///default", want: coordinatorState{Workspace: "default"}},
		{in: "coordinator://10.0.0.1/team", want: coordinatorState{Host: "10.0.0.1", Workspace: "team"}},
		{in: "coordinator://ci.example:7000/prod-1", want: coordinatorState{Host: "ci.example", Port: 7000, Workspace: "prod-1"}},
		{in: "coordinator://[::1]:6013/x", want: coordinatorState{Host: "::1", Port: 6013, Workspace: "x"}},
		{in: "coordinator://10.0.0.1", err: "no workspace"},
		{in: "coordinator://10.0.0.1/", err: "no workspace"},
		{in: "coordinator://h/a/b", err: "workspace \"a/b\""},
		{in: "coordinator://h:99999/ws", err: "port \"99999\""},
		{in: "coordinator://h:x/ws", err: "port \"x\""},
	} {
		got, err := parseCoordinatorState(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v; want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if _, err := openStateBackend("s3://bucket/key", "", nil); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Errorf("s3:// accepted: %v", err)
	}
}

// coordProject is deployProject with the coordinator at coordPort on
// loopback and its one machine reached over SSH at sshPort on loopback.
func coordProject(t *testing.T, coordPort, sshPort int) string {
	t.Helper()
	dir := deployProject(t)
	cluster := fmt.Sprintf(`coordinator:
  addr: 127.0.0.1
  port: %d
machines:
  - id: bot-01
    host: 127.0.0.1
    port: %d
    identity_file: %s
    labels:
      gpu: "true"
dataflows:
  - name: my-app
    path: app.yml
`, coordPort, sshPort, writeTestKey(t, dir))
	if err := os.WriteFile(filepath.Join(dir, "cluster.yml"), []byte(cluster), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADORA_KNOWN_HOSTS", filepath.Join(dir, "known_hosts"))
	return dir
}

// writeTestKey writes an unencrypted ed25519 private key into dir.
func writeTestKey(t *testing.T, dir string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// stallingSSH accepts connections and never answers, so an SSH dial to it
// waits; accepted reports each connection. Close ends it and them.
type stallingSSH struct {
	ln       net.Listener
	accepted chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newStallingSSH(t *testing.T) *stallingSSH {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallingSSH{ln: ln, accepted: make(chan struct{}, 16)}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			select {
			case s.accepted <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(s.Close)
	return s
}

func (s *stallingSSH) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *stallingSSH) Close() {
	s.ln.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// TestConcurrentAppliesOnCoordinatorState runs two applies against one
// state kept by a real coordinator on loopback: while the first holds the
// lock (stalled refreshing a machine), the second fails naming the holder.
func TestConcurrentAppliesOnCoordinatorState(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{Token: "test-token"})
	ssh := newStallingSSH(t)
	dir := coordProject(t, srv.Endpoint.Port, ssh.port())
	stateURL := "coordinator:///team"
	args := []string{"-auto-approve", "-no-color", "-binary", filepath.Join(dir, "adora-bin"), "-state", stateURL, filepath.Join(dir, "cluster.yml")}

	type result struct {
		code      int
		out, errs string
	}
	first := make(chan result, 1)
	go func() {
		code, out, errs := runCmd(t, &ApplyCommand{}, args...)
		first <- result{code, out, errs}
	}()
	select {
	case <-ssh.accepted: // the first apply holds the lock and is refreshing
	case r := <-first:
		t.Fatalf("the first apply ended before refreshing: exit %d\n%s\n%s", r.code, r.out, r.errs)
	case <-time.After(30 * time.Second):
		t.Fatal("the first apply never reached the machine")
	}

	code, _, errs := runCmd(t, &ApplyCommand{}, args...)
	who := state.NewLockInfo("apply", "", time.Now()).Who
	if code != 1 || !strings.Contains(errs, "state is locked by "+who) || !strings.Contains(errs, `for "apply"`) || !strings.Contains(errs, "adora force-unlock ") {
		t.Fatalf("second apply: exit %d, stderr %q; want the lock held by %s for \"apply\"", code, errs, who)
	}

	ssh.Close() // the first apply's refresh and install fail; it releases the lock
	select {
	case r := <-first:
		if r.code != 1 {
			t.Fatalf("first apply against an unreachable machine: exit %d; want 1\n%s", r.code, r.out)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the first apply did not end")
	}
	b := client.NewStateBackend(client.Options{Addr: "127.0.0.1", Port: srv.Endpoint.Port, Token: "test-token"}, "team")
	info := state.NewLockInfo("check", "", time.Now())
	if err := b.Lock(context.Background(), info); err != nil {
		t.Fatalf("the lock was not released by the first apply: %v", err)
	}
	if err := b.Unlock(context.Background(), info.ID); err != nil {
		t.Fatal(err)
	}
}

// TestStateCommandsOnCoordinatorState reads, plans against and unlocks a
// state kept by a real coordinator.
func TestStateCommandsOnCoordinatorState(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{Token: "test-token"})
	dir := deployProject(t)
	url := fmt.Sprintf("coordinator://127.0.0.1:%d/ci", srv.Endpoint.Port)
	code, out, errs := runCmd(t, &StateListCommand{}, "-state", url)
	if code != 0 || !strings.Contains(out, "No state at "+url) {
		t.Fatalf("state list of an empty workspace: exit %d %q %q", code, out, errs)
	}
	st := recordAll(t, dir)
	b := client.NewStateBackend(client.Options{Addr: "127.0.0.1", Port: srv.Endpoint.Port, Token: "test-token"}, "ci")
	if err := b.Write(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd(t, &StateListCommand{}, "-state", url)
	if code != 0 || !strings.Contains(out, "machine.bot-01") || !strings.Contains(out, "dataflow.my-app") {
		t.Fatalf("state list: exit %d %q %q", code, out, errs)
	}
	args := planArgs(dir, "-detailed-exitcode")
	for i, a := range args {
		if a == filepath.Join(dir, "adora.state") {
			args[i] = url
		}
	}
	code, out, errs = runCmd(t, &PlanCommand{}, args...)
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("plan against the coordinator state that records everything: exit %d\n%s\n%s", code, out, errs)
	}

	info := state.NewLockInfo("apply", "", time.Now())
	if err := b.Lock(context.Background(), info); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, &PlanCommand{}, args...)
	if code != 1 || !strings.Contains(errs, info.ID) {
		t.Fatalf("plan while locked: exit %d %q", code, errs)
	}
	code, _, errs = runCmd(t, &ForceUnlockCommand{}, "-force", "-state", url, "not-the-id")
	if code != 1 || !strings.Contains(errs, "does not match") {
		t.Fatalf("force-unlock with a wrong ID: exit %d %q", code, errs)
	}
	code, out, errs = runCmd(t, &ForceUnlockCommand{}, "-force", "-state", url, info.ID)
	if code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("force-unlock: exit %d %q %q", code, out, errs)
	}
	code, _, errs = runCmd(t, &ForceUnlockCommand{}, "-force", "-state", url, info.ID)
	if code != 1 || !strings.Contains(errs, "not locked") {
		t.Fatalf("force-unlock of an unlocked state: exit %d %q", code, errs)
	}
}

func TestCoordinatorStateUnreachableSaysWhich(t *testing.T) {
	dir := deployProject(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there any more
	url := fmt.Sprintf("coordinator://127.0.0.1:%d/team", port)
	args := planArgs(dir)
	for i, a := range args {
		if a == filepath.Join(dir, "adora.state") {
			args[i] = url
		}
	}
	code, _, errs := runCmd(t, &PlanCommand{}, args...)
	if code != 1 || !strings.Contains(errs, "-state "+url+": could not connect to coordinator") {
		t.Fatalf("plan with an unreachable state coordinator: exit %d %q", code, errs)
	}
}

// TestPlanWithVarSetsHCLVariables: -var reaches the HCL dataflow, the plan
// holds the evaluated result, and a saved plan refuses -var again.
func TestPlanWithVarSetsHCLVariables(t *testing.T) {
	dir := deployProject(t)
	hcl := filepath.Join(dir, "cam.hcl")
	if err := os.WriteFile(hcl, []byte(`variable "where" {
  default = "bot-01"
}
node "camera" {
  path    = "./camera"
  outputs = ["image"]
  _unstable_deploy {
    machine = var.where
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, &PlanCommand{}, planArgs(dir, hcl)...)
	if code != 0 || !strings.Contains(out, "+ node camera: bot-01 (machine)") {
		t.Fatalf("plan with the default: exit %d\n%s\n%s", code, out, errs)
	}
	saved := filepath.Join(dir, "var.plan")
	code, out, errs = runCmd(t, &PlanCommand{}, planArgs(dir, hcl, "-var", "where=gpu-server", "-out", saved)...)
	if code != 0 || !strings.Contains(out, "+ node camera: gpu-server (machine)") {
		t.Fatalf("plan -var where=gpu-server: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runCmd(t, &PlanCommand{}, planArgs(dir, hcl, "-var", "wehre=gpu-server")...)
	if code != 1 || !strings.Contains(errs, `variable "wehre"`) {
		t.Fatalf("plan with an undeclared -var: exit %d %q", code, errs)
	}
	code, _, errs = runCmd(t, &ApplyCommand{}, "-var", "where=bot-01", saved)
	if code != 1 || !strings.Contains(errs, "-var cannot be used with a saved plan") {
		t.Fatalf("apply PLANFILE -var: exit %d %q", code, errs)
	}
}

// TestLooksLikeClusterByTopLevelBlocks: an HCL dataflow whose node sets
// machine = ... inside _unstable_deploy is a dataflow, not a cluster.
func TestLooksLikeClusterByTopLevelBlocks(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		body string
		want bool
	}{
		"df.hcl":      {"node \"cam\" {\n  path = \"./cam\"\n  _unstable_deploy {\n    machine = \"bot-01\"\n  }\n}\n", false},
		"cluster.hcl": {"coordinator {\n  addr = \"10.0.0.1\"\n}\nmachine \"bot-01\" {\n  host = \"10.0.0.2\"\n}\n", true},
		"df.yml":      {"nodes:\n  - id: cam\n    path: ./cam\n    _unstable_deploy:\n      machine: bot-01\n", false},
		"c.yml":       {"machines:\n  - id: bot-01\n    host: 10.0.0.2\n", true},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := looksLikeCluster(path)
		if err != nil || got != tc.want {
			t.Errorf("looksLikeCluster(%s) = %v, %v; want %v", name, got, err, tc.want)
		}
	}
}

// TestStatePushMovesAFileStateIntoTheCoordinator: state push stores a
// local state in a coordinator workspace; it refuses an older serial or
// another lineage without -force.
func TestStatePushMovesAFileStateIntoTheCoordinator(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{Token: "test-token"})
	dir := deployProject(t)
	st := recordAll(t, dir)
	file := filepath.Join(dir, "adora.state")
	url := fmt.Sprintf("coordinator://127.0.0.1:%d/team", srv.Endpoint.Port)

	code, out, errs := runCmd(t, &StatePushCommand{}, "-state", url, file)
	if code != 0 || !strings.Contains(out, "Pushed") {
		t.Fatalf("state push: exit %d %q %q", code, out, errs)
	}
	code, out, errs = runCmd(t, &StateListCommand{}, "-state", url)
	if code != 0 || !strings.Contains(out, "machine.gpu-server") {
		t.Fatalf("state list after push: exit %d %q %q", code, out, errs)
	}
	b := client.NewStateBackend(client.Options{Addr: "127.0.0.1", Port: srv.Endpoint.Port, Token: "test-token"}, "team")
	got, err := b.Read(context.Background())
	if err != nil || got == nil || got.Lineage != st.Lineage {
		t.Fatalf("stored state = %+v, %v; want lineage %s", got, err, st.Lineage)
	}

	// The coordinator's copy moves on (serial 2); the file is now older.
	if err := b.Write(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, &StatePushCommand{}, "-state", url, file)
	if code != 1 || !strings.Contains(errs, "is newer (serial 2)") {
		t.Fatalf("push of an older state: exit %d %q", code, errs)
	}
	other := state.New("test")
	data, err := statefile.Encode(other)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other.state")
	if err := os.WriteFile(otherFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, &StatePushCommand{}, "-state", url, otherFile)
	if code != 1 || !strings.Contains(errs, "holds another deployment") {
		t.Fatalf("push of another lineage: exit %d %q", code, errs)
	}
	code, _, errs = runCmd(t, &StatePushCommand{}, "-force", "-state", url, file)
	if code != 0 {
		t.Fatalf("push -force of the older state: exit %d %q", code, errs)
	}
	if got, _ := b.Read(context.Background()); got == nil || got.Serial != 3 {
		t.Fatalf("after push -force the stored serial = %+v; want 3", got)
	}
}
