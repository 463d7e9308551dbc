//go:build e2e

// Package e2e holds the end-to-end tests that run on the multi-host test
// bed (testfixtures/testbed): real Debian hosts with systemd and sshd in
// network namespaces. TestMain brings a bed of three hosts up once per run
// (reusing one "make testbed-up" left) and builds the adora binaries the
// tests install. Run with "make e2e" (root, Linux, systemd-nspawn).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adora-rs/adora/testfixtures/testbed"
)

var (
	bed     *testbed.Bed
	workDir string // scratch directory of this run
	repo    string // module root
)

const hosts = 3

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: the test bed needs root (systemd-nspawn, network namespaces); run: sudo make e2e")
		return 1
	}
	_, f, _, _ := runtime.Caller(0)
	repo = filepath.Clean(filepath.Join(filepath.Dir(f), "..", ".."))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	if bed, err = testbed.Up(ctx, hosts); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if workDir, err = os.MkdirTemp("", "adora-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	// Commands under test record host keys here, not in ~/.ssh.
	os.Setenv("ADORA_KNOWN_HOSTS", filepath.Join(workDir, "known_hosts"))
	return m.Run()
}

var (
	buildMu  sync.Mutex
	binaries = map[string]string{}
)

// adoraBinary builds adora with version v once per run and returns its path.
func adoraBinary(t *testing.T, v string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := binaries[v]; ok {
		return p
	}
	p := filepath.Join(workDir, "adora-"+v)
	cmd := exec.Command("go", "build", "-o", p, "-ldflags", "-X github.com/adora-rs/adora/internal/version.Version="+v, ".")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build adora %s: %v\n%s", v, err, out)
	}
	binaries[v] = p
	return p
}

// goBinary builds a small Go program from source (a node, a broken
// daemon) and returns its path.
func goBinary(t *testing.T, name, src string) string {
	t.Helper()
	return goBinaryFor(t, name, "", src)
}

// goBinaryFor is goBinary for another GOARCH ("" = this machine's).
func goBinaryFor(t *testing.T, name, goarch, src string) string {
	t.Helper()
	dir := filepath.Join(workDir, "src-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(workDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./"+filepath.Base(dir))
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "CGO_ENABLED=0")
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

// sh runs cmd on host name as root (the test oracle, not the product path).
func sh(t *testing.T, name, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := bed.Exec(ctx, name, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// hostNames are the bed's host names in order.
func hostNames() []string {
	var names []string
	for _, h := range bed.Hosts() {
		names = append(names, h.Name)
	}
	return names
}

var osReadFile = os.ReadFile

// bedAddr is host name's address on the bed.
func bedAddr(name string) string {
	h, err := bed.Host(name)
	if err != nil {
		panic(err)
	}
	return h.Addr
}

// tgt is how the CLI names host name: user@address.
func tgt(name string) string { return bed.User + "@" + bedAddr(name) }

// coordHP is the bed's coordinator address with port.
func coordHP(port int) string { return fmt.Sprintf("%s:%d", bed.CoordinatorAddr, port) }
