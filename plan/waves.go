package plan

import (
	"slices"

	"github.com/adora-rs/adora/state"
)

// rolling reports whether a machine change restarts its daemon while
// other machines keep running, and so goes in a rolling wave.
func rolling(c Change) bool {
	return c.Kind == KindMachine && (c.Action == Upgrade || c.Action == Reconfigure)
}

// assignWaves groups rolling machine changes, in address order, into
// waves of parallelism machines (default 1).
func assignWaves(p *Plan, parallelism int) {
	if parallelism < 1 {
		parallelism = 1
	}
	p.Waves = nil
	n := 0
	for i := range p.Changes {
		c := &p.Changes[i]
		c.Wave = 0
		if !rolling(*c) {
			continue
		}
		if n%parallelism == 0 {
			p.Waves = append(p.Waves, Wave{Index: len(p.Waves) + 1})
		}
		w := &p.Waves[len(p.Waves)-1]
		w.Machines = append(w.Machines, c.Name)
		c.Wave = w.Index
		n++
	}
}

// Parallelism returns the wave size p was planned with (1 when it has no
// waves).
func (p *Plan) Parallelism() int {
	n := 1
	for _, w := range p.Waves {
		n = max(n, len(w.Machines))
	}
	return n
}

// Filter returns a copy of p restricted to the changes keep accepts, with
// waves recomputed (same wave size). The cluster commands use it to run
// the apply executor on part of a plan, e.g. only upgrades.
func Filter(p *Plan, keep func(Change) bool) *Plan {
	q := *p
	q.Changes = slices.DeleteFunc(slices.Clone(p.Changes), func(c Change) bool { return !keep(c) })
	q.Preconditions = slices.DeleteFunc(slices.Clone(p.Preconditions), func(pc Precondition) bool {
		c, ok := q.Change(pc.Address)
		return !ok || c.Action == NoOp
	})
	assignWaves(&q, p.Parallelism())
	return &q
}

// OnlyActions is a Filter predicate keeping changes with one of actions.
func OnlyActions(actions ...Action) func(Change) bool {
	return func(c Change) bool { return slices.Contains(actions, c.Action) }
}

// OnlyMachines is a Filter predicate keeping machine changes.
func OnlyMachines(c Change) bool { return c.Kind == KindMachine }

// preconditions records, for each change apply will act on, the live
// facts it relies on, from the observation the plan saw.
func (c *computer) preconditions() []Precondition {
	if c.observed == nil {
		return nil
	}
	var out []Precondition
	for _, ch := range c.p.Changes {
		if ch.Action == NoOp {
			continue
		}
		switch ch.Kind {
		case KindMachine:
			obs, ok := c.observed.Machines[ch.Name]
			if !ok {
				continue
			}
			out = append(out, Precondition{Address: ch.Address, Field: "reachable", Value: boolString(obs.Reachable)})
			if obs.Reachable {
				out = append(out,
					Precondition{Address: ch.Address, Field: "binary_sha256", Value: obs.BinarySHA256},
					Precondition{Address: ch.Address, Field: "daemon_running", Value: boolString(obs.DaemonRunning())})
			}
		case KindDataflow:
			if !c.observed.CoordinatorReachable {
				continue
			}
			obs := c.observed.Dataflows[ch.Name]
			out = append(out, Precondition{Address: ch.Address, Field: "running_uuid", Value: obs.UUID})
		}
	}
	return out
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// Violation is a precondition that no longer holds.
type Violation struct {
	Precondition
	Now string `json:"now"`
}

func (v Violation) String() string {
	return v.Address + ": " + v.Field + " was " + quoteEmpty(v.Value) + " when planned, now " + quoteEmpty(v.Now)
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// CheckPreconditions compares p's preconditions with a fresh observation
// and returns those that no longer hold, in plan order.
func CheckPreconditions(p *Plan, now *state.Observed) []Violation {
	var out []Violation
	for _, pc := range p.Preconditions {
		v := observedFact(now, pc)
		if v != pc.Value {
			out = append(out, Violation{Precondition: pc, Now: v})
		}
	}
	return out
}

func observedFact(o *state.Observed, pc Precondition) string {
	if o == nil {
		return "(not observed)"
	}
	if c, ok := machineName(pc.Address); ok {
		obs, seen := o.Machines[c]
		if !seen {
			return "(not observed)"
		}
		switch pc.Field {
		case "reachable":
			return boolString(obs.Reachable)
		case "binary_sha256":
			return obs.BinarySHA256
		case "daemon_running":
			return boolString(obs.DaemonRunning())
		}
		return "(unknown field)"
	}
	if pc.Field == "running_uuid" {
		if !o.CoordinatorReachable {
			return "(coordinator unreachable)"
		}
		name := pc.Address[len("dataflow."):]
		return o.Dataflows[name].UUID
	}
	return "(unknown field)"
}

func machineName(addr string) (string, bool) {
	const prefix = "machine."
	if len(addr) > len(prefix) && addr[:len(prefix)] == prefix {
		return addr[len(prefix):], true
	}
	return "", false
}
