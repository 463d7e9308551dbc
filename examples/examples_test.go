// Package examples_test runs the example dataflows through the adora
// binary (`adora run`) and checks the data that arrives: content, order
// and count.
package examples_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// build compiles adora and every example node into one directory, once.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "adora-examples-")
		if buildErr != nil {
			return
		}
		for _, args := range [][]string{
			{"build", "-o", filepath.Join(binDir, "adora"), ".."},
			{"build", "-o", binDir + "/", "./pipeline/...", "./camera/..."},
		} {
			cmd := exec.Command("go", args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{args: args, out: string(out), err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

type buildError struct {
	args []string
	out  string
	err  error
}

func (e *buildError) Error() string {
	return "go " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// run rewrites the example's node paths to the built binaries and runs
// `adora run` on it, returning its output per node.
func run(t *testing.T, example string, env ...string) map[string][]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(example, "dataflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return runYAML(t, src, env...)
}

// runYAML is run with the dataflow text given.
func runYAML(t *testing.T, src []byte, env ...string) map[string][]string {
	t.Helper()
	lines, err := runYAMLErr(t, src, env...)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// runYAMLErr is runYAML for dataflows that may fail: it returns adora
// run's error with the output.
func runYAMLErr(t *testing.T, src []byte, env ...string) (map[string][]string, error) {
	t.Helper()
	bin := build(t)
	df := filepath.Join(t.TempDir(), "dataflow.yml")
	if err := os.WriteFile(df, bytes.ReplaceAll(src, []byte("../../tmp/examples/"), []byte(bin+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "adora"), "run", df, "--stop-after", "60s")
	cmd.Env = append(os.Environ(), "ADORA_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	out, runErr := cmd.CombinedOutput()
	if runErr != nil {
		runErr = fmt.Errorf("adora run: %w\n%s", runErr, out)
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		id, text, ok := strings.Cut(l, "|")
		if !ok {
			continue
		}
		id, text = strings.TrimSpace(id), strings.TrimPrefix(text, " ")
		lines[id] = append(lines[id], text)
	}
	return lines, runErr
}

func TestPipelineExample(t *testing.T) {
	lines := run(t, "pipeline", "COUNT=40")
	re := regexp.MustCompile(`^received seq=(\d+) value=(\d+)$`)
	n := 0
	for _, l := range lines["receiver"] {
		m := re.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		seq, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		if seq != n || v != n*n {
			t.Fatalf("message %d: seq=%d value=%d, want seq=%d value=%d", n, seq, v, n, n*n)
		}
		n++
	}
	if n != 40 {
		t.Fatalf("receiver got %d messages, want 40; output:\n%s", n, strings.Join(lines["receiver"], "\n"))
	}
	for _, want := range []struct{ node, line string }{
		{"receiver", "input squares closed"},
		{"receiver", "receiver done: count=40 in_order=true"},
		{"transformer", "transformer: squared 40 numbers"},
		{"sender", "sender: sent 40 numbers"},
	} {
		if !hasLine(lines[want.node], want.line) {
			t.Errorf("%s never printed %q; output:\n%s", want.node, want.line, strings.Join(lines[want.node], "\n"))
		}
	}
}

func TestCameraExample(t *testing.T) {
	lines := run(t, "camera", "FRAMES=20")
	re := regexp.MustCompile(`^frame (\d+) bytes=6220800 checksum_ok=true zero_copy=true$`)
	n := 0
	for _, l := range lines["viewer"] {
		if strings.HasPrefix(l, "frame ") {
			m := re.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("bad frame line %q", l)
			}
			if got, _ := strconv.Atoi(m[1]); got != n {
				t.Fatalf("frame %d arrived as number %d", n, got)
			}
			n++
		}
	}
	if n != 20 || !hasLine(lines["viewer"], "viewer done: frames=20 bad=0 in_order=true") {
		t.Fatalf("viewer saw %d frames; output:\n%s", n, strings.Join(lines["viewer"], "\n"))
	}
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// A receiver killed (SIGKILL) while it holds a frame in shared memory: the
// camera keeps going (its regions come back; with a 64 MiB pool of 6 MB
// frames it would stall otherwise), the supervisor restarts the viewer
// (restart_policy: on-failure) and the new instance receives the rest of
// the frames, intact and in order.
func TestCameraViewerKilledAndRestarted(t *testing.T) {
	src := []byte(`nodes:
  - id: camera
    path: ../../tmp/examples/camera
    inputs:
      tick: adora/timer/millis/20
    outputs: [frames]
  - id: viewer
    path: ../../tmp/examples/viewer
    restart_policy: on-failure
    inputs:
      frames:
        source: camera/frames
        queue_size: 4
        queue_policy: backpressure
`)
	lines := runYAML(t, src, "FRAMES=40", "VIEWER_CRASH_AT=10")
	if !hasLine(lines["camera"], "camera: sent 40 frames") {
		t.Fatalf("camera did not finish; output:\n%s", strings.Join(lines["camera"], "\n"))
	}
	v := lines["viewer"]
	if !hasLine(v, "viewer: crashing at frame 10") || !hasLine(v, "viewer started (restart 1)") {
		t.Fatalf("viewer did not crash and restart; output:\n%s", strings.Join(v, "\n"))
	}
	re := regexp.MustCompile(`^viewer done: frames=(\d+) bad=0 in_order=true$`)
	var done []string
	for _, l := range v {
		if m := re.FindStringSubmatch(l); m != nil {
			done = append(done, m[1])
		}
	}
	if len(done) != 1 || !hasLine(v, "frame 39 bytes=6220800 checksum_ok=true zero_copy=true") {
		t.Fatalf("restarted viewer did not receive the rest intact; output:\n%s", strings.Join(v, "\n"))
	}
}

// startAttached runs an example through a local coordinator and daemon:
// adora up, then adora start --attach, which streams the node logs until
// the dataflow ends. It returns that output.
func startAttached(t *testing.T, example string, env ...string) string {
	t.Helper()
	bin := build(t)
	src, err := os.ReadFile(filepath.Join(example, "dataflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	df := filepath.Join(t.TempDir(), "dataflow.yml")
	if err := os.WriteFile(df, bytes.ReplaceAll(src, []byte("../../tmp/examples/"), []byte(bin+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	home := t.TempDir()
	adora := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "adora"), args...)
		cmd.Env = append(append(os.Environ(), "ADORA_HOME="+home), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := adora(30*time.Second, "up", "--port", port); err != nil {
		t.Fatalf("adora up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := adora(30*time.Second, "down", "--port", port); err != nil {
			t.Logf("adora down: %v\n%s", err, out)
		}
	})
	out, err := adora(90*time.Second, "start", df, "--attach", "--name", example+"-test", "--coordinator-port", port)
	if err != nil {
		t.Fatalf("adora start: %v\n%s", err, out)
	}
	return out
}

// The pipeline through adora up + adora start.
func TestPipelineThroughCoordinator(t *testing.T) {
	out := startAttached(t, "pipeline", "COUNT=30")
	// The receiver checks order itself (in_order); the attached log stream
	// may repeat lines it already showed, so count distinct messages here.
	re := regexp.MustCompile(`(?m)^receiver: received seq=(\d+) value=(\d+)$`)
	seen := map[int]bool{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		if v != seq*seq || seq < 0 || seq >= 30 {
			t.Fatalf("received seq=%d value=%d; output:\n%s", seq, v, out)
		}
		seen[seq] = true
	}
	if len(seen) != 30 || !strings.Contains(out, "receiver: receiver done: count=30 in_order=true") {
		t.Fatalf("receiver got %d distinct messages; output:\n%s", len(seen), out)
	}
}

// The camera killed (SIGKILL) mid-stream: the viewer learns that its source
// failed, its input closes after the frames already sent, and it ends
// cleanly; adora run reports the failure.
func TestCameraKilledClosesViewerInput(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("camera", "dataflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := runYAMLErr(t, src, "FRAMES=40", "CAMERA_CRASH_AT=7")
	if err == nil {
		t.Fatal("adora run succeeded although the camera was killed")
	}
	v := lines["viewer"]
	for _, want := range []string{
		"viewer: source camera failed (node exited with an error)",
		"viewer: input frames closed",
		"frame 7 bytes=6220800 checksum_ok=true zero_copy=true",
		"viewer done: frames=8 bad=0 in_order=true",
	} {
		if !hasLine(v, want) {
			t.Fatalf("viewer never printed %q; output:\n%s", want, strings.Join(v, "\n"))
		}
	}
}

// The camera through adora up + adora start.
func TestCameraThroughCoordinator(t *testing.T) {
	out := startAttached(t, "camera", "FRAMES=15")
	re := regexp.MustCompile(`(?m)^viewer: frame (\d+) bytes=6220800 checksum_ok=true zero_copy=true$`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		seen[m[1]] = true
	}
	if len(seen) != 15 || !strings.Contains(out, "viewer: viewer done: frames=15 bad=0 in_order=true") {
		t.Fatalf("viewer saw %d distinct frames; output:\n%s", len(seen), out)
	}
}

// A node written in Python from docs/node-protocol.md alone
// (examples/python/receiver.py, standard library only) receives the
// pipeline's squares inline and the camera's frames through shared memory.
func TestPythonReceiverFromTheProtocolDocument(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for this test (CI has it for the Zenoh interop suite, see testfixtures/setup.sh): %v", err)
	}
	script, err := filepath.Abs(filepath.Join("python", "receiver.py"))
	if err != nil {
		t.Fatal(err)
	}
	src := []byte(`nodes:
  - id: sender
    path: ../../tmp/examples/sender
    inputs:
      tick: adora/timer/millis/5
    outputs: [numbers]
  - id: camera
    path: ../../tmp/examples/camera
    inputs:
      tick: adora/timer/millis/20
    outputs: [frames]
  - id: pyreceiver
    path: ` + py + `
    args: ` + script + `
    inputs:
      numbers:
        source: sender/numbers
        queue_policy: backpressure
      frames:
        source: camera/frames
        queue_size: 4
        queue_policy: backpressure
`)
	lines := runYAML(t, src, "COUNT=20", "FRAMES=5")
	got := lines["pyreceiver"]
	numbers, frames := 0, 0
	for _, l := range got {
		switch {
		case strings.HasPrefix(l, "received numbers "):
			if want := fmt.Sprintf("received numbers %d %x", len(strconv.Itoa(numbers)), strconv.Itoa(numbers)); l != want {
				t.Fatalf("line %q, want %q", l, want)
			}
			numbers++
		case strings.HasPrefix(l, "received frames 6220800 "):
			if want := "received frames 6220800 " + frameHead(frames); l != want {
				t.Fatalf("line %q, want %q (the camera's pixels, read in place)", l, want)
			}
			frames++
		}
	}
	if numbers != 20 || frames != 5 || !hasLine(got, "input closed numbers") || !hasLine(got, "input closed frames") || !hasLine(got, "python receiver done") {
		t.Fatalf("python receiver: %d numbers, %d frames; output:\n%s", numbers, frames, strings.Join(got, "\n"))
	}
}

// frameHead is the hex of the first 16 bytes the camera paints in frame i.
func frameHead(i int) string {
	b := make([]byte, 16)
	for k := range b {
		x := k / 3
		switch k % 3 {
		case 0:
			b[k] = byte(x + i)
		case 1:
			b[k] = byte(x*3 + i*5)
		case 2:
			b[k] = byte(i)
		}
	}
	b[0] = 0 // row 0
	return fmt.Sprintf("%x", b)
}

// The other direction: a sending node in Python (examples/python/camera.py)
// writes frames into sealed memfd regions; the Go viewer checks each one by
// CRC-32 without copying it.
func TestPythonCameraToGoViewer(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for this test (CI has it for the Zenoh interop suite, see testfixtures/setup.sh): %v", err)
	}
	script, err := filepath.Abs(filepath.Join("python", "camera.py"))
	if err != nil {
		t.Fatal(err)
	}
	src := []byte(`nodes:
  - id: pycamera
    path: ` + py + `
    args: ` + script + `
    outputs: [frames]
  - id: viewer
    path: ../../tmp/examples/viewer
    inputs:
      frames:
        source: pycamera/frames
        queue_size: 4
        queue_policy: backpressure
`)
	lines := runYAML(t, src, "FRAMES=12")
	v := lines["viewer"]
	if !hasLine(v, "viewer done: frames=12 bad=0 in_order=true") || !hasLine(v, "frame 11 bytes=6220800 checksum_ok=true zero_copy=true") || !reusedRegions(lines["pycamera"]) {
		t.Fatalf("viewer output:\n%s\ncamera output:\n%s", strings.Join(v, "\n"), strings.Join(lines["pycamera"], "\n"))
	}
}

// reusedRegions reports whether the Python camera sent its frames in fewer
// regions than frames (it reuses what DROPPED returns).
func reusedRegions(lines []string) bool {
	for _, l := range lines {
		var frames, regions int
		if n, _ := fmt.Sscanf(l, "python camera: sent %d frames in %d regions", &frames, &regions); n == 2 {
			return regions < frames
		}
	}
	return false
}

// Every example dataflow decodes without diagnostics.
func TestExampleDataflowsAreValid(t *testing.T) {
	files, err := filepath.Glob("*/dataflow.yml")
	if err != nil || len(files) < 3 {
		t.Fatalf("example dataflows: %v %v", files, err)
	}
	for _, f := range files {
		df, diags := config.LoadDataflow(f)
		if df == nil || len(diags) > 0 {
			t.Errorf("%s: %v", f, diags)
		}
	}
}
