package benchmark

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	node "github.com/adora-rs/adora/nodes"
	"github.com/adora-rs/adora/runtime/dataplane"
)

// The test binary doubles as the benchmark's processes, selected by
// BENCH_ROLE: the adora sender and sink nodes, and the children of the two
// baselines (which get their descriptors as fd 3, 4, 5).
func TestMain(m *testing.M) {
	if role := os.Getenv("BENCH_ROLE"); role != "" {
		if err := runRole(role); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runRole(role string) error {
	var s Shape
	if err := json.Unmarshal([]byte(os.Getenv("BENCH_SHAPE")), &s); err != nil {
		return err
	}
	switch role {
	case "sock-child":
		return SocketSend(os.NewFile(3, "sock"), s)
	case "shm-child":
		ch, err := OpenShmChannel(os.NewFile(3, "mem"), os.NewFile(4, "notify"), os.NewFile(5, "ack"), 16+maxSize(s))
		if err != nil {
			return err
		}
		return ShmSend(ch, s)
	}
	n, err := node.Init()
	if err != nil {
		return err
	}
	defer n.Close()
	if role == "sender" {
		return RunSender(n, s)
	}
	rs := RunSink(n)
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return os.WriteFile(os.Getenv("BENCH_JSON"), b, 0o644)
}

func child(t testing.TB, role string, s Shape, env []string, files ...*os.File) *exec.Cmd {
	js, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "BENCH_ROLE="+role, "BENCH_SHAPE="+string(js))
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// runAdora runs sender and sink as two processes through a Router.
func runAdora(t testing.TB, s Shape) []Result {
	df := &config.Dataflow{Nodes: []config.Node{
		{ID: "sender", Outputs: []string{"latency", "throughput"}},
		{ID: "sink", Inputs: []config.Input{
			{ID: "latency", Source: config.Source{Node: "sender", Output: "latency"}, QueueSize: 10, QueuePolicy: config.DropOldest},
			{ID: "throughput", Source: config.Source{Node: "sender", Output: "throughput"}, QueueSize: 1000, QueuePolicy: config.Backpressure},
		}},
	}}
	r, err := dataplane.NewRouter(dataplane.Config{DataflowID: "bench", Dataflow: df, Local: []string{"sender", "sink"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := filepath.Join(t.TempDir(), "sink.json")
	var cmds []*exec.Cmd
	for _, id := range []string{"sink", "sender"} {
		env, files, err := r.PrepareNode(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, child(t, id, s, append(env, "BENCH_JSON="+out), files...))
	}
	defer func() {
		for _, cmd := range cmds {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}
	}()
	// The sink ends when the sender closes its outputs and exits.
	sendErr := cmds[1].Wait()
	r.NodeExited("sender", false, sendErr != nil)
	if sendErr != nil {
		t.Fatalf("sender: %v", sendErr)
	}
	if err := cmds[0].Wait(); err != nil {
		t.Fatalf("sink: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rs []Result
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func runSocket(t testing.TB, s Shape) []Result {
	conn, childEnd, err := UnixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd := child(t, "sock-child", s, nil, childEnd)
	childEnd.Close()
	rs, err := SocketReceive(conn, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return rs
}

func runShm(t testing.TB, s Shape) []Result {
	ch, files, err := NewShmChannel(maxSize(s))
	if err != nil {
		t.Fatal(err)
	}
	cmd := child(t, "shm-child", s, nil, files...)
	rs, err := ShmReceive(ch, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return rs
}

func find(rs []Result, kind string, size int) (Result, bool) {
	for _, r := range rs {
		if r.Kind == kind && r.Size == size {
			return r, true
		}
	}
	return Result{}, false
}

// TestShapeSmall runs a reduced shape through adora and both baselines and
// checks that every bracket is complete.
func TestShapeSmall(t *testing.T) {
	s := Shape{Count: 10, Interval: time.Millisecond, Pause: 20 * time.Millisecond, Sizes: []int{0, 64, 4096, 409600}}
	for name, run := range map[string]func(testing.TB, Shape) []Result{"adora": runAdora, "socket": runSocket, "shm": runShm} {
		rs := run(t, s)
		for _, size := range s.Sizes {
			lat, ok1 := find(rs, "latency", size)
			tp, ok2 := find(rs, "throughput", size)
			if !ok1 || !ok2 || lat.N != s.Count || tp.N != s.Count || lat.P50 <= 0 || tp.PerSec <= 0 {
				t.Fatalf("%s size %d: latency %+v, throughput %+v", name, size, lat, tp)
			}
		}
	}
}

// BenchmarkDataplane runs the full upstream shape once through adora and
// the two physical baselines and prints the comparison table. Metrics:
// one-way p50 latency in microseconds at 64 B, 4 KiB and 4 MB, and
// messages per second at 4 MB, for adora.
func BenchmarkDataplane(b *testing.B) {
	s := DefaultShape
	for i := 0; i < b.N; i++ {
		adora, sock, shmr := runAdora(b, s), runSocket(b, s), runShm(b, s)
		var sb strings.Builder
		Print(&sb, "adora", adora)
		Print(&sb, "unix-sock", sock)
		Print(&sb, "shm+evfd", shmr)
		fmt.Fprintln(&sb, "\nratios adora / baseline (p50 latency; throughput baseline / adora):")
		for _, size := range s.Sizes {
			a, _ := find(adora, "latency", size)
			u, _ := find(sock, "latency", size)
			m, _ := find(shmr, "latency", size)
			at, _ := find(adora, "throughput", size)
			ut, _ := find(sock, "throughput", size)
			mt, _ := find(shmr, "throughput", size)
			fmt.Fprintf(&sb, "  %8s  p50 %8v  vs socket %.2fx  vs shm %.2fx   throughput %8.0f msg/s  vs socket %.2fx  vs shm %.2fx\n",
				Label(size), a.P50, ratio(a.P50, u.P50), ratio(a.P50, m.P50), at.PerSec, ut.PerSec/at.PerSec, mt.PerSec/at.PerSec)
		}
		fmt.Print(sb.String())
		if p := os.Getenv("BENCH_CSV"); p != "" {
			WriteCSV(p, "adora", adora)
			WriteCSV(p, "unix-sock", sock)
			WriteCSV(p, "shm+evfd", shmr)
		}
		for _, m := range []struct {
			size int
			unit string
		}{{64, "us-p50-64B"}, {4096, "us-p50-4KB"}, {4096000, "us-p50-4MB"}} {
			r, _ := find(adora, "latency", m.size)
			b.ReportMetric(float64(r.P50)/1e3, m.unit)
		}
		tp, _ := find(adora, "throughput", 4096000)
		b.ReportMetric(tp.PerSec, "msg/s-4MB")
	}
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
