package plan

import (
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/placement"
)

// DefaultPlacer places nodes with the placement package's rules
// (machine > labels > unnamed > default) on one daemon per desired
// machine, as a fully started cluster would.
var DefaultPlacer Placer = PlacerFunc(placeWithScheduler)

func placeWithScheduler(nodes []config.Node, machines []config.Machine) ([]Placement, error) {
	decisions, err := placement.Place(nodes, placement.DaemonsFromCluster(&config.Cluster{Machines: machines}))
	if err != nil {
		return nil, err
	}
	out := make([]Placement, len(decisions))
	for i, d := range decisions {
		out[i] = Placement{Node: d.Node, Machine: d.MachineID, Rule: string(d.Rule)}
		if len(d.Refused) > 0 {
			out[i].Refused = make([]Refusal, len(d.Refused))
			for j, r := range d.Refused {
				out[i].Refused[j] = Refusal{Machine: r.MachineID, Reason: r.Reason}
			}
		}
	}
	return out, nil
}
