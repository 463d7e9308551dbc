//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/testfixtures/testbed"
)

// fleet is one test's view of the bed as a cluster: its own cluster.yml
// (the bed's, on its own coordinator port), its own ADORA_HOME for the CLI
// (holding the token), and optionally a coordinator served in-process on
// the bed's host-side address.
type fleet struct {
	t     *testing.T
	home  string
	file  string
	port  int
	token string
	stop  func()
	done  chan struct{}
}

func newFleet(t *testing.T, port int) *fleet {
	t.Helper()
	resetHosts(t)
	f := &fleet{t: t, home: t.TempDir(), port: port}
	tok, _, err := auth.LoadOrCreate(filepath.Join(f.home, "token"))
	if err != nil {
		t.Fatal(err)
	}
	f.token = tok
	src, err := os.ReadFile(bed.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	yml := regexp.MustCompile(`(?m)^  port: \d+$`).ReplaceAllString(string(src), "  port: "+strconv.Itoa(port))
	f.file = filepath.Join(f.home, "cluster.yml")
	if err := os.WriteFile(f.file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start := time.Now()
		f.stopCoordinator()
		f.killSpawnedCoordinator()
		resetHosts(t)
		t.Logf("cleanup took %s", time.Since(start).Round(time.Millisecond))
	})
	return f
}

// startCoordinator serves a coordinator (auth on, memory store) on the
// bed's coordinator address until the test ends or it is destroyed.
func (f *fleet) startCoordinator() {
	f.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(bed.CoordinatorAddr, strconv.Itoa(f.port)))
	if err != nil {
		f.t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(f.home, "coordinator.log"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		logf.Close()
		if f.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			f.t.Logf("coordinator log (tail):\n%s", b)
		}
	})
	c, err := coordinator.New(coordinator.Config{Store: store.NewMemory(), Token: f.token,
		ArtifactsDir: filepath.Join(f.home, "artifacts"), Logger: slog.New(slog.NewTextHandler(logf, nil))})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.done = make(chan struct{})
	go func() { defer close(f.done); c.Serve(ctx, ln) }()
	f.stop = cancel
}

func (f *fleet) stopCoordinator() {
	if f.stop != nil {
		f.stop()
		<-f.done
		f.stop = nil
	}
}

// killSpawnedCoordinator ends a coordinator "cluster up" started for this
// test (pid file in its ADORA_HOME) if the test did not tear it down.
func (f *fleet) killSpawnedCoordinator() {
	b, err := os.ReadFile(filepath.Join(f.home, "up", "coordinator.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmdline), "coordinator") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (f *fleet) opts() client.Options {
	return client.Options{Addr: bed.CoordinatorAddr, Port: f.port, Token: f.token}
}

// adora runs the CLI binary bin with args (ADORA_HOME and known_hosts of
// this test) and returns its combined output and exit code.
func (f *fleet) adora(bin string, args ...string) (string, int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "ADORA_HOME="+f.home, "ADORA_AUTH_TOKEN=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("run adora %v: %v", args, err)
	}
	f.t.Logf("$ adora %s (exit %d)\n%s", strings.Join(args, " "), code, out.String())
	return out.String(), code
}

// daemons returns the connected daemons' versions by machine id.
func (f *fleet) daemons() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h, err := client.Health(ctx, f.opts())
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, d := range h.Daemons {
		m[d.MachineID] = d.Version
	}
	return m, nil
}

// waitDaemons waits until exactly ids are connected, all with version (if
// not "").
func (f *fleet) waitDaemons(timeout time.Duration, version string, ids ...string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sort.Strings(ids)
	err := testbed.WaitFor(ctx, 250*time.Millisecond, func() error {
		have, err := f.daemons()
		if err != nil {
			return err
		}
		var got []string
		for id, v := range have {
			if version != "" && v != version {
				return fmt.Errorf("%s runs %s, want %s", id, v, version)
			}
			got = append(got, id)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			return fmt.Errorf("connected %v, want %v", got, ids)
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("daemons: %v", err)
	}
}

// resetHosts removes whatever adora left on the hosts: units, environment
// files, ad hoc daemons (by their pid files), binaries.
func resetHosts(t *testing.T) {
	t.Helper()
	script := `for u in /etc/systemd/system/adora-daemon-*.service; do [ -e "$u" ] || continue; systemctl disable --now "$(basename "$u")" >/dev/null 2>&1; rm -f "$u"; done
systemctl daemon-reload; systemctl reset-failed >/dev/null 2>&1
for f in /home/*/.adora/daemon-*/daemon.pid /root/.adora/daemon-*/daemon.pid; do [ -f "$f" ] || continue; kill -KILL -- -"$(cat "$f")" 2>/dev/null; kill -KILL "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
rm -rf /etc/adora /var/lib/adora /usr/local/bin/adora /home/*/.adora /root/.adora /opt/adora-e2e
true`
	for _, n := range hostNames() {
		if !bed.Running(n) {
			continue
		}
		sh(t, n, script)
	}
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func mustContain(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Fatalf("output lacks %q:\n%s", l, out)
		}
	}
}
