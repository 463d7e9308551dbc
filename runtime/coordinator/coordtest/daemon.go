package coordtest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// DaemonConfig describes a fake daemon.
type DaemonConfig struct {
	UUID      string
	MachineID string
	Labels    map[string]string
	Version   string // default version.Version
	// Running is what the daemon runs when it connects (dataflow id ->
	// node ids), to simulate a daemon that kept its nodes.
	Running map[string][]string
	// FailSpawn, when set, decides whether a Spawn fails.
	FailSpawn func(proto.Spawn) error
	// ReportOnSpawn sends a status report after every spawn and stop.
	ReportOnSpawn bool
	// Finished goes into the first status report (parts that ended while
	// the daemon was away).
	Finished []proto.DataflowFinished
	// History is in the daemon's log files when it connects (see Record).
	History []proto.LogLine
	// HoldStops, when set, delays every Stop reply until it is closed
	// (the Stop is recorded at once), as nodes slow to stop would.
	HoldStops chan struct{}
	// HoldLogs, when set, delays every Logs reply until it is closed, as
	// a daemon slow to read its log files would.
	HoldLogs chan struct{}
	// ZenohEndpoints are registered as where other daemons reach its
	// data plane.
	ZenohEndpoints []string
}

// Daemon is an in-process daemon that speaks the protocol. Its methods are
// safe for concurrent use.
type Daemon struct {
	cfg  DaemonConfig
	conn *wsconn.Conn

	mu        sync.Mutex
	running   map[string]map[string]bool
	spawns    []proto.Spawn
	stops     []proto.Stop
	logs      map[string][]proto.LogLine
	logsReqs  int
	destroyed bool
}

// StartDaemon connects a fake daemon to ep, registers it and sends its
// first status report. It returns the coordinator's refusal as an error.
func StartDaemon(ctx context.Context, ep wsconn.Endpoint, cfg DaemonConfig) (*Daemon, error) {
	if cfg.Version == "" {
		cfg.Version = version.Version
	}
	d := &Daemon{cfg: cfg, running: map[string]map[string]bool{}, logs: map[string][]proto.LogLine{}}
	d.Record(cfg.History...)
	for df, nodes := range cfg.Running {
		d.running[df] = map[string]bool{}
		for _, n := range nodes {
			d.running[df][n] = true
		}
	}
	conn, _, err := wsconn.Dial(ctx, ep, proto.PathDaemon, proto.RoleDaemon, d.handle, wsconn.Options{})
	if err != nil {
		return nil, err
	}
	d.conn = conn
	reg := proto.Register{DaemonUUID: cfg.UUID, MachineID: cfg.MachineID, Labels: cfg.Labels, Version: cfg.Version, Hostname: "testhost", OS: "linux", Arch: "amd64", ZenohEndpoints: cfg.ZenohEndpoints}
	var ok proto.RegisterOK
	if err := conn.Request(ctx, proto.TypeRegister, reg, &ok); err != nil {
		conn.Close()
		return nil, err
	}
	first := d.status()
	first.Finished = cfg.Finished
	if err := conn.Send(ctx, proto.TypeStatusReport, first); err != nil {
		conn.Close()
		return nil, err
	}
	return d, nil
}

// StartDaemonT is StartDaemon for a test: registering must succeed
// within 20 seconds or the test fails, and the daemon's connection is
// dropped (Close) when the test ends.
func StartDaemonT(t testing.TB, ep wsconn.Endpoint, cfg DaemonConfig) *Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := StartDaemon(ctx, ep, cfg)
	if err != nil {
		t.Fatalf("StartDaemon %s: %v", cfg.UUID, err)
	}
	t.Cleanup(d.Close)
	return d
}

// Close drops the connection (as a crash would; nothing is stopped).
func (d *Daemon) Close() { d.conn.Close() }

// Done is closed when the connection ends.
func (d *Daemon) Done() <-chan struct{} { return d.conn.Done() }

// Report sends a status report of what the daemon runs.
func (d *Daemon) Report(ctx context.Context) error {
	return d.conn.Send(ctx, proto.TypeStatusReport, d.status())
}

func (d *Daemon) status() proto.StatusReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	rep := proto.StatusReport{Dataflows: []proto.DataflowReport{}}
	for df, nodes := range d.running {
		r := proto.DataflowReport{DataflowID: df}
		for n := range nodes {
			r.Nodes = append(r.Nodes, proto.NodeState{NodeID: n, PID: 1000, Status: proto.NodeRunning})
		}
		sort.Slice(r.Nodes, func(i, j int) bool { return r.Nodes[i].NodeID < r.Nodes[j].NodeID })
		rep.Dataflows = append(rep.Dataflows, r)
	}
	sort.Slice(rep.Dataflows, func(i, j int) bool { return rep.Dataflows[i].DataflowID < rep.Dataflows[j].DataflowID })
	return rep
}

// ReportRunning sends a status report that lists only dataflowID with
// nodes running, whatever the daemon runs (a daemon still stopping them).
func (d *Daemon) ReportRunning(ctx context.Context, dataflowID string, nodes ...string) error {
	r := proto.DataflowReport{DataflowID: dataflowID}
	for _, n := range nodes {
		r.Nodes = append(r.Nodes, proto.NodeState{NodeID: n, PID: 1000, Status: proto.NodeRunning})
	}
	return d.conn.Send(ctx, proto.TypeStatusReport, proto.StatusReport{Dataflows: []proto.DataflowReport{r}})
}

// Heartbeat sends one heartbeat.
func (d *Daemon) Heartbeat(ctx context.Context) error {
	return d.conn.Send(ctx, proto.TypeHeartbeat, proto.Heartbeat{})
}

// Log sends node log lines (and remembers them for Logs requests).
func (d *Daemon) Log(ctx context.Context, lines ...proto.LogLine) error {
	d.mu.Lock()
	for _, l := range lines {
		d.logs[l.DataflowID] = append(d.logs[l.DataflowID], l)
	}
	d.mu.Unlock()
	return d.conn.Send(ctx, proto.TypeLog, proto.Log{Lines: lines})
}

// Record remembers lines for Logs requests without sending them, as a
// daemon that wrote lines to its log files but has not streamed them yet.
func (d *Daemon) Record(lines ...proto.LogLine) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range lines {
		d.logs[l.DataflowID] = append(d.logs[l.DataflowID], l)
	}
}

// Stream sends log lines without remembering them (see Record).
func (d *Daemon) Stream(ctx context.Context, lines ...proto.LogLine) error {
	return d.conn.Send(ctx, proto.TypeLog, proto.Log{Lines: lines})
}

// Metrics sends a NodeMetrics report.
func (d *Daemon) Metrics(ctx context.Context, ms ...proto.NodeMetric) error {
	return d.conn.Send(ctx, proto.TypeNodeMetrics, proto.NodeMetrics{Time: time.Now(), Metrics: ms})
}

// DataPlane sends a NodeMetrics report at time at that carries only a
// data-plane report.
func (d *Daemon) DataPlane(ctx context.Context, at time.Time, r proto.DataPlaneReport) error {
	return d.conn.Send(ctx, proto.TypeNodeMetrics, proto.NodeMetrics{Time: at, DataPlane: &r})
}

// Finish ends the daemon's part of a dataflow (its nodes exited) and tells
// the coordinator.
func (d *Daemon) Finish(ctx context.Context, dataflowID string, failed bool, errText string) error {
	d.mu.Lock()
	var nodes []proto.NodeState
	st := proto.NodeExited
	if failed {
		st = proto.NodeFailed
	}
	for n := range d.running[dataflowID] {
		nodes = append(nodes, proto.NodeState{NodeID: n, Status: st})
	}
	delete(d.running, dataflowID)
	d.mu.Unlock()
	return d.conn.Send(ctx, proto.TypeDataflowFinished, proto.DataflowFinished{DataflowID: dataflowID, Nodes: nodes, Failed: failed, Error: errText})
}

// Spawns returns the Spawn requests received so far.
func (d *Daemon) Spawns() []proto.Spawn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]proto.Spawn(nil), d.spawns...)
}

// Stops returns the Stop requests received so far.
func (d *Daemon) Stops() []proto.Stop {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]proto.Stop(nil), d.stops...)
}

// Running returns the node ids the daemon runs for a dataflow, sorted.
func (d *Daemon) Running(dataflowID string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.running[dataflowID] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LogsRequests counts the Logs requests received so far.
func (d *Daemon) LogsRequests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logsReqs
}

// Destroyed reports whether the coordinator sent Destroy.
func (d *Daemon) Destroyed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.destroyed
}

func (d *Daemon) handle(c *wsconn.Conn, e *proto.Envelope) {
	ctx := context.Background()
	switch e.Type {
	case proto.TypeSpawn:
		var sp proto.Spawn
		err := e.Into(&sp)
		if err == nil && d.cfg.FailSpawn != nil {
			err = d.cfg.FailSpawn(sp)
		}
		d.mu.Lock()
		d.spawns = append(d.spawns, sp)
		if err == nil {
			if d.running[sp.DataflowID] == nil {
				d.running[sp.DataflowID] = map[string]bool{}
			}
			for _, n := range sp.Nodes {
				d.running[sp.DataflowID][n] = true
			}
		}
		d.mu.Unlock()
		c.Reply(ctx, e, "", nil, err)
		if err == nil && d.cfg.ReportOnSpawn {
			c.Send(ctx, proto.TypeStatusReport, d.status())
		}
	case proto.TypeStop:
		var st proto.Stop
		err := e.Into(&st)
		d.mu.Lock()
		d.stops = append(d.stops, st)
		var nodes []proto.NodeState
		for n := range d.running[st.DataflowID] {
			nodes = append(nodes, proto.NodeState{NodeID: n, Status: proto.NodeStopped})
		}
		delete(d.running, st.DataflowID)
		d.mu.Unlock()
		reply := func() {
			c.Reply(ctx, e, proto.TypeStopReply, proto.StopReply{DataflowID: st.DataflowID, Status: proto.FlowStopped, Nodes: nodes}, err)
		}
		if d.cfg.HoldStops != nil {
			go func() { // ends when the test closes HoldStops
				<-d.cfg.HoldStops
				reply()
			}()
			return
		}
		reply()
	case proto.TypeLogs:
		var req proto.Logs
		err := e.Into(&req)
		d.mu.Lock()
		d.logsReqs++
		var lines []proto.LogLine
		for _, l := range d.logs[req.Dataflow] {
			if req.Node == "" || l.NodeID == req.Node {
				lines = append(lines, l)
			}
		}
		d.mu.Unlock()
		if req.Tail > 0 && len(lines) > req.Tail {
			lines = lines[len(lines)-req.Tail:]
		}
		reply := func() {
			c.Reply(ctx, e, proto.TypeLogsReply, proto.LogsReply{DataflowID: req.Dataflow, Lines: lines}, err)
		}
		if d.cfg.HoldLogs != nil {
			go func() { // ends when the test closes HoldLogs
				<-d.cfg.HoldLogs
				reply()
			}()
			return
		}
		reply()
	case proto.TypeDestroy:
		d.mu.Lock()
		d.destroyed = true
		d.running = map[string]map[string]bool{}
		d.mu.Unlock()
		c.Reply(ctx, e, "", nil, nil)
		c.Abort()
	case proto.TypeHeartbeat:
	default:
		if e.IsRequest() {
			c.Reply(ctx, e, "", nil, errors.New("fake daemon: unsupported request "+string(e.Type)))
		}
	}
}
