//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/testfixtures/testbed"
)

// sleeperNode is a node binary that exists only on the CLI machine.
const sleeperNode = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, os.Interrupt)
	<-c
}
`

// procWithArg reports the pid of a process on host whose last argument
// is marker ("" if none).
func procWithArg(t *testing.T, host, marker string) string {
	t.Helper()
	return sh(t, host, "ps -eo pid=,args= | awk '$NF==\""+marker+"\" && $2!=\"awk\" {print $1}'")
}

func waitProc(t *testing.T, host, marker string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var pid string
	err := testbed.WaitFor(ctx, 300*time.Millisecond, func() error {
		if pid = procWithArg(t, host, marker); pid == "" {
			return os.ErrNotExist
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no process with argument %s on %s: %v", marker, host, err)
	}
	return pid
}

// TestDistribution: scp and http deliver a node binary that exists only
// on the CLI machine; a tampered artifact is refused; the artifact
// endpoint refuses unauthenticated and path-traversal requests.
func TestDistribution(t *testing.T) {
	f := newFleet(t, 16016)
	f.startCoordinator()
	bin := adoraBinary(t, "e2e-1")
	if out, code := f.adora(bin, "cluster", "up", f.file); code != 0 {
		t.Fatalf("cluster up exit %d\n%s", code, out)
	}
	node := goBinary(t, "sleeper", sleeperNode)
	flowDir := filepath.Join(workDir, "flow-"+filepath.Base(f.home))
	if err := os.MkdirAll(filepath.Join(flowDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, node, filepath.Join(flowDir, "bin", "sleeper"))
	for _, h := range hostNames() {
		if got := sh(t, h, "ls "+flowDir+" 2>/dev/null | wc -l"); got != "0" {
			t.Fatalf("%s already has %s", h, flowDir)
		}
	}

	t.Run("scp", func(t *testing.T) {
		yml := `nodes:
  - id: pushed
    path: ./bin/sleeper
    args: "scp-4242"
    _unstable_deploy:
      machine: h2
      distribute: scp
`
		df, diags := config.ParseDataflow([]byte(yml), "scp.yml")
		if diags.HasErrors() {
			t.Fatal(diags.Err())
		}
		cl, diags := config.LoadCluster(f.file)
		if diags.HasErrors() {
			t.Fatal(diags.Err())
		}
		fl := &remote.Fleet{Cluster: cl, Dialer: remote.NewDialer(nil)}
		copies, err := fl.DeliverSCP(context.Background(), df, flowDir, flowDir, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(copies) != 1 || copies[0].Machine != "h2" {
			t.Fatalf("copies %+v", copies)
		}
		if got := sh(t, "h2", "sha256sum "+flowDir+"/bin/sleeper | cut -d' ' -f1"); got != sha256Of(t, node) {
			t.Fatalf("pushed binary sha256 %s", got)
		}
		f.start(proto.Start{Name: "scp", Descriptor: []byte(yml), Dataflow: *df, WorkingDir: flowDir})
		waitProc(t, "h2", "scp-4242", 20*time.Second)

		// A node path that points at a system directory is refused: artifacts
		// are written as the SSH user, never with sudo.
		mc, err := fl.Dial(context.Background(), *cl.Machine("h2"))
		if err != nil {
			t.Fatal(err)
		}
		defer mc.Close()
		lf, _ := remote.LocalFile(node, 0o755)
		if _, err := remote.PushArtifact(context.Background(), mc, lf, "/usr/local/sbin", "evil"); err == nil {
			t.Fatal("pushed a node artifact into /usr/local/sbin as the unprivileged user")
		}
		if got := sh(t, "h2", "ls /usr/local/sbin/evil 2>/dev/null | wc -l"); got != "0" {
			t.Fatal("the refused artifact exists")
		}
	})

	t.Run("http", func(t *testing.T) {
		yml := `nodes:
  - id: fetched
    path: ./bin/sleeper
    args: "http-4343"
    _unstable_deploy:
      machine: h3
      distribute: http
`
		p := filepath.Join(flowDir, "http.yml")
		if err := os.WriteFile(p, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := f.adora(bin, "start", p, "--name", "http", "--detach", "--coordinator-addr", bed.CoordinatorAddr, "--coordinator-port", "16016")
		if code != 0 {
			t.Fatalf("adora start exit %d\n%s", code, out)
		}
		waitProc(t, "h3", "http-4343", 20*time.Second)
		if got := sh(t, "h3", "ls "+flowDir+"/bin/sleeper 2>/dev/null | wc -l"); got != "0" {
			t.Fatal("http distribution went through the file system path")
		}
	})

	t.Run("tampered artifact refused", func(t *testing.T) {
		ctx := context.Background()
		body, err := os.ReadFile(node)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256Of(t, node)
		build := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
		if err := client.UploadArtifact(ctx, f.opts(), build, "tampered", bytes.NewReader(body), sum); err != nil {
			t.Fatal(err)
		}
		stored := filepath.Join(f.home, "artifacts", build, "tampered")
		if err := os.WriteFile(stored, append(body, 0), 0o600); err != nil {
			t.Fatal(err)
		}
		yml := `nodes:
  - id: tampered
    path: ./bin/sleeper
    args: "tampered-4444"
    _unstable_deploy:
      machine: h1
      distribute: http
`
		df, _ := config.ParseDataflow([]byte(yml), "t.yml")
		c, err := client.Dial(ctx, f.opts())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Start(ctx, proto.Start{Name: "tampered", Descriptor: []byte(yml), Dataflow: *df, WorkingDir: flowDir,
			Artifacts: map[string]proto.Artifact{"tampered": {BuildID: build, NodeID: "tampered", SHA256: sum, Size: int64(len(body))}}})
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "sha256") {
			t.Fatalf("start with a tampered artifact: %v, want a sha256 refusal", err)
		}
		if pid := procWithArg(t, "h1", "tampered-4444"); pid != "" {
			t.Fatalf("the tampered node runs on h1 (pid %s)", pid)
		}
	})

	t.Run("artifact endpoint refuses", func(t *testing.T) {
		base := "http://" + bed.CoordinatorAddr + ":16016" + proto.PathArtifacts
		for _, tc := range []struct {
			url, token string
			want       int
		}{
			{base + "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/tampered", "", http.StatusUnauthorized},
			{base + "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/tampered", "wrong", http.StatusUnauthorized},
			{base + "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/..%2f..%2ftoken", f.token, http.StatusBadRequest},
			{base + "..%2F..%2F/token", f.token, http.StatusBadRequest},
		} {
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s (with token: %v): %d, want %d", tc.url, tc.token != "", resp.StatusCode, tc.want)
			}
		}
	})
}

func (f *fleet) start(req proto.Start) proto.StartReply {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, f.opts())
	if err != nil {
		f.t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Start(ctx, req)
	if err != nil {
		f.t.Fatalf("start %s: %v", req.Name, err)
	}
	return rep
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
