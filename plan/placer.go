package plan

import "github.com/adora-rs/adora/config"

// Placer decides where each node of a dataflow runs among the desired
// machines. It must be pure and deterministic. The result has one
// Placement per node, in the order of nodes; an error means some node
// cannot be placed (the plan then fails before anything runs).
type Placer interface {
	Place(nodes []config.Node, machines []config.Machine) ([]Placement, error)
}

// PlacerFunc adapts a function to Placer.
type PlacerFunc func(nodes []config.Node, machines []config.Machine) ([]Placement, error)

// Place calls f.
func (f PlacerFunc) Place(nodes []config.Node, machines []config.Machine) ([]Placement, error) {
	return f(nodes, machines)
}
