package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
)

func localMachine(t *testing.T) *Machine {
	t.Helper()
	m, err := NewDialer(nil).Dial(context.Background(), Target{ID: "local", Local: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestLocalInstallFile(t *testing.T) {
	ctx := context.Background()
	m := localMachine(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "it's a file")

	changed, err := m.InstallFile(ctx, BytesFile([]byte("one\n"), 0o640), dst)
	if err != nil || !changed {
		t.Fatalf("first install: changed=%v err=%v", changed, err)
	}
	b, _ := os.ReadFile(dst)
	st, _ := os.Stat(dst)
	if string(b) != "one\n" || st.Mode().Perm() != 0o640 {
		t.Fatalf("installed %q mode %v", b, st.Mode().Perm())
	}
	changed, err = m.InstallFile(ctx, BytesFile([]byte("one\n"), 0o640), dst)
	if err != nil || changed {
		t.Fatalf("same content: changed=%v err=%v; want no change", changed, err)
	}
	changed, err = m.InstallFile(ctx, BytesFile([]byte("two\n"), 0o640), dst)
	if err != nil || !changed {
		t.Fatalf("new content: changed=%v err=%v", changed, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "two\n" {
		t.Fatalf("content %q after update", b)
	}
	assertNoTemp(t, dir)
}

func TestLocalInstallFileRefusesChecksumMismatch(t *testing.T) {
	ctx := context.Background()
	m := localMachine(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "adora")
	if err := os.WriteFile(dst, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := BytesFile([]byte("new"), 0o755)
	f.SHA256 = strings.Repeat("1", 64) // what the CLI expects, not what arrives
	_, err := m.InstallFile(ctx, f, dst)
	var mm *ChecksumMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("got %v, want ChecksumMismatchError", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Fatalf("destination replaced despite the mismatch: %q", b)
	}
	assertNoTemp(t, dir)
}

func TestLocalRunExitError(t *testing.T) {
	m := localMachine(t)
	_, err := m.Run(context.Background(), "echo oops >&2; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 3 || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("got %v, want exit status 3 with stderr", err)
	}
}

func TestPushArtifactLocal(t *testing.T) {
	m := localMachine(t)
	dir := filepath.Join(t.TempDir(), "work", "flow")
	p, err := PushArtifact(context.Background(), m, BytesFile([]byte("#!/bin/sh\n"), 0o755), dir, "camera")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o755 || p != filepath.Join(dir, "camera") {
		t.Fatalf("artifact at %s: %v %v", p, st, err)
	}
	if _, err := PushArtifact(context.Background(), m, BytesFile(nil, 0o755), dir, "../escape"); err == nil {
		t.Fatal("accepted a path-traversal artifact name")
	}
	if _, err := PushArtifact(context.Background(), m, BytesFile(nil, 0o755), "relative", "x"); err == nil {
		t.Fatal("accepted a relative directory")
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".adora-tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

// TestLocalAdhocDaemonLifecycle runs the ad hoc start/stop scripts for
// real on this machine with a stand-in daemon: a start writes the pid file
// and the 0600 environment file, a second start finds the running daemon,
// stop ends it, a second stop finds nothing.
func TestLocalAdhocDaemonLifecycle(t *testing.T) {
	ctx := context.Background()
	// A home and a binary path that need quoting in every script.
	home := filepath.Join(t.TempDir(), "it's a $HOME")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	binDir := filepath.Join(t.TempDir(), "bin dir;x")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(binDir, "adora")
	script := "#!/bin/sh\ntrap 'exit 0' TERM\necho \"home=$ADORA_HOME\"\necho \"token=$ADORA_AUTH_TOKEN args=$*\"\nwhile :; do sleep 0.1; done\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := localMachine(t)
	spec := DaemonSpec{MachineID: "local-1", CoordinatorAddr: "127.0.0.1", CoordinatorPort: 6013,
		Labels: map[string]string{"role": "dev"}, Token: "s3cret", Binary: fake,
		// Ignored: the ad hoc daemon runs as the session user, and an SSH
		// user such as this one (Spec's default) must not stop it.
		RunAs: "user@domain"}

	res, err := StartAdhocDaemon(ctx, m, spec, File{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != AdhocStarted || res.PID == 0 || res.Dir != filepath.Join(home, ".adora", "daemon-local-1") {
		t.Fatalf("first start: %+v", res)
	}
	t.Cleanup(func() { StopAdhocDaemon(context.Background(), m, "local-1") })
	st, err := os.Stat(filepath.Join(res.Dir, "daemon.env"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("daemon.env: %v %v", st, err)
	}
	// Right after the start the process may still be in exec (its
	// cmdline the shell's, or empty for an instant): wait for the daemon's.
	var cmdline []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", res.PID)); bytes.Contains(cmdline, []byte("--machine-id")) {
			break
		}
	}
	if strings.Contains(string(cmdline), "s3cret") || !strings.Contains(string(cmdline), "--labels\x00role=dev") {
		t.Fatalf("daemon command line %q", cmdline)
	}
	again, err := StartAdhocDaemon(ctx, m, spec, File{})
	if err != nil || again.Status != AdhocAlreadyRunning || again.PID != res.PID {
		t.Fatalf("second start: %+v, %v; want the running pid %d", again, err, res.PID)
	}
	o, err := ObserveMachine(ctx, m, "local-1")
	if err != nil || o.AdhocPID != res.PID {
		t.Fatalf("observe: %+v, %v", o, err)
	}
	stopped, err := StopAdhocDaemon(ctx, m, "local-1")
	if err != nil || !stopped {
		t.Fatalf("stop: %v, %v", stopped, err)
	}
	if err := syscall.Kill(res.PID, 0); err == nil {
		if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", res.PID)); !strings.Contains(string(stat), ") Z") {
			t.Fatalf("daemon %d still runs after stop", res.PID)
		}
	}
	log, _ := os.ReadFile(filepath.Join(res.Dir, "daemon.log"))
	if !strings.Contains(string(log), "home="+res.Dir+"\n") {
		t.Fatalf("ADORA_HOME did not survive the environment file: %q", log)
	}
	if !strings.Contains(string(log), "token=s3cret args=daemon --machine-id local-1") {
		t.Fatalf("the daemon did not get its token from the environment file: %q", log)
	}
	if stopped, err := StopAdhocDaemon(ctx, m, "local-1"); err != nil || stopped {
		t.Fatalf("second stop: %v, %v", stopped, err)
	}
}

func TestExitErrorHintsPasswordlessSudo(t *testing.T) {
	m := localMachine(t)
	_, err := m.Run(context.Background(), "echo 'sudo: a password is required' >&2; exit 1")
	if err == nil || !strings.Contains(err.Error(), "passwordless sudo") {
		t.Fatalf("got %v, want a hint about passwordless sudo", err)
	}
}

func TestFleetObserveLocalMachine(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	f := &Fleet{Cluster: &config.Cluster{Coordinator: config.Coordinator{Addr: "127.0.0.1"},
		Machines: []config.Machine{{ID: "here", Local: true}}}, Dialer: NewDialer(nil)}
	obs, err := f.ObserveMachine(context.Background(), f.Cluster.Machines[0])
	if err != nil {
		t.Fatal(err)
	}
	if !obs.Reachable || obs.Error != "" || obs.ID != "here" || obs.UnitPresent {
		t.Fatalf("observation %+v", obs)
	}
	if s := f.Spec(f.Cluster.Machines[0]); s.CoordinatorPort != config.DefaultCoordinatorPort || s.MachineID != "here" {
		t.Fatalf("spec %+v", s)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"adora 1.2.3 (protocol 1, linux/amd64)": "1.2.3",
		"adora e2e-1":                           "e2e-1",
		"dora 0.3.0":                            "",
		"":                                      "",
	} {
		if got := ParseVersion(in); got != want {
			t.Errorf("ParseVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRestartDaemonNotInstalled(t *testing.T) {
	m := localMachine(t)
	err := RestartDaemon(context.Background(), m, "never-installed-e2e")
	if err == nil || !strings.Contains(err.Error(), "is not installed on local") || !strings.Contains(err.Error(), "cluster install") {
		t.Fatalf("got %v", err)
	}
}
