package proto

import (
	"time"

	"github.com/adora-rs/adora/config"
)

// Role says which endpoint a Hello comes from.
type Role string

const (
	RoleCLI    Role = "cli"
	RoleDaemon Role = "daemon"
)

// Hello is the first message of every connection; HelloOK answers it.
type Hello struct {
	Protocol int    `json:"protocol"`
	Version  string `json:"version"` // adora release version of the sender
	Role     Role   `json:"role"`
}

// HelloOK answers a Hello whose protocol matches.
type HelloOK struct {
	Protocol int    `json:"protocol"`
	Version  string `json:"version"`
}

// ---- daemons -------------------------------------------------------------

// Register is a daemon's identity. DaemonUUID is generated once and
// persisted on the machine, so it survives daemon restarts and reboots.
type Register struct {
	DaemonUUID     string            `json:"daemon_uuid"`
	MachineID      string            `json:"machine_id,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Version        string            `json:"version"`
	Hostname       string            `json:"hostname,omitempty"`
	OS             string            `json:"os,omitempty"`
	Arch           string            `json:"arch,omitempty"`
	PID            int               `json:"pid,omitempty"`
	ZenohEndpoints []string          `json:"zenoh_endpoints,omitempty"` // e.g. "tcp/10.0.0.2:7447"
	// Addr is the address the daemon reached the coordinator from, as
	// the daemon sees it (informational; the coordinator also records the
	// remote address it sees).
	Addr string `json:"addr,omitempty"`
}

// RegisterOK answers Register. DaemonID is the id the coordinator uses for
// the daemon (its DaemonUUID).
type RegisterOK struct {
	DaemonID string `json:"daemon_id"`
	// RemoteAddr is the daemon's address as the coordinator sees it.
	RemoteAddr string `json:"remote_addr,omitempty"`
}

// FaultStats are per-daemon cumulative counters.
type FaultStats struct {
	Restarts                 uint64 `json:"restarts"`
	HealthCheckKills         uint64 `json:"health_check_kills"`
	InputTimeouts            uint64 `json:"input_timeouts"`
	CircuitBreakerRecoveries uint64 `json:"circuit_breaker_recoveries"`
}

// Heartbeat is sent by a daemon every HeartbeatInterval (the coordinator
// also sends empty heartbeats so a daemon can watch it).
type Heartbeat struct {
	Stats FaultStats `json:"stats"`
}

// NodeStatus is the state of one node process.
type NodeStatus string

const (
	NodePending    NodeStatus = "pending"
	NodeRunning    NodeStatus = "running"
	NodeRestarting NodeStatus = "restarting"
	NodeDegraded   NodeStatus = "degraded" // running, some inputs broken
	NodeFailed     NodeStatus = "failed"   // exited with failure, no more restarts
	NodeExited     NodeStatus = "exited"   // exited successfully, no more restarts
	NodeStopped    NodeStatus = "stopped"  // stopped on request
)

// Done reports whether s is final.
func (s NodeStatus) Done() bool { return s == NodeFailed || s == NodeExited || s == NodeStopped }

// NodeState is what a daemon knows about one of its nodes.
type NodeState struct {
	NodeID   string     `json:"node_id"`
	PID      int        `json:"pid,omitempty"`
	Status   NodeStatus `json:"status"`
	Restarts int        `json:"restarts,omitempty"`
	ExitCode *int       `json:"exit_code,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// DataflowReport is one dataflow a daemon runs.
type DataflowReport struct {
	DataflowID string      `json:"dataflow_id"`
	Name       string      `json:"name,omitempty"`
	Nodes      []NodeState `json:"nodes"`
}

// StatusReport lists everything a daemon runs. Sent right after
// RegisterOK and whenever it changes materially. A dataflow that is absent
// has no live node on this daemon.
type StatusReport struct {
	Dataflows []DataflowReport `json:"dataflows"`
	// Finished lists parts of dataflows that ended while the daemon could
	// not tell the coordinator (it was unreachable); the coordinator
	// treats each as a DataflowFinished event, so a dataflow that ended
	// meanwhile is not mistaken for one to auto-recover.
	Finished []DataflowFinished `json:"finished,omitempty"`
}

// NodeStatusEvent reports a change of one node (restart, failure, exit).
type NodeStatusEvent struct {
	DataflowID string    `json:"dataflow_id"`
	Node       NodeState `json:"node"`
	Time       time.Time `json:"time"`
}

// DataflowFinished says that the daemon's part of a dataflow ended (all its
// nodes exited or were stopped). Failed is true when any node failed.
type DataflowFinished struct {
	DataflowID string      `json:"dataflow_id"`
	Nodes      []NodeState `json:"nodes"`
	Failed     bool        `json:"failed"`
	Error      string      `json:"error,omitempty"` // "node: reason; ..." when Failed
}

// NodeMetric is one node's resource usage.
type NodeMetric struct {
	DataflowID  string     `json:"dataflow_id"`
	NodeID      string     `json:"node_id"`
	PID         int        `json:"pid,omitempty"`
	CPUPercent  float64    `json:"cpu_percent"`
	MemoryBytes uint64     `json:"memory_bytes"`
	Restarts    int        `json:"restarts"`
	Status      NodeStatus `json:"status"`
	Drops       uint64     `json:"drops"` // messages dropped at this node's input queues
	// Filled in by the coordinator in TopReply.
	DataflowName string `json:"dataflow_name,omitempty"`
	DaemonID     string `json:"daemon_id,omitempty"`
	MachineID    string `json:"machine_id,omitempty"`
}

// NodeMetrics is a daemon's periodic report (every MetricsInterval). A
// daemon with many nodes may split it over several messages (each must fit
// in MaxMessageSize); the coordinator keeps the latest metric per node
// until the dataflow's part ends.
type NodeMetrics struct {
	Time    time.Time    `json:"time"`
	Metrics []NodeMetric `json:"metrics"`
	// DataPlane is the daemon's Zenoh state (nil without a data plane,
	// and from daemons that predate it). A daemon with a data plane sends
	// NodeMetrics every MetricsInterval even when it runs no node.
	DataPlane *DataPlaneReport `json:"data_plane,omitempty"`
}

// Stream names a node output stream.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
	System Stream = "system" // lines the daemon writes about a node (spawned, exited, restarting)
)

// LogLine is one line a node wrote.
type LogLine struct {
	DataflowID string    `json:"dataflow_id"`
	NodeID     string    `json:"node_id"`
	Stream     Stream    `json:"stream"`
	Time       time.Time `json:"time"`
	Line       string    `json:"line"`
	DaemonID   string    `json:"daemon_id,omitempty"` // set by the coordinator
	// Seq numbers the lines of one node of one dataflow on one daemon,
	// strictly increasing in the order the daemon records them; a line
	// carries the same Seq in the live stream and in a Logs history, so a
	// follow can resume exactly after the history (see LogCursor). Zero
	// means unknown (a daemon that does not number its lines).
	Seq uint64 `json:"seq,omitempty"`
}

// Log carries node log lines: daemon -> coordinator, and coordinator -> a
// following CLI (Envelope.ReplyTo is then zero and Follow names the Logs
// request ID the lines belong to).
type Log struct {
	Follow uint64    `json:"follow,omitempty"`
	Lines  []LogLine `json:"lines"`
}

// Artifact is a node binary delivered over HTTP (distribute: http). The
// daemon downloads PathArtifacts+BuildID+"/"+NodeID from the coordinator,
// verifies SHA256 and runs it instead of Node.Path.
type Artifact struct {
	BuildID string `json:"build_id"`
	NodeID  string `json:"node_id"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size,omitempty"`
}

// Peer is another daemon of a dataflow, for cross-machine routing.
type Peer struct {
	DaemonID       string   `json:"daemon_id"`
	MachineID      string   `json:"machine_id,omitempty"`
	ZenohEndpoints []string `json:"zenoh_endpoints,omitempty"`
}

// Placement says which daemon runs one node and why.
type Placement struct {
	NodeID    string `json:"node_id"`
	DaemonID  string `json:"daemon_id"`
	MachineID string `json:"machine_id,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Spawn asks a daemon to run some nodes of a dataflow. The reply (generic
// TypeReply) comes once the processes are spawned, or carries the error.
type Spawn struct {
	DataflowID string          `json:"dataflow_id"`
	Name       string          `json:"name"`
	Descriptor []byte          `json:"descriptor"` // the dataflow file as given (YAML/JSON/HCL)
	Dataflow   config.Dataflow `json:"dataflow"`   // parsed model, all nodes
	// Nodes are the ids this daemon must spawn.
	Nodes []string `json:"nodes"`
	// Placements of every node of the dataflow (local and remote).
	Placements []Placement `json:"placements"`
	Peers      []Peer      `json:"peers,omitempty"`
	// WorkingDir is the CLI's working directory at start; relative node
	// paths resolve against it (or the node's deploy.working_dir).
	WorkingDir string `json:"working_dir,omitempty"`
	// Artifacts for nodes distributed over HTTP, by node id.
	Artifacts map[string]Artifact `json:"artifacts,omitempty"`
	// Recovery is true when the coordinator re-spawns nodes after the
	// daemon reconnected without them (auto-recovery).
	Recovery bool `json:"recovery,omitempty"`
}

// Stop asks a daemon (or, as StopFlow, the coordinator) to stop a dataflow:
// stop event, SIGTERM after Grace, SIGKILL after Grace/2 more; Force kills
// at once. A zero Grace means DefaultGrace.
type Stop struct {
	DataflowID string        `json:"dataflow_id"`
	Grace      time.Duration `json:"grace,omitempty"`
	Force      bool          `json:"force,omitempty"`
	// Reason says why the coordinator stops the dataflow when no person
	// asked for it (for instance, no coordinator has a record of it); a
	// daemon logs it.
	Reason string `json:"reason,omitempty"`
}

// StopReply answers Stop once the nodes are gone.
type StopReply struct {
	DataflowID string      `json:"dataflow_id"`
	Name       string      `json:"name,omitempty"`
	Status     FlowStatus  `json:"status,omitempty"`
	Nodes      []NodeState `json:"nodes,omitempty"`
	Error      string      `json:"error,omitempty"` // node failures, not a request failure
}

// Logs asks for the last Tail lines (0 = all) of a dataflow's logs,
// optionally of one node. Sent by the CLI (Dataflow = name or uuid) and by
// the coordinator to daemons (Dataflow = uuid). Follow (CLI only) keeps the
// request open: further lines arrive as Log events with Follow set to the
// request ID, and a LogsEnd event closes the stream.
type Logs struct {
	Dataflow string `json:"dataflow"`
	Node     string `json:"node,omitempty"`
	Tail     int    `json:"tail,omitempty"`
	Follow   bool   `json:"follow,omitempty"`
}

// MaxLogsReplyBytes bounds the lines of one LogsReply (JSON-encoded) so
// it fits in a frame; whoever answers drops the oldest lines beyond it.
const MaxLogsReplyBytes = 768 << 10

// LogsReply carries the requested history, oldest first.
type LogsReply struct {
	DataflowID string    `json:"dataflow_id,omitempty"`
	Lines      []LogLine `json:"lines"`
}

// LogsEnd closes a follow: the dataflow finished (Status) or the
// coordinator is going away.
type LogsEnd struct {
	Follow     uint64     `json:"follow"`
	DataflowID string     `json:"dataflow_id"`
	Status     FlowStatus `json:"status"`
	Error      string     `json:"error,omitempty"`
}

// Unfollow ends a log follow.
type Unfollow struct {
	Follow uint64 `json:"follow"`
}

// Destroy asks daemons (and through the control API the coordinator) to
// stop every dataflow and exit.
type Destroy struct {
	Grace time.Duration `json:"grace,omitempty"`
}

// ---- control (CLI) -------------------------------------------------------

// FlowStatus is the lifecycle state of a dataflow.
//
//	pending --spawned--> running --stop--> stopping --> stopped
//	   |                  |  ^                            (or failed)
//	   +--spawn error-->  |  +-- daemon reports it --+
//	      failed          +--coordinator restart--> recovering
//	                      +--all nodes finished--> succeeded | failed
type FlowStatus string

const (
	FlowPending    FlowStatus = "pending"
	FlowRunning    FlowStatus = "running"
	FlowRecovering FlowStatus = "recovering"
	FlowStopping   FlowStatus = "stopping"
	FlowStopped    FlowStatus = "stopped"
	FlowSucceeded  FlowStatus = "succeeded"
	FlowFailed     FlowStatus = "failed"
)

// Active reports whether a dataflow in status s is (meant to be) running.
func (s FlowStatus) Active() bool {
	return s == FlowPending || s == FlowRunning || s == FlowRecovering || s == FlowStopping
}

// Start asks the coordinator to start a dataflow.
type Start struct {
	Name       string          `json:"name"`
	Descriptor []byte          `json:"descriptor"`
	Dataflow   config.Dataflow `json:"dataflow"`
	WorkingDir string          `json:"working_dir,omitempty"`
	// Artifacts already uploaded (distribute: http), by node id.
	Artifacts map[string]Artifact `json:"artifacts,omitempty"`
}

// StartReply answers Start once every involved daemon spawned its nodes.
type StartReply struct {
	DataflowID string      `json:"dataflow_id"`
	Name       string      `json:"name"`
	Placements []Placement `json:"placements"`
}

// StopFlow asks the coordinator to stop a dataflow by name or uuid.
type StopFlow struct {
	Dataflow string        `json:"dataflow"`
	Grace    time.Duration `json:"grace,omitempty"`
	Force    bool          `json:"force,omitempty"`
}

// Restart asks the coordinator to stop a dataflow (by name or uuid) and
// start it again from the stored descriptor under a new uuid.
type Restart struct {
	Dataflow string        `json:"dataflow"`
	Grace    time.Duration `json:"grace,omitempty"`
	Force    bool          `json:"force,omitempty"`
}

// RestartReply answers Restart.
type RestartReply struct {
	Name       string      `json:"name"`
	OldID      string      `json:"old_id"`
	NewID      string      `json:"new_id"`
	Placements []Placement `json:"placements"`
}

// Info asks for one dataflow by name or uuid (the running one first, then
// the most recent).
type Info struct {
	Dataflow string `json:"dataflow"`
}

// DataflowInfo describes one dataflow the coordinator knows.
type DataflowInfo struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Status     FlowStatus  `json:"status"`
	Error      string      `json:"error,omitempty"`
	Placements []Placement `json:"placements"`
	Nodes      []NodeState `json:"nodes,omitempty"` // last reported node states
	// DescriptorSHA256 is the hex sha256 of the descriptor bytes.
	DescriptorSHA256 string    `json:"descriptor_sha256"`
	WorkingDir       string    `json:"working_dir,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	// Descriptor is only filled by Info, not by List.
	Descriptor []byte `json:"descriptor,omitempty"`
	// RestartedAs is the uuid of the dataflow that replaced this one.
	RestartedAs string `json:"restarted_as,omitempty"`
}

// List asks for dataflows. All includes finished ones (most recent first
// after the active ones); otherwise only active ones.
type List struct {
	All bool `json:"all,omitempty"`
}

// ListReply answers List, sorted by name then creation time.
type ListReply struct {
	Dataflows []DataflowInfo `json:"dataflows"`
}

// DaemonInfo describes one daemon the coordinator knows.
type DaemonInfo struct {
	ID             string            `json:"id"` // the daemon uuid
	MachineID      string            `json:"machine_id,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Version        string            `json:"version"`
	Hostname       string            `json:"hostname,omitempty"`
	OS             string            `json:"os,omitempty"`
	Arch           string            `json:"arch,omitempty"`
	RemoteAddr     string            `json:"remote_addr,omitempty"`
	ZenohEndpoints []string          `json:"zenoh_endpoints,omitempty"`
	Connected      bool              `json:"connected"`
	ConnectedAt    time.Time         `json:"connected_at"`
	LastHeartbeat  time.Time         `json:"last_heartbeat"`
	NodesRunning   int               `json:"nodes_running"`
	Dataflows      []string          `json:"dataflows,omitempty"` // uuids it reported running
	Stats          FaultStats        `json:"stats"`
	// DataPlane summarises the daemon's cross-machine links (connected
	// daemons that reported a data plane only).
	DataPlane *DataPlaneStatus `json:"data_plane,omitempty"`
}

// Name is how people see the daemon: its machine id, else its uuid.
func (d DaemonInfo) Name() string {
	if d.MachineID != "" {
		return d.MachineID
	}
	return d.ID
}

// Daemons asks for the daemons (payload optional). All adds the daemons
// the coordinator registered before but that are not connected now
// (Connected false, LastHeartbeat their last contact).
type Daemons struct {
	All bool `json:"all,omitempty"`
}

// DaemonsReply answers Daemons: connected daemons sorted by machine id then
// uuid, the coordinator's own version and the count of active dataflows.
type DaemonsReply struct {
	Daemons            []DaemonInfo `json:"daemons"`
	ActiveDataflows    int          `json:"active_dataflows"`
	CoordinatorVersion string       `json:"coordinator_version"`
	// Now is the coordinator's clock, to render "2s ago" without skew.
	Now time.Time `json:"now"`
}

// TopReply answers Top with the latest metrics of every node of every
// active dataflow, sorted by dataflow name then node id.
type TopReply struct {
	Time  time.Time    `json:"time"`
	Nodes []NodeMetric `json:"nodes"`
	// Omitted counts nodes left out so the reply fits in one frame.
	Omitted int `json:"omitted,omitempty"`
	// DataPlane has one entry per connected daemon that reported a data
	// plane, sorted by machine id then daemon id.
	DataPlane []DataPlaneStatus `json:"data_plane,omitempty"`
}

// Health is the JSON body of GET /api/health (unauthenticated).
type Health struct {
	Status   string         `json:"status"` // "ok"
	Version  string         `json:"version"`
	Protocol int            `json:"protocol"`
	Auth     bool           `json:"auth"`
	Daemons  []HealthDaemon `json:"daemons"`
	// ActiveDataflows counts dataflows pending, running, recovering or
	// stopping.
	ActiveDataflows int `json:"active_dataflows"`
}

// HealthDaemon is one connected daemon in Health.
type HealthDaemon struct {
	ID        string `json:"id"`
	MachineID string `json:"machine_id,omitempty"`
	Version   string `json:"version"`
}
