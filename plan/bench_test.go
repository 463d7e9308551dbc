package plan_test

import (
	"fmt"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/state"
)

// fleet is a synthetic fleet: machines machines with a role label each
// (one in ten has a GPU), and 10 dataflows sharing nodes nodes, pinned,
// label-placed and default-placed in turn.
func fleet(machines, nodes int) (*config.Cluster, map[string]*config.Dataflow) {
	c := &config.Cluster{Coordinator: config.Coordinator{Addr: "10.0.0.1", Port: 6013}}
	for i := range machines {
		labels := map[string]string{"zone": fmt.Sprintf("z%d", i%8)}
		if i%10 == 0 {
			labels["gpu"] = "true"
		}
		c.Machines = append(c.Machines, config.Machine{ID: fmt.Sprintf("bot-%04d", i), Host: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), Labels: labels})
	}
	dfs := map[string]*config.Dataflow{}
	for i := range nodes {
		name := fmt.Sprintf("app-%02d", i%10)
		df := dfs[name]
		if df == nil {
			df = &config.Dataflow{}
			dfs[name] = df
		}
		n := config.Node{ID: fmt.Sprintf("node-%05d", i), Path: "./node", Outputs: []string{"out"}}
		switch i % 3 {
		case 0:
			n.Deploy.Machine = c.Machines[i%machines].ID
		case 1:
			n.Deploy.Labels = map[string]string{"zone": fmt.Sprintf("z%d", i%8)}
		}
		df.Nodes = append(df.Nodes, n)
	}
	return c, dfs
}

// BenchmarkCompute1000Machines10000Nodes plans a first deployment of a
// 1,000-machine, 10,000-node fleet without refresh (docs/benchmarks.md).
func BenchmarkCompute1000Machines10000Nodes(b *testing.B) {
	c, dfs := fleet(1000, 10000)
	desired := plantest.Desired(c, dfs, plantest.Binary020)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plan.Compute(nil, nil, desired); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplan1000Machines10000Nodes plans a rolling upgrade of the
// same fleet against its recorded state.
func BenchmarkReplan1000Machines10000Nodes(b *testing.B) {
	c, dfs := fleet(1000, 10000)
	p, err := plan.Compute(nil, nil, plantest.Desired(c, dfs, plantest.Binary010))
	if err != nil {
		b.Fatal(err)
	}
	st := state.New("bench")
	for _, ch := range p.Changes {
		plan.Record(st, ch, "")
	}
	desired := plantest.Desired(c, dfs, plantest.Binary020)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plan.Compute(st, nil, desired); err != nil {
			b.Fatal(err)
		}
	}
}
