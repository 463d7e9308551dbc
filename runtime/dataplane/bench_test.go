package dataplane

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/adora-rs/adora/config"
	node "github.com/adora-rs/adora/nodes"
)

// inProcess connects an SDK node in this process, the way a spawned node
// would (PrepareNode's environment, the real socket).
func inProcess(tb testing.TB, r *Router, id string) *node.Node {
	tb.Helper()
	env, _, err := r.PrepareNode(id, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var cfg node.Config
	if err := json.Unmarshal([]byte(strings.TrimPrefix(env[0], node.ConfigEnv+"=")), &cfg); err != nil {
		tb.Fatal(err)
	}
	n, err := node.InitWith(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkRouting measures the router's cost per message: one sender, N
// receivers (fan-out), payloads inline (64 B) or in shared memory (4 KiB,
// 64 KiB), every node in this process over the real sockets. ns/op is per
// message sent (delivered N times).
func BenchmarkRouting(b *testing.B) {
	for _, fan := range []int{1, 4, 8} {
		for _, size := range []int{64, 4096, 65536} {
			b.Run(fmt.Sprintf("fanout=%d/size=%d", fan, size), func(b *testing.B) { benchRouting(b, fan, size) })
		}
	}
}

func benchRouting(b *testing.B, fan, size int) {
	nodes := []config.Node{{ID: "src", Outputs: []string{"out"}}}
	for i := 0; i < fan; i++ {
		nodes = append(nodes, config.Node{ID: fmt.Sprintf("r%d", i), Inputs: []config.Input{
			{ID: "in", Source: config.Source{Node: "src", Output: "out"}, QueueSize: 100, QueuePolicy: config.Backpressure}}})
	}
	var local []string
	for _, n := range nodes {
		local = append(local, n.ID)
	}
	r, err := NewRouter(Config{DataflowID: "bench", Dataflow: &config.Dataflow{Nodes: nodes}, Local: local})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	all := make([]*node.Node, len(nodes))
	var wg sync.WaitGroup
	for i, id := range local { // Init returns once every node registered
		wg.Add(1)
		go func() { defer wg.Done(); all[i] = inProcess(b, r, id) }()
	}
	wg.Wait()
	src := all[0]
	var got sync.WaitGroup
	for _, rcv := range all[1:] {
		got.Add(1)
		go func() {
			defer got.Done()
			for n := 0; n < b.N; n++ {
				if ev, ok := <-rcv.Events(); !ok || ev.Type != node.Input {
					b.Errorf("receiver: %+v", ev)
					return
				}
			}
		}()
	}
	payload := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if err := src.SendOutput("out", payload, node.Metadata{}); err != nil {
			b.Fatal(err)
		}
	}
	got.Wait()
	b.StopTimer()
	for _, n := range all {
		n.Close()
	}
}
