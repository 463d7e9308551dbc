//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/testfixtures/testbed"
)

// placedFlow puts one long-running node on each host: by machine id (h1)
// and by labels (gpu=true is h2, role=edge is h3). Each node is a sleep
// with its own argument so tests can find its process.
const placedFlow = `nodes:
  - id: camera
    path: /bin/sleep
    args: "3601"
    _unstable_deploy:
      machine: h1
      working_dir: /tmp
  - id: inference
    path: /bin/sleep
    args: "3602"
    _unstable_deploy:
      labels:
        gpu: "true"
      working_dir: /tmp
  - id: edge
    path: /bin/sleep
    args: "3603"
    _unstable_deploy:
      labels:
        role: edge
      working_dir: /tmp
`

// nodeOf is where placedFlow's nodes run and their marker argument.
var nodeOf = map[string]struct{ node, arg string }{
	"h1": {"camera", "3601"},
	"h2": {"inference", "3602"},
	"h3": {"edge", "3603"},
}

// startFlow starts a dataflow through the coordinator's control API and
// returns the placements by node id.
func (f *fleet) startFlow(name, yml string) map[string]string {
	f.t.Helper()
	df, diags := config.ParseDataflow([]byte(yml), name+".yml")
	if diags.HasErrors() {
		f.t.Fatal(diags.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, f.opts())
	if err != nil {
		f.t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Start(ctx, proto.Start{Name: name, Descriptor: []byte(yml), Dataflow: *df, WorkingDir: "/tmp"})
	if err != nil {
		f.t.Fatalf("start %s: %v", name, err)
	}
	placed := map[string]string{}
	for _, p := range rep.Placements {
		placed[p.NodeID] = p.MachineID
	}
	return placed
}

// nodePID returns the pid (as this machine sees it: the hosts' processes
// are visible in its /proc) of placedFlow's node on host ("" if none, two
// pids on two lines if two run). Reading /proc here instead of asking over
// ssh lets samplers look every few milliseconds.
func nodePID(host string) (string, error) {
	want := "/bin/sleep\x00" + nodeOf[host].arg + "\x00"
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return "", err
	}
	var pids []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && string(b) == want {
			pids = append(pids, e.Name())
		}
	}
	return strings.Join(pids, "\n"), nil
}

// waitNodes waits until every host runs its node and returns the pids.
func waitNodes(t *testing.T, timeout time.Duration, hosts ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pids := map[string]string{}
	err := testbed.WaitFor(ctx, 500*time.Millisecond, func() error {
		for _, h := range hosts {
			p, err := nodePID(h)
			if err != nil {
				return err
			}
			if p == "" || strings.Contains(p, "\n") {
				return fmt.Errorf("%s runs node processes %q, want one", h, p)
			}
			pids[h] = p
		}
		return nil
	})
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	return pids
}

// pidSampler records, while running, which hosts' node pids differ from
// a baseline.
type pidSampler struct {
	base    map[string]string
	mu      sync.Mutex
	samples [][]string // hosts whose pid differs, in host order
	stop    chan struct{}
	done    chan struct{}
}

func samplePIDs(base map[string]string, hosts []string) *pidSampler {
	s := &pidSampler{base: base, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			var changed []string
			ok := true
			for _, h := range hosts {
				p, err := nodePID(h)
				if err != nil {
					ok = false
					break
				}
				if p != s.base[h] {
					changed = append(changed, h)
				}
			}
			if ok {
				s.mu.Lock()
				s.samples = append(s.samples, changed)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *pidSampler) Stop() [][]string {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}
