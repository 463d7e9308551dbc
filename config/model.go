// Package config owns adora's desired-state model: the cluster (cluster.yml
// or cluster.hcl) and dataflows (YAML or HCL), decoded into typed values with
// diagnostics that carry file:line:col.
//
// The types in this file are the contract every other package reads. They
// are plain data: no methods with side effects, safe to copy, and equal
// values compare equal with reflect.DeepEqual regardless of the syntax they
// were decoded from (positions excepted: compare with Pos fields zeroed, see
// StripPositions).
package config

import "time"

// DefaultCoordinatorPort is the coordinator's WebSocket control-plane port.
const DefaultCoordinatorPort = 6013

// DefaultSSHPort is used when neither a machine nor the defaults set one.
const DefaultSSHPort = 22

// Pos is a position in a source file. The zero Pos means "unknown".
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// Cluster is the decoded cluster.yml: where the coordinator runs, the
// machines of the fleet and the dataflows this cluster should run.
type Cluster struct {
	// Source is the path the cluster was read from ("" for the embedded
	// default).
	Source      string        `json:"source,omitempty"`
	Coordinator Coordinator   `json:"coordinator"`
	SSH         SSHDefaults   `json:"ssh,omitempty"`
	Machines    []Machine     `json:"machines"`
	Dataflows   []DataflowRef `json:"dataflows,omitempty"`
}

// Coordinator says where the coordinator listens. Addr is an IP address or
// a hostname.
type Coordinator struct {
	Addr string `json:"addr"`
	Port int    `json:"port"`
	// where addr is set (else the coordinator section)
	Pos Pos `json:"-"`
}

// SSHDefaults apply to every machine that does not set its own value.
type SSHDefaults struct {
	User         string `json:"user,omitempty"`
	Port         int    `json:"port,omitempty"`
	IdentityFile string `json:"identity_file,omitempty"`
}

// Machine is one host of the fleet. ID and label keys/values are restricted
// to a safe character set (see ValidID) because they end up in systemd unit
// names and remote commands.
type Machine struct {
	ID           string            `json:"id"`
	Host         string            `json:"host"`
	User         string            `json:"user,omitempty"`
	Port         int               `json:"port,omitempty"`
	IdentityFile string            `json:"identity_file,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// Local marks the machine adora runs on: it is managed directly (local
	// processes and files), without SSH. The embedded default cluster has
	// one such machine.
	Local bool `json:"local,omitempty"`
	// RunAs is the user the machine's systemd daemon, and so every node it
	// spawns, runs as (run_as in the cluster file). Empty means the
	// machine's SSH user; "root" is an explicit opt-in to root. Checked by
	// ValidUserName.
	RunAs string `json:"run_as,omitempty"`
	// the machine's entry
	Pos Pos `json:"-"`
}

// DataflowRef names a dataflow the cluster should run. Path is relative to
// the cluster file's directory unless absolute. LoadProject loads it.
type DataflowRef struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// Dataflow is set, and Path empty, for a dataflow written inline in the
	// cluster file (nodes: under the list entry, or node blocks in HCL).
	Dataflow *Dataflow `json:"dataflow,omitempty"`
	// the list entry
	Pos Pos `json:"-"`
}

// Dataflow is a decoded dataflow descriptor.
type Dataflow struct {
	Source string            `json:"source,omitempty"`
	Env    map[string]string `json:"env,omitempty"` // merged into every node; node keys win
	Nodes  []Node            `json:"nodes"`
}

// Node is one node of a dataflow: a process the daemon spawns.
type Node struct {
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Path        string            `json:"path"`
	Args        []string          `json:"args,omitempty"` // split with shell-like quoting when given as a string
	Env         map[string]string `json:"env,omitempty"`
	Build       string            `json:"build,omitempty"`  // one command per line
	Inputs      []Input           `json:"inputs,omitempty"` // sorted by ID
	Outputs     []string          `json:"outputs,omitempty"`
	Restart     RestartPolicy     `json:"restart"`
	Deploy      Deploy            `json:"deploy"`
	// the node's entry
	Pos Pos `json:"-"`
}

// Input connects one input of a node to an output of another node or to a
// built-in timer.
type Input struct {
	ID           string        `json:"id"`
	Source       Source        `json:"source"`
	QueueSize    int           `json:"queue_size"`   // default DefaultQueueSize
	QueuePolicy  QueuePolicy   `json:"queue_policy"` // default DropOldest
	InputTimeout time.Duration `json:"input_timeout,omitempty"`
	// the source value
	Pos Pos `json:"-"`
}

// DefaultQueueSize is the per-input queue length when none is given.
const DefaultQueueSize = 10

// Source is where an input's messages come from: either Node/Output, or a
// timer (Timer > 0, Node == "adora", Output the timer spec such as
// "timer/millis/100").
type Source struct {
	Node   string        `json:"node"`
	Output string        `json:"output"`
	Timer  time.Duration `json:"timer,omitempty"`
}

// IsTimer reports whether s is a built-in timer.
func (s Source) IsTimer() bool { return s.Timer > 0 }

// String renders s the way it is written in a dataflow: "node/output".
func (s Source) String() string { return s.Node + "/" + s.Output }

// QueuePolicy decides what happens when an input queue is full.
type QueuePolicy string

const (
	DropOldest   QueuePolicy = "drop_oldest"
	Backpressure QueuePolicy = "backpressure"
)

// RestartMode is a node's restart_policy.
type RestartMode string

const (
	RestartNever     RestartMode = "never"
	RestartOnFailure RestartMode = "on-failure"
	RestartAlways    RestartMode = "always"
)

// RestartPolicy says whether and how the daemon restarts an exited node.
// Zero durations mean "not set": no delay, no cap, no window.
type RestartPolicy struct {
	Mode            RestartMode   `json:"mode"`                   // default RestartNever
	MaxRestarts     int           `json:"max_restarts,omitempty"` // 0 = unlimited
	RestartDelay    time.Duration `json:"restart_delay,omitempty"`
	MaxRestartDelay time.Duration `json:"max_restart_delay,omitempty"`
	RestartWindow   time.Duration `json:"restart_window,omitempty"`
}

// Distribute is how a node's binary reaches the machine that runs it.
type Distribute string

const (
	DistributeLocal Distribute = "local"
	DistributeSCP   Distribute = "scp"
	DistributeHTTP  Distribute = "http"
)

// Deploy is a node's _unstable_deploy section: placement and distribution.
type Deploy struct {
	Machine    string            `json:"machine,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Distribute Distribute        `json:"distribute"` // default DistributeLocal
	WorkingDir string            `json:"working_dir,omitempty"`
	// the machine value, else the labels, else the section
	Pos Pos `json:"-"`
}

// IsZero reports whether no placement was requested.
func (d Deploy) IsZero() bool { return d.Machine == "" && len(d.Labels) == 0 }
