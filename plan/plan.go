// Package plan computes what adora must change to turn the recorded state
// into the desired configuration: a Plan of typed changes, sorted by
// address, with reasons for people, drift found by refresh, the rolling
// upgrade waves and the preconditions apply re-checks. Planning is pure:
// Compute reads no network, disk or clock.
package plan

import (
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/state"
)

// FormatVersion is the version of the Plan data (the plan file and the
// JSON rendering). Minor versions add fields; a major bump breaks.
const FormatVersion = "1.0"

// Action is what apply does to one resource. Apply acts on Action only;
// Reason explains it to people.
type Action string

const (
	Install     Action = "install"     // machine: install and start a daemon
	Uninstall   Action = "uninstall"   // machine: stop and remove the daemon
	Upgrade     Action = "upgrade"     // machine: new adora binary, daemon restarted
	Reconfigure Action = "reconfigure" // machine: labels, coordinator or unit changed; daemon restarted
	Start       Action = "start"       // dataflow or node: start
	Restart     Action = "restart"     // dataflow: stop and start (descriptor or placement changed)
	Stop        Action = "stop"        // dataflow or node: stop
	Move        Action = "move"        // node: placed on another machine (done by its dataflow's restart)
	NoOp        Action = "no-op"
)

// Kind is the type of resource a change is about.
type Kind string

const (
	KindMachine  Kind = "machine"
	KindDataflow Kind = "dataflow"
	KindNode     Kind = "node"
)

// Plan is the outcome of Compute. It carries everything apply needs (the
// desired configuration snapshot and binary), so a saved plan is applied
// exactly as reviewed.
type Plan struct {
	FormatVersion string `json:"format_version"`
	AdoraVersion  string `json:"adora_version"`
	// Prior identifies the state the plan was computed against.
	Prior StateRef `json:"prior_state"`
	// Refreshed is true when the plan saw live observations.
	Refreshed bool `json:"refreshed"`
	// Destroy is true for a plan that removes everything.
	Destroy bool `json:"destroy,omitempty"`

	Changes       []Change       `json:"changes"` // sorted by address
	Waves         []Wave         `json:"waves,omitempty"`
	Drift         []Drift        `json:"drift,omitempty"`
	Preconditions []Precondition `json:"preconditions,omitempty"`
	Targets       []string       `json:"targets,omitempty"`
	Excludes      []string       `json:"excludes,omitempty"`

	Coordinator state.Coordinator           `json:"coordinator"`
	Binary      Binary                      `json:"binary"`
	Cluster     *config.Cluster             `json:"cluster,omitempty"`
	Dataflows   map[string]*config.Dataflow `json:"dataflows,omitempty"`
}

// StateRef names one persisted state: lineage and serial.
type StateRef struct {
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
}

// Binary is the adora binary to deploy on machines.
type Binary struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Path    string `json:"path,omitempty"`
}

// Change is one planned change to one resource.
type Change struct {
	Address  string `json:"address"`
	Kind     Kind   `json:"kind"`
	Name     string `json:"name"` // machine ID, dataflow name or node ID
	Dataflow string `json:"dataflow,omitempty"`
	Action   Action `json:"action"`
	Reason   string `json:"reason,omitempty"`
	Diffs    []Diff `json:"diffs,omitempty"`
	Wave     int    `json:"wave,omitempty"` // 1-based rolling wave of a machine upgrade/reconfigure
	// Placement is where a node runs and why (node changes only).
	Placement *Placement `json:"placement,omitempty"`
	Warnings  []string   `json:"warnings,omitempty"`
	// MachineAfter / DataflowAfter are the state records once the change
	// is done (nil when the resource goes away).
	MachineAfter  *state.Machine  `json:"machine_after,omitempty"`
	DataflowAfter *state.Dataflow `json:"dataflow_after,omitempty"`
}

// Diff is one field that differs between the current and desired value.
type Diff struct {
	Field  string `json:"field"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// Wave is one step of a rolling machine change: its machines change
// together, and the next wave starts when their daemons are back.
type Wave struct {
	Index    int      `json:"index"`
	Machines []string `json:"machines"`
}

// Drift is a recorded fact a refresh found different on the live cluster.
type Drift struct {
	Address  string `json:"address"`
	Field    string `json:"field"`
	Recorded string `json:"recorded"`
	Observed string `json:"observed"`
}

// Precondition is a live fact a planned change relies on; apply of a saved
// plan re-observes and refuses the plan when it no longer holds.
type Precondition struct {
	Address string `json:"address"`
	Field   string `json:"field"`
	Value   string `json:"value"`
}

// Placement is the machine a node is placed on, the rule that chose it and
// why each other machine was refused.
type Placement struct {
	Node    string    `json:"node"`
	Machine string    `json:"machine"`
	Rule    string    `json:"rule"`
	Refused []Refusal `json:"refused,omitempty"`
}

// Refusal says why a machine was not chosen for a node.
type Refusal struct {
	Machine string `json:"machine"`
	Reason  string `json:"reason"`
}

// Empty reports whether the plan changes nothing and saw no drift.
func (p *Plan) Empty() bool { return !p.HasChanges() && len(p.Drift) == 0 }

// HasChanges reports whether any change is not a no-op.
func (p *Plan) HasChanges() bool {
	for _, c := range p.Changes {
		if c.Action != NoOp {
			return true
		}
	}
	return false
}

// Change returns the change at addr.
func (p *Plan) Change(addr string) (Change, bool) {
	for _, c := range p.Changes {
		if c.Address == addr {
			return c, true
		}
	}
	return Change{}, false
}

// Summary counts changes by action.
type Summary struct {
	Install     int `json:"install"`
	Upgrade     int `json:"upgrade"`
	Reconfigure int `json:"reconfigure"`
	Uninstall   int `json:"uninstall"`
	Start       int `json:"start"`
	Restart     int `json:"restart"`
	Stop        int `json:"stop"`
	Move        int `json:"move"`
	Drift       int `json:"drift"`
}

// Summarize counts p's changes: machine actions, dataflow actions, node
// moves and drift items.
func (p *Plan) Summarize() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch {
		case c.Kind == KindMachine && c.Action == Install:
			s.Install++
		case c.Kind == KindMachine && c.Action == Upgrade:
			s.Upgrade++
		case c.Kind == KindMachine && c.Action == Reconfigure:
			s.Reconfigure++
		case c.Kind == KindMachine && c.Action == Uninstall:
			s.Uninstall++
		case c.Kind == KindDataflow && c.Action == Start:
			s.Start++
		case c.Kind == KindDataflow && c.Action == Restart:
			s.Restart++
		case c.Kind == KindDataflow && c.Action == Stop:
			s.Stop++
		case c.Kind == KindNode && c.Action == Move:
			s.Move++
		}
	}
	s.Drift = len(p.Drift)
	return s
}
