// Package placement decides which daemon runs each node of a dataflow. It is
// a pure function of the nodes and the daemons: no network, disk or clock,
// and the same input always gives the same decisions. The coordinator uses
// it with the daemons connected right now; adora plan uses it with the
// machines of cluster.yml (DaemonsFromCluster).
//
// The rules, in priority order, follow the deployment guide:
//
//	_unstable_deploy.machine set  -> the daemon with that machine id      (ByMachine)
//	_unstable_deploy.labels set   -> the first daemon whose labels ⊇ them (ByLabels)
//	neither                       -> the first unnamed daemon             (Unnamed)
//	neither, no unnamed daemon    -> the first daemon                     (Default)
//
// "First" is in this order: unnamed daemons first, then by machine id, ties
// broken by daemon id. The Default rule is ours: upstream fails such nodes
// when every daemon has a machine id, which is what every managed cluster
// looks like.
package placement

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/adora-rs/adora/config"
)

// Daemon is a daemon a node can be placed on. MachineID "" means an unnamed
// daemon (started without a machine id).
type Daemon struct {
	ID        string
	MachineID string
	Labels    map[string]string
}

// Rule is the placement rule that decided a node's daemon.
type Rule string

const (
	ByMachine Rule = "machine"
	ByLabels  Rule = "labels"
	Unnamed   Rule = "unnamed"
	// Default: the node asks for nothing and no daemon is unnamed, so it
	// goes to the first daemon in order.
	Default Rule = "default"
)

// Refusal says why a daemon was passed over for a node.
type Refusal struct {
	DaemonID  string
	MachineID string
	Reason    string
}

// Decision is where one node runs and why. A node that cannot be placed has
// an empty DaemonID; Refused then says why each daemon was refused. Refused
// holds at most MaxRefusals entries naming a daemon; when more daemons were
// refused, one last entry with an empty DaemonID counts the rest. Refused
// slices may be shared between decisions: treat them as read-only.
type Decision struct {
	Node      string
	DaemonID  string
	MachineID string
	Rule      Rule
	Refused   []Refusal
}

// MaxRefusals bounds the per-daemon refusals recorded in a Decision, so a
// fleet of thousands of daemons does not cost thousands of reasons per node.
const MaxRefusals = 32

// Placed reports whether the node got a daemon.
func (d Decision) Placed() bool { return d.DaemonID != "" }

// String explains d in one line, for people.
func (d Decision) String() string {
	if !d.Placed() {
		return fmt.Sprintf("%s: not placed (%s rule)", d.Node, d.Rule)
	}
	target := d.DaemonID
	if d.MachineID != "" && d.MachineID != d.DaemonID {
		target = fmt.Sprintf("%s (machine %s)", d.DaemonID, d.MachineID)
	}
	switch d.Rule {
	case ByMachine:
		return fmt.Sprintf("%s -> %s: requested machine", d.Node, target)
	case ByLabels:
		return fmt.Sprintf("%s -> %s: first daemon with the requested labels", d.Node, target)
	case Unnamed:
		return fmt.Sprintf("%s -> %s: first unnamed daemon", d.Node, target)
	}
	return fmt.Sprintf("%s -> %s: no placement requested and no unnamed daemon, so the first daemon", d.Node, target)
}

// Order returns a copy of daemons in placement order: unnamed first, then by
// machine id, ties broken by daemon id.
func Order(daemons []Daemon) []Daemon {
	out := append([]Daemon(nil), daemons...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.MachineID == "") != (b.MachineID == "") {
			return a.MachineID == ""
		}
		if a.MachineID != b.MachineID {
			return a.MachineID < b.MachineID
		}
		return a.ID < b.ID
	})
	return out
}

// labelResult is the outcome of one label requirement, shared by every
// node with the same requirement.
type labelResult struct {
	index   int // -1 when no daemon matches
	refused []Refusal
}

// placer holds the indexes built once per Place call.
type placer struct {
	daemons   []Daemon
	byMachine map[string]int
	unnamed   int // -1 when none
	labels    map[string]labelResult
	// byLabel lists, for each "key=value", the indexes of the daemons
	// carrying that label, in placement order.
	byLabel map[string][]int
	// noMachine is the refusal list of a machine request nobody matches;
	// it does not depend on the machine asked for.
	noMachine []Refusal
}

// Place decides a daemon for every node. Decisions come out sorted by node
// id, one per node, including nodes that cannot be placed. The error joins
// one error per unplaced node, using the guide's wording:
//
//	node "camera": no matching daemon for machine id "robot"
//	node "inference": no daemon matches labels {"gpu": "true"}
//
// Place runs in O(D log D + N·L) for N nodes, D daemons and L distinct
// label requirements' scans, and never modifies its arguments.
func Place(nodes []config.Node, daemons []Daemon) ([]Decision, error) {
	p := newPlacer(daemons)
	out := make([]Decision, len(nodes))
	var errs []error
	for i := range nodes {
		d, err := p.place(&nodes[i])
		out[i] = d
		if err != nil {
			errs = append(errs, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	if len(errs) > 1 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	}
	return out, errors.Join(errs...)
}

func newPlacer(daemons []Daemon) *placer {
	p := &placer{
		daemons:   Order(daemons),
		byMachine: make(map[string]int),
		unnamed:   -1,
		labels:    make(map[string]labelResult),
		byLabel:   make(map[string][]int),
	}
	for i, d := range p.daemons {
		for k, v := range d.Labels {
			p.byLabel[k+"="+v] = append(p.byLabel[k+"="+v], i)
		}
		if d.MachineID == "" {
			if p.unnamed < 0 {
				p.unnamed = i
			}
			continue
		}
		if _, ok := p.byMachine[d.MachineID]; !ok {
			p.byMachine[d.MachineID] = i
		}
	}
	return p
}

func (p *placer) decision(node string, i int, r Rule) Decision {
	d := p.daemons[i]
	return Decision{Node: node, DaemonID: d.ID, MachineID: d.MachineID, Rule: r}
}

func (p *placer) place(n *config.Node) (Decision, error) {
	switch {
	case n.Deploy.Machine != "":
		if i, ok := p.byMachine[n.Deploy.Machine]; ok {
			return p.decision(n.ID, i, ByMachine), nil
		}
		if p.noMachine == nil {
			p.noMachine = p.refuseAll(func(d Daemon) string {
				if d.MachineID == "" {
					return "unnamed daemon"
				}
				return fmt.Sprintf("machine id is %q", d.MachineID)
			})
		}
		d := Decision{Node: n.ID, Rule: ByMachine, Refused: p.noMachine}
		return d, fmt.Errorf("node %q: no matching daemon for machine id %q", n.ID, n.Deploy.Machine)
	case len(n.Deploy.Labels) > 0:
		res := p.byLabels(n.Deploy.Labels)
		if res.index < 0 {
			d := Decision{Node: n.ID, Rule: ByLabels, Refused: res.refused}
			return d, fmt.Errorf("node %q: no daemon matches labels %s", n.ID, config.FormatLabels(n.Deploy.Labels))
		}
		d := p.decision(n.ID, res.index, ByLabels)
		d.Refused = res.refused
		return d, nil
	case p.unnamed >= 0:
		return p.decision(n.ID, p.unnamed, Unnamed), nil
	case len(p.daemons) > 0:
		return p.decision(n.ID, 0, Default), nil
	}
	return Decision{Node: n.ID, Rule: Unnamed}, fmt.Errorf("node %q: no daemon to run it on", n.ID)
}

// refuseAll records why every daemon was refused, within MaxRefusals.
func (p *placer) refuseAll(reason func(Daemon) string) []Refusal {
	return p.refuseBefore(len(p.daemons), reason)
}

// refuseBefore records why the daemons before index end were refused:
// the first MaxRefusals by name, then a count of the rest.
func (p *placer) refuseBefore(end int, reason func(Daemon) string) []Refusal {
	if end == 0 {
		return nil
	}
	n := min(end, MaxRefusals)
	out := make([]Refusal, 0, n+1)
	for _, d := range p.daemons[:n] {
		out = append(out, Refusal{DaemonID: d.ID, MachineID: d.MachineID, Reason: reason(d)})
	}
	if end > n {
		out = append(out, Refusal{Reason: fmt.Sprintf("%d more daemons refused for the same kinds of reasons", end-n)})
	}
	return out
}

// byLabels finds the first daemon whose labels are a superset of want,
// recording why each daemon before it was refused. Candidates come from the
// shortest posting list of the required labels, so a selective label makes
// the search cheap whatever the fleet size. Results are cached per
// requirement.
func (p *placer) byLabels(want map[string]string) labelResult {
	key := config.FormatLabels(want)
	if res, ok := p.labels[key]; ok {
		return res
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var shortest []int
	for i, k := range keys {
		list := p.byLabel[k+"="+want[k]]
		if i == 0 || len(list) < len(shortest) {
			shortest = list
		}
	}
	res := labelResult{index: -1}
	for _, i := range shortest {
		if config.LabelsMatch(p.daemons[i].Labels, want) {
			res.index = i
			break
		}
	}
	end := res.index
	if end < 0 {
		end = len(p.daemons)
	}
	res.refused = p.refuseBefore(end, func(d Daemon) string { return mismatch(d.Labels, want, keys) })
	p.labels[key] = res
	return res
}

// mismatch says which required labels have lacks, or "" when it has all.
func mismatch(have, want map[string]string, keys []string) string {
	var why []string
	for _, k := range keys {
		v, ok := have[k]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("no label %q", k))
		case v != want[k]:
			why = append(why, fmt.Sprintf("label %q is %q, not %q", k, v, want[k]))
		}
	}
	return strings.Join(why, "; ")
}

// DaemonsFromCluster returns one named daemon per machine of c, with the
// machine id as daemon id: what a fully started cluster looks like, for
// planning without a live coordinator.
func DaemonsFromCluster(c *config.Cluster) []Daemon {
	out := make([]Daemon, len(c.Machines))
	for i, m := range c.Machines {
		var labels map[string]string
		if len(m.Labels) > 0 {
			labels = make(map[string]string, len(m.Labels))
			for k, v := range m.Labels {
				labels[k] = v
			}
		}
		out[i] = Daemon{ID: m.ID, MachineID: m.ID, Labels: labels}
	}
	return out
}
