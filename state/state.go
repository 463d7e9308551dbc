// Package state owns adora's record of what it deployed: the machines it
// installed daemons on, the dataflows it started and where their nodes run.
// State is plain data. It is persisted by a Backend (statefile/ for the
// local file, the coordinator's store for a shared one) and compared with
// Observed (what a refresh saw) and the desired configuration by plan/.
package state

import (
	"maps"
	"sort"

	"github.com/google/uuid"
)

// FormatVersion is the version of the persisted state layout. A reader
// upgrades older layouts and refuses newer ones.
const FormatVersion = 1

// DaemonMode is how a machine's daemon is run.
type DaemonMode string

const (
	// AdHoc daemons are processes started by adora itself (the default
	// one-machine cluster and development setups).
	AdHoc DaemonMode = "adhoc"
	// Systemd daemons run as a systemd service installed over SSH.
	Systemd DaemonMode = "systemd"
)

// State is what adora last deployed. Lineage is minted once when a state is
// created and never changes; Serial grows on every persisted write. Both
// identify the exact state a saved plan was made against.
type State struct {
	FormatVersion int                 `json:"format_version"`
	Lineage       string              `json:"lineage"`
	Serial        uint64              `json:"serial"`
	AdoraVersion  string              `json:"adora_version"`
	Coordinator   Coordinator         `json:"coordinator"`
	Machines      map[string]Machine  `json:"machines"`
	Dataflows     map[string]Dataflow `json:"dataflows"`
}

// Coordinator is where the deployed coordinator listens.
type Coordinator struct {
	Addr string `json:"addr"`
	Port int    `json:"port"`
}

// Machine is one machine adora installed a daemon on.
type Machine struct {
	ID              string            `json:"id"`
	Host            string            `json:"host"`
	User            string            `json:"user,omitempty"` // SSH user and port, to reach the machine after it left cluster.yml
	Port            int               `json:"port,omitempty"`
	DaemonMode      DaemonMode        `json:"daemon_mode"`
	UnitHash        string            `json:"unit_hash,omitempty"`
	RunAs           string            `json:"run_as,omitempty"` // the user the systemd daemon runs as
	BinaryVersion   string            `json:"binary_version"`
	BinarySHA256    string            `json:"binary_sha256"`
	Labels          map[string]string `json:"labels,omitempty"`
	CoordinatorAddr string            `json:"coordinator_addr"`
}

// Dataflow is one dataflow adora started.
type Dataflow struct {
	Name           string            `json:"name"`
	DescriptorHash string            `json:"descriptor_hash"`
	UUID           string            `json:"uuid,omitempty"`
	Placements     map[string]string `json:"placements"` // node ID -> machine ID
	Artifacts      []Artifact        `json:"artifacts,omitempty"`
}

// Artifact is a node binary delivered to a machine, by content.
type Artifact struct {
	Node    string `json:"node"`
	Machine string `json:"machine"`
	SHA256  string `json:"sha256"`
}

// New returns an empty state with a fresh lineage.
func New(adoraVersion string) *State {
	return &State{
		FormatVersion: FormatVersion,
		Lineage:       uuid.NewString(),
		AdoraVersion:  adoraVersion,
		Machines:      map[string]Machine{},
		Dataflows:     map[string]Dataflow{},
	}
}

// Clone returns a deep copy of s; a nil s clones to nil.
func (s *State) Clone() *State {
	if s == nil {
		return nil
	}
	c := *s
	c.Machines = make(map[string]Machine, len(s.Machines))
	for id, m := range s.Machines {
		m.Labels = maps.Clone(m.Labels)
		c.Machines[id] = m
	}
	c.Dataflows = make(map[string]Dataflow, len(s.Dataflows))
	for name, d := range s.Dataflows {
		d.Placements = maps.Clone(d.Placements)
		d.Artifacts = append([]Artifact(nil), d.Artifacts...)
		c.Dataflows[name] = d
	}
	return &c
}

// Empty reports whether s records nothing deployed.
func (s *State) Empty() bool {
	return s == nil || (len(s.Machines) == 0 && len(s.Dataflows) == 0)
}

// Addresses lists every resource address s records, sorted: machine.ID,
// dataflow.NAME and dataflow.NAME.node.ID.
func (s *State) Addresses() []string {
	if s == nil {
		return nil
	}
	var out []string
	for id := range s.Machines {
		out = append(out, MachineAddr(id))
	}
	for name, d := range s.Dataflows {
		out = append(out, DataflowAddr(name))
		for node := range d.Placements {
			out = append(out, NodeAddr(name, node))
		}
	}
	sort.Strings(out)
	return out
}

// MachineAddr is the address of a machine resource.
func MachineAddr(id string) string { return "machine." + id }

// DataflowAddr is the address of a dataflow resource.
func DataflowAddr(name string) string { return "dataflow." + name }

// NodeAddr is the address of one node of a dataflow.
func NodeAddr(dataflow, node string) string { return "dataflow." + dataflow + ".node." + node }
