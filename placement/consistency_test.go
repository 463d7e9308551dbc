package placement

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
)

// TestCheckPlacementAgreesWithPlace generates random clusters and
// dataflows: config.CheckPlacement (what adora validate reports) must flag
// exactly the nodes Place cannot place on the cluster's machines, and every
// placed node must sit on a machine that satisfies its request.
func TestCheckPlacementAgreesWithPlace(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	keys := []string{"gpu", "arch", "zone", "role"}
	values := []string{"a", "b", "c"}
	randLabels := func(max int) map[string]string {
		n := rng.Intn(max + 1)
		if n == 0 {
			return nil
		}
		l := make(map[string]string)
		for i := 0; i < n; i++ {
			l[keys[rng.Intn(len(keys))]] = values[rng.Intn(len(values))]
		}
		return l
	}
	for round := 0; round < 200; round++ {
		c := &config.Cluster{}
		for i := 0; i < 1+rng.Intn(6); i++ {
			c.Machines = append(c.Machines, config.Machine{ID: fmt.Sprintf("m%d", rng.Intn(10)), Labels: randLabels(3)})
		}
		c.Machines = dedupeMachines(c.Machines)
		df := &config.Dataflow{}
		for i := 0; i < 1+rng.Intn(8); i++ {
			n := config.Node{ID: fmt.Sprintf("n%d", i)}
			switch rng.Intn(3) {
			case 0:
				n.Deploy.Machine = fmt.Sprintf("m%d", rng.Intn(10))
			case 1:
				n.Deploy.Labels = randLabels(2)
			}
			df.Nodes = append(df.Nodes, n)
		}
		flagged := make(map[string]bool)
		for _, d := range config.CheckPlacement(c, df) {
			id := strings.SplitN(d.Summary, `"`, 3)[1]
			flagged[id] = true
		}
		decisions, _ := Place(df.Nodes, DaemonsFromCluster(c))
		for _, d := range decisions {
			if flagged[d.Node] == d.Placed() {
				t.Fatalf("round %d: node %s: CheckPlacement flagged=%v, Place placed=%v (%v)\ncluster %+v\ndataflow %+v", round, d.Node, flagged[d.Node], d.Placed(), d, c.Machines, df.Nodes)
			}
			if !d.Placed() {
				continue
			}
			n := df.Node(d.Node)
			m := c.Machine(d.MachineID)
			switch {
			case n.Deploy.Machine != "" && m.ID != n.Deploy.Machine:
				t.Fatalf("round %d: %s on %s, asked for %s", round, n.ID, m.ID, n.Deploy.Machine)
			case n.Deploy.Machine == "" && !config.LabelsMatch(m.Labels, n.Deploy.Labels):
				t.Fatalf("round %d: %s on %s lacking %v", round, n.ID, m.ID, n.Deploy.Labels)
			}
		}
	}
}

func dedupeMachines(ms []config.Machine) []config.Machine {
	seen := make(map[string]bool)
	var out []config.Machine
	for _, m := range ms {
		if !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	return out
}
