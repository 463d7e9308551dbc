package plan

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/adora-rs/adora/state"
)

func (c *computer) dataflows() Errors {
	var errs Errors
	for name, rec := range c.prior.Dataflows {
		c.dataflowDrift(rec)
		if _, ok := c.desired.Dataflows[name]; !ok {
			c.stopDataflow(rec)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.desired.Dataflows)) {
		df := c.desired.Dataflows[name]
		if c.desired.Placer == nil {
			errs = append(errs, fmt.Errorf("dataflow %s: no placer to place its nodes", name))
			continue
		}
		placements, err := c.desired.Placer.Place(df.Nodes, c.desired.Cluster.Machines)
		if err != nil {
			errs = append(errs, fmt.Errorf("dataflow %s: %w", name, err))
			continue
		}
		after := state.Dataflow{Name: name, DescriptorHash: DescriptorHash(df), Placements: map[string]string{}}
		byNode := map[string]Placement{}
		for _, pl := range placements {
			after.Placements[pl.Node] = pl.Machine
			byNode[pl.Node] = pl
		}
		after.Artifacts = c.artifacts(name, after.Placements)
		if rec, ok := c.prior.Dataflows[name]; ok {
			c.changeDataflow(rec, after, byNode)
		} else {
			c.newDataflow(after, byNode)
		}
	}
	return errs
}

func (c *computer) stopDataflow(rec state.Dataflow) {
	reason := "dataflow is no longer in the configuration"
	if c.desired.Destroy {
		reason = "destroy: everything adora deployed is removed"
	}
	if _, running, known := c.running(rec.Name); known && !running {
		// A dataflow that finished by itself already meets the goal of a
		// stop: apply records it stopped.
		reason += " (it is not running any more: only the record is removed)"
	}
	c.add(Change{Address: state.DataflowAddr(rec.Name), Kind: KindDataflow, Name: rec.Name, Action: Stop, Reason: reason})
	for node, m := range rec.Placements {
		c.add(Change{Address: state.NodeAddr(rec.Name, node), Kind: KindNode, Name: node, Dataflow: rec.Name,
			Action: Stop, Reason: "stopped with its dataflow", Diffs: []Diff{{Field: "machine", Before: m}}})
	}
}

// newDataflow starts a dataflow the state does not record, or restarts it
// from the configuration when the coordinator already runs one of that
// name (started by hand or by another tool).
func (c *computer) newDataflow(after state.Dataflow, byNode map[string]Placement) {
	obs, running, _ := c.running(after.Name)
	if !running {
		c.startDataflow(after, byNode, Start, "dataflow is new")
		return
	}
	after.UUID = obs.UUID
	c.startDataflow(after, byNode, Restart, "a dataflow of this name runs but adora has no record of it: it is restarted from the configuration")
}

// startDataflow adds the dataflow change (Start, or Restart of a run the
// state does not record) and a Start per node with its placement.
func (c *computer) startDataflow(after state.Dataflow, byNode map[string]Placement, action Action, reason string) {
	c.add(Change{Address: state.DataflowAddr(after.Name), Kind: KindDataflow, Name: after.Name, Action: action,
		Reason: reason, DataflowAfter: &after})
	for _, node := range slices.Sorted(maps.Keys(after.Placements)) {
		pl := byNode[node]
		c.add(Change{Address: state.NodeAddr(after.Name, node), Kind: KindNode, Name: node, Dataflow: after.Name,
			Action: Start, Reason: placementReason(pl), Placement: &pl,
			Diffs: []Diff{{Field: "machine", After: pl.Machine}}})
	}
}

// running returns the observed run of a dataflow; known is false when the
// coordinator was not asked.
func (c *computer) running(name string) (obs state.DataflowObservation, running, known bool) {
	if c.observed == nil || !c.observed.CoordinatorReachable {
		return obs, false, false
	}
	obs, running = c.observed.Dataflows[name]
	return obs, running, true
}

// artifacts is the desired artifacts of dataflow name: one per delivered
// node, on the machine it is placed on, sorted by node; nil when the
// desired state does not say (the recorded ones are kept).
func (c *computer) artifacts(name string, placements map[string]string) []state.Artifact {
	sums, ok := c.desired.NodeBinaries[name]
	if !ok {
		return nil
	}
	out := []state.Artifact{}
	for _, node := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, state.Artifact{Node: node, Machine: placements[node], SHA256: sums[node]})
	}
	return out
}

// artifactChanges lists the nodes whose delivered binary changed between
// the recorded and the desired artifacts, with their sha256 before and
// after.
func artifactChanges(recorded, desired []state.Artifact) ([]string, []Diff) {
	before := map[string]string{}
	for _, a := range recorded {
		before[a.Node] = a.SHA256
	}
	var reasons []string
	var diffs []Diff
	for _, a := range desired {
		// A node with no recorded artifact (a state from before artifacts
		// were recorded, or a node that just became delivered, which
		// changes the descriptor anyway) is not a reason on its own.
		if was, ok := before[a.Node]; ok && was != a.SHA256 {
			reasons = append(reasons, fmt.Sprintf("node %s binary changed", a.Node))
			diffs = append(diffs, Diff{Field: "node " + a.Node + " binary", Before: short(was), After: short(a.SHA256)})
		}
	}
	return reasons, diffs
}

func (c *computer) changeDataflow(rec, after state.Dataflow, byNode map[string]Placement) {
	after.UUID = rec.UUID
	if after.Artifacts == nil {
		after.Artifacts = rec.Artifacts
	}
	current := rec.Placements
	obs, running, known := c.running(rec.Name)
	if known && !running {
		after.UUID = ""
		c.startDataflow(after, byNode, Start, "dataflow is not running (drift): start it again")
		return
	}
	if running {
		current = obs.Placements
	}
	var reasons []string
	var diffs []Diff
	if rec.DescriptorHash != after.DescriptorHash {
		reasons = append(reasons, "descriptor changed")
		diffs = append(diffs, Diff{Field: "descriptor", Before: short(rec.DescriptorHash), After: short(after.DescriptorHash)})
	}
	if _, ok := c.desired.NodeBinaries[rec.Name]; ok {
		r, d := artifactChanges(rec.Artifacts, after.Artifacts)
		reasons = append(reasons, r...)
		diffs = append(diffs, d...)
	}
	var nodes []Change
	for _, node := range sortedUnion(current, after.Placements) {
		before, was := current[node]
		m, is := after.Placements[node]
		addr := state.NodeAddr(rec.Name, node)
		pl := byNode[node]
		switch {
		case !is:
			nodes = append(nodes, Change{Address: addr, Kind: KindNode, Name: node, Dataflow: rec.Name, Action: Stop,
				Reason: "node removed from the dataflow", Diffs: []Diff{{Field: "machine", Before: before}}})
		case !was:
			nodes = append(nodes, Change{Address: addr, Kind: KindNode, Name: node, Dataflow: rec.Name, Action: Start,
				Reason: placementReason(pl), Placement: &pl, Diffs: []Diff{{Field: "machine", After: m}}})
		case before != m:
			nodes = append(nodes, Change{Address: addr, Kind: KindNode, Name: node, Dataflow: rec.Name, Action: Move,
				Reason: placementReason(pl), Placement: &pl, Diffs: []Diff{{Field: "machine", Before: before, After: m}}})
			reasons = append(reasons, fmt.Sprintf("node %s moves from %s to %s", node, before, m))
		default:
			nodes = append(nodes, Change{Address: addr, Kind: KindNode, Name: node, Dataflow: rec.Name, Action: NoOp,
				Placement: &pl})
		}
	}
	ch := Change{Address: state.DataflowAddr(rec.Name), Kind: KindDataflow, Name: rec.Name, Action: NoOp,
		DataflowAfter: &after, Diffs: diffs}
	if len(reasons) > 0 {
		ch.Action = Restart
		ch.Reason = joinReasons(reasons)
	}
	c.add(ch)
	for _, n := range nodes {
		c.add(n)
	}
}

func (c *computer) dataflowDrift(rec state.Dataflow) {
	obs, running, known := c.running(rec.Name)
	addr := state.DataflowAddr(rec.Name)
	if !known {
		return
	}
	if !running {
		c.drift(addr, "running", "true", "false")
		return
	}
	if rec.UUID != "" && obs.UUID != rec.UUID {
		c.drift(addr, "uuid", rec.UUID, obs.UUID)
	}
	for _, node := range sortedUnion(rec.Placements, obs.Placements) {
		if rec.Placements[node] != obs.Placements[node] {
			c.drift(state.NodeAddr(rec.Name, node), "machine", orNone(rec.Placements[node]), orNone(obs.Placements[node]))
		}
	}
}

func placementReason(pl Placement) string {
	if pl.Rule == "" {
		return "placed on " + pl.Machine
	}
	return fmt.Sprintf("placed on %s (%s)", pl.Machine, pl.Rule)
}

func joinReasons(r []string) string {
	s := r[0]
	for _, x := range r[1:] {
		s += "; " + x
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func sortedUnion(a, b map[string]string) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
