package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/supervisor"
)

// spawn starts the nodes of a Spawn request. A recovery spawn for a
// dataflow that already runs here is accepted without change.
func (d *Daemon) spawn(m *proto.Spawn) error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return fmt.Errorf("dataflow %s: the daemon is shutting down", m.DataflowID)
	}
	_, running := d.flows[m.DataflowID]
	_, starting := d.starting[m.DataflowID]
	ctx, cancel := context.WithCancel(d.buildCtx)
	defer cancel()
	if !running && !starting {
		d.starting[m.DataflowID] = cancel
	}
	d.mu.Unlock()
	switch {
	case running && m.Recovery:
		return nil
	case running || starting:
		return fmt.Errorf("dataflow %s already runs on this daemon", m.DataflowID)
	}
	defer func() {
		d.mu.Lock()
		delete(d.starting, m.DataflowID)
		d.mu.Unlock()
	}()
	base, err := d.workingDir(m)
	if err != nil {
		return err
	}
	exes, err := d.fetchArtifacts(m)
	if err != nil {
		return err
	}
	// A recovery spawn re-runs what was built for the first one; so does
	// a restart, which never comes through here.
	if !m.Recovery {
		if err := d.buildNodes(ctx, m, base, exes); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("dataflow %s: stopped while starting", m.DataflowID)
	}
	d.connectPeers(m)
	id, name := m.DataflowID, m.Name
	flow, err := StartFlow(FlowConfig{
		ID:          id,
		Name:        name,
		Dataflow:    &m.Dataflow,
		Local:       slices.Clone(m.Nodes),
		WorkingDir:  base,
		StateDir:    d.stateDir,
		Executables: exes,
		NewRouter:   d.cfg.NewRouter,
		Spawn:       m,
		Transport:   d.cfg.Transport,
		Logger:      d.log,
		OnEvent:     func(ev supervisor.Event) { d.nodeEvent(id, ev) },
		OnLog:       func(l supervisor.LogLine) { d.queueLog(protoLine(id, l)) },
	})
	if err != nil {
		return err
	}
	d.recordSocketDir(id, flow.SocketDir())
	r := &flowRun{flow: flow, name: name, done: make(chan struct{})}
	d.mu.Lock()
	d.flows[id] = r
	closing := d.closing || ctx.Err() != nil
	d.wg.Add(1)
	d.mu.Unlock()
	go d.watch(id, r)
	if closing {
		flow.Stop(0, true)
		return fmt.Errorf("dataflow %s: stopped while starting (or the daemon is shutting down)", id)
	}
	d.log.Info("spawned dataflow nodes", "dataflow", id, "name", name, "nodes", m.Nodes, "recovery", m.Recovery)
	return nil
}

// buildNodes runs the build lines of the spawn's nodes that are built
// here (distribute: local, no downloaded artifact), one dataflow at a time
// on this daemon: parallel compilers on a small machine only thrash.
func (d *Daemon) buildNodes(ctx context.Context, m *proto.Spawn, base string, exes map[string]string) error {
	var nodes []string
	for _, id := range m.Nodes {
		n := m.Dataflow.Node(id)
		if n == nil || strings.TrimSpace(n.Build) == "" {
			continue
		}
		if _, fetched := exes[id]; fetched {
			continue
		}
		if dist := n.Deploy.Distribute; dist != "" && dist != config.DistributeLocal {
			continue // built where the CLI runs
		}
		nodes = append(nodes, id)
	}
	if len(nodes) == 0 {
		return nil
	}
	select {
	case d.buildSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("dataflow %s: stopped while waiting for another dataflow's build", m.DataflowID)
	}
	defer func() { <-d.buildSem }()
	id := m.DataflowID
	err := Build(ctx, BuildConfig{
		DataflowID: id,
		Dataflow:   &m.Dataflow,
		Nodes:      nodes,
		WorkingDir: base,
		Timeout:    d.cfg.BuildTimeout,
		LogPath:    func(node string) string { return LogPath(d.stateDir, id, node) },
		OnLog:      func(l supervisor.LogLine) { d.queueLog(protoLine(id, l)) },
		Logger:     d.log.With("dataflow", id),
	})
	if err != nil {
		d.log.Warn("node build failed", "dataflow", id, "err", err)
		return err
	}
	return nil
}

// workingDir picks the base working directory of a spawn: the CLI's
// directory when it exists on this machine, else ADORA_HOME/work/<uuid>.
func (d *Daemon) workingDir(m *proto.Spawn) (string, error) {
	if m.WorkingDir != "" {
		if st, err := os.Stat(m.WorkingDir); err == nil && st.IsDir() {
			return m.WorkingDir, nil
		}
	}
	dir := filepath.Join(d.home, "work", m.DataflowID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("dataflow %s: working directory: %w", m.DataflowID, err)
	}
	return dir, nil
}

// watch waits for a flow's nodes to end, reports the result and forgets
// the flow.
func (d *Daemon) watch(id string, r *flowRun) {
	defer d.wg.Done()
	<-r.flow.Done()
	results := r.flow.Results()
	timeouts := r.flow.InputTimeouts()
	r.flow.Close()
	os.Remove(filepath.Join(d.stateDir, "sockets", id))
	fin := proto.DataflowFinished{DataflowID: id, Nodes: resultStates(results)}
	if msg := Failure(results); msg != "" {
		fin.Failed, fin.Error = true, msg
	}
	d.mu.Lock()
	d.stats.InputTimeouts += timeouts
	delete(d.flows, id)
	for k := range d.cpu {
		if k.flow == id {
			delete(d.cpu, k)
		}
	}
	closing := d.closing
	d.mu.Unlock()
	d.pruneLogs()
	if closing {
		// The daemon is going away (stop, restart, reboot): its nodes
		// ended because of that, not because the dataflow did. Nothing is
		// reported, so the coordinator re-spawns them once it is back.
		d.log.Info("dataflow stopped with the daemon", "dataflow", id)
	} else {
		d.log.Info("dataflow finished on this daemon", "dataflow", id, "failed", fin.Failed, "error", fin.Error)
		d.sendFinished(fin)
	}
	close(r.done)
}

func resultStates(results []supervisor.Result) []proto.NodeState {
	out := make([]proto.NodeState, 0, len(results))
	for _, r := range results {
		code := r.ExitCode
		st := proto.NodeState{NodeID: r.Node, Restarts: r.Restarts, ExitCode: &code, Error: r.Error}
		switch {
		case r.Failed:
			st.Status = proto.NodeFailed
		case r.Stopped:
			st.Status = proto.NodeStopped
		default:
			st.Status = proto.NodeExited
		}
		out = append(out, st)
	}
	return out
}

func nodeStatus(s supervisor.Status) proto.NodeStatus {
	switch s {
	case supervisor.Pending:
		return proto.NodePending
	case supervisor.Restarting:
		return proto.NodeRestarting
	case supervisor.Finished:
		return proto.NodeExited
	case supervisor.Failed:
		return proto.NodeFailed
	default:
		return proto.NodeRunning
	}
}

// statusReport lists every dataflow with a live node here.
func (d *Daemon) statusReport() proto.StatusReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	rep := proto.StatusReport{Dataflows: []proto.DataflowReport{}}
	ids := make([]string, 0, len(d.flows))
	for id := range d.flows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := d.flows[id]
		dr := proto.DataflowReport{DataflowID: id, Name: r.name}
		for _, n := range r.flow.Nodes() {
			if n.Status == supervisor.Finished || n.Status == supervisor.Failed {
				continue
			}
			dr.Nodes = append(dr.Nodes, proto.NodeState{NodeID: n.ID, PID: n.PID, Status: nodeStatus(n.Status), Restarts: n.Restarts})
		}
		if len(dr.Nodes) > 0 {
			rep.Dataflows = append(rep.Dataflows, dr)
		}
	}
	return rep
}

// nodeEvent turns a supervision event into a node status event and a
// system log line.
func (d *Daemon) nodeEvent(flowID string, ev supervisor.Event) {
	st := proto.NodeState{NodeID: ev.Node, PID: ev.PID, Restarts: ev.Restarts}
	var line string
	switch ev.Kind {
	case supervisor.EventStarted:
		st.Status = proto.NodeRunning
		line = fmt.Sprintf("spawned (pid %d, restarts %d)", ev.PID, ev.Restarts)
	case supervisor.EventExited:
		code := ev.ExitCode
		st.ExitCode = &code
		st.Status = proto.NodeRunning
		line = "exited: " + exitText(ev)
		if ev.Reason != "" {
			line += " (" + ev.Reason + ")"
		}
	case supervisor.EventRestarting:
		d.mu.Lock()
		d.stats.Restarts++
		d.mu.Unlock()
		st.Status = proto.NodeRestarting
		line = fmt.Sprintf("%s; next start in %v", ev.Reason, ev.Delay)
	case supervisor.EventFailed:
		st.Status, st.Error = proto.NodeFailed, ev.Reason
		line = "failed: " + ev.Reason
	case supervisor.EventFinished:
		st.Status, line = proto.NodeExited, "finished"
		if ev.Stopped {
			st.Status, line = proto.NodeStopped, "stopped"
		}
	}
	d.systemLine(flowID, ev.Node, ev.Time, line)
	if ev.Kind != supervisor.EventExited {
		d.send(proto.TypeNodeStatus, proto.NodeStatusEvent{DataflowID: flowID, Node: st, Time: ev.Time})
	}
}

func exitText(ev supervisor.Event) string {
	if ev.Signal != "" {
		return "killed by signal " + ev.Signal
	}
	return fmt.Sprintf("code %d", ev.ExitCode)
}

// protoLine is a node log line as the daemon streams and answers it: the
// same Seq in both.
func protoLine(flowID string, l supervisor.LogLine) proto.LogLine {
	return proto.LogLine{DataflowID: flowID, NodeID: l.Node, Stream: proto.Stream(l.Stream), Time: l.Time, Line: l.Line, Seq: l.Seq}
}

// queueLog queues a line for the coordinator (dropped when the queue is
// full: the node's log file keeps everything). It never blocks: it is
// the delivery of supervisor.LogFile.Record, which numbers lines under
// the file's lock.
func (d *Daemon) queueLog(l proto.LogLine) {
	if len(l.Line) > maxStreamedLine {
		l.Line = l.Line[:maxStreamedLine] + " [cut; the node's log file has the whole line]"
	}
	select {
	case d.logs <- l:
	default:
	}
}

// systemLine logs a daemon line about a node, records it in the node's
// log (through the handle the node's supervisor or build holds, if open:
// one numbering with the node's own lines) and queues it, numbered, for
// the coordinator. A log that cannot be opened gets the line streamed
// only, unnumbered.
func (d *Daemon) systemLine(flowID, node string, t time.Time, line string) {
	d.log.Info("node "+line, "dataflow", flowID, "node", node)
	deliver := func(sl supervisor.LogLine) { d.queueLog(protoLine(flowID, sl)) }
	sl := supervisor.LogLine{Time: t, Node: node, Stream: supervisor.Stream(proto.System), Line: line}
	lf, err := supervisor.OpenLogFile(LogPath(d.stateDir, flowID, node), 0, 0)
	if err != nil {
		d.log.Warn("write node log", "dataflow", flowID, "node", node, "err", err)
		deliver(sl)
		return
	}
	defer lf.Close()
	if _, err := lf.Record(sl, deliver); err != nil {
		d.log.Warn("write node log", "dataflow", flowID, "node", node, "err", err)
	}
}

// stop stops one dataflow and waits for its nodes.
func (d *Daemon) stop(m proto.Stop) proto.StopReply {
	d.mu.Lock()
	r := d.flows[m.DataflowID]
	cancel := d.starting[m.DataflowID]
	if r == nil && cancel != nil {
		cancel() // still building: kill the build, spawn nothing
	}
	d.mu.Unlock()
	if r != nil || cancel != nil {
		d.logStop(m, r)
	}
	rep := proto.StopReply{DataflowID: m.DataflowID, Status: proto.FlowStopped}
	if r == nil {
		return rep
	}
	rep.Name = r.name
	r.flow.Stop(m.Grace, m.Force)
	<-r.done
	results := r.flow.Results()
	rep.Nodes = resultStates(results)
	if msg := Failure(results); msg != "" {
		rep.Status, rep.Error = proto.FlowFailed, msg
	}
	return rep
}

// logStop says, in the daemon's log and, when the coordinator gave a
// reason, in the log of each node (running, or building when r is nil),
// why a dataflow stops.
func (d *Daemon) logStop(m proto.Stop, r *flowRun) {
	attrs := []any{"dataflow", m.DataflowID, "force", m.Force}
	if m.Grace > 0 {
		attrs = append(attrs, "grace", m.Grace)
	}
	if m.Reason == "" {
		d.log.Info("stopping dataflow", attrs...)
		return
	}
	d.log.Warn("stopping dataflow", append(attrs, "reason", m.Reason)...)
	var nodes []string
	if r != nil {
		for _, n := range r.flow.Nodes() {
			nodes = append(nodes, n.ID)
		}
	} else {
		nodes = d.loggedNodes(m.DataflowID)
	}
	now := time.Now()
	for _, n := range nodes {
		d.systemLine(m.DataflowID, n, now, "stopping: "+m.Reason)
	}
}

// loggedNodes lists the nodes of a dataflow that have a log file here.
func (d *Daemon) loggedNodes(flowID string) []string {
	ents, err := os.ReadDir(filepath.Join(d.stateDir, "logs", flowID))
	if err != nil {
		return nil
	}
	var nodes []string
	for _, e := range ents {
		if n, ok := cutSuffix(e.Name(), ".jsonl"); ok {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// readLogs answers a Logs request from the node log files.
func (d *Daemon) readLogs(m proto.Logs) (proto.LogsReply, error) {
	rep := proto.LogsReply{DataflowID: m.Dataflow, Lines: []proto.LogLine{}}
	dir := filepath.Join(d.stateDir, "logs", m.Dataflow)
	if m.Dataflow == "" || filepath.Base(m.Dataflow) != m.Dataflow {
		return rep, fmt.Errorf("logs: invalid dataflow id %q", m.Dataflow)
	}
	var nodes []string
	if m.Node != "" {
		if filepath.Base(m.Node) != m.Node {
			return rep, fmt.Errorf("logs: invalid node id %q", m.Node)
		}
		nodes = []string{m.Node}
	} else {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("logs: %w", err)
		}
		for _, e := range ents {
			if n, ok := cutSuffix(e.Name(), ".jsonl"); ok {
				nodes = append(nodes, n)
			}
		}
	}
	for _, n := range nodes {
		lines, err := supervisor.TailLog(LogPath(d.stateDir, m.Dataflow, n), m.Tail)
		if err != nil {
			return rep, fmt.Errorf("logs: %w", err)
		}
		for _, l := range lines {
			l.Node = n
			rep.Lines = append(rep.Lines, protoLine(m.Dataflow, l))
		}
	}
	slices.SortStableFunc(rep.Lines, func(a, b proto.LogLine) int { return a.Time.Compare(b.Time) })
	if m.Tail > 0 && len(rep.Lines) > m.Tail {
		rep.Lines = rep.Lines[len(rep.Lines)-m.Tail:]
	}
	rep.Lines = fitReply(rep.Lines)
	return rep, nil
}

// fitReply keeps the newest lines that fit in one reply message, each cut
// to maxStreamedLine.
func fitReply(lines []proto.LogLine) []proto.LogLine {
	total := 0
	for i := len(lines) - 1; i >= 0; i-- {
		if len(lines[i].Line) > maxStreamedLine {
			lines[i].Line = lines[i].Line[:maxStreamedLine] + " [cut]"
		}
		total += lineWireSize(lines[i])
		if total > maxLogBatchBytes {
			return lines[i+1:]
		}
	}
	return lines
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}

// recordSocketDir remembers a flow's socket directory (it lives in the
// temp dir, where paths are short enough for unix sockets), so that a
// daemon restarted after a crash can remove it (removeStaleSocketDirs).
func (d *Daemon) recordSocketDir(flowID, dir string) {
	if dir == "" {
		return
	}
	rec := filepath.Join(d.stateDir, "sockets", flowID)
	if err := os.MkdirAll(filepath.Dir(rec), 0o700); err == nil {
		os.WriteFile(rec, []byte(dir+"\n"), 0o600)
	}
}

// removeStaleSocketDirs removes the socket directories recorded by a
// previous daemon process that did not clean up.
func (d *Daemon) removeStaleSocketDirs() {
	dir := filepath.Join(d.stateDir, "sockets")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	tmp := filepath.Clean(os.TempDir()) + string(filepath.Separator)
	for _, e := range ents {
		rec := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(rec)
		if err == nil {
			sock := filepath.Clean(strings.TrimSpace(string(b)))
			if strings.HasPrefix(sock, tmp+"adora-") {
				os.RemoveAll(sock)
			}
		}
		os.Remove(rec)
	}
}

// connectPeers links the transport to the other daemons of a dataflow (a
// full mesh: every daemon dials every peer it is told about).
func (d *Daemon) connectPeers(m *proto.Spawn) {
	mesh, ok := d.cfg.Transport.(Mesh)
	if !ok {
		return
	}
	own := map[string]bool{}
	for _, ep := range d.cfg.Endpoints {
		own[ep] = true
	}
	for _, p := range m.Peers {
		if p.DaemonID == d.id {
			continue
		}
		for _, ep := range p.ZenohEndpoints {
			if own[ep] {
				continue
			}
			if err := mesh.Connect(ep); err != nil {
				d.log.Warn("link to peer daemon", "daemon", p.DaemonID, "endpoint", ep, "err", err)
			}
		}
	}
}

// pruneLogs keeps the log directories of the newest KeepLogs dataflows
// (and of every running one).
func (d *Daemon) pruneLogs() {
	d.mu.Lock()
	active := make(map[string]bool, len(d.flows))
	for id := range d.flows {
		active[id] = true
	}
	d.mu.Unlock()
	if n := PruneLogs(d.stateDir, KeepLogs, active); n > 0 {
		d.log.Info("removed old node logs", "dataflows", n)
	}
}
