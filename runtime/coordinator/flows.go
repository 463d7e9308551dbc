package coordinator

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/placement"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
)

// logRing is how many recent log lines the coordinator keeps per dataflow
// (served when a daemon cannot answer a logs request).
const logRing = 2000

// flow is an active dataflow. Guarded by Coordinator.mu.
type flow struct {
	rec        store.DataflowRecord
	starting   bool // spawn in progress
	stopping   bool // stop in progress
	nodes      map[string]proto.NodeState
	finished   map[string]proto.DataflowFinished // by daemon id
	recovering map[string]bool                   // daemons whose part was re-spawned and not yet reported running
	inflight   map[string]bool                   // daemons with a recovery Spawn request outstanding
	logs       []proto.LogLine
	done       chan struct{} // closed when the dataflow ends
}

func newFlow(r store.DataflowRecord) *flow {
	return &flow{
		rec: r, nodes: map[string]proto.NodeState{}, finished: map[string]proto.DataflowFinished{},
		recovering: map[string]bool{}, inflight: map[string]bool{}, done: make(chan struct{}),
	}
}

type recoveryKey struct{ daemon, flow string }

func (f *flow) setNodesLocked(daemonID string, nodes []proto.NodeState) {
	for _, n := range nodes {
		f.nodes[n.NodeID] = n
	}
}

func (f *flow) setNodeLocked(daemonID string, n proto.NodeState) { f.nodes[n.NodeID] = n }

// daemonIDs are the daemons the dataflow's nodes are placed on, sorted.
func (f *flow) daemonIDs() []string {
	set := map[string]bool{}
	for _, p := range f.rec.Placements {
		set[p.DaemonID] = true
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// involves reports whether any node of f is placed on daemon s (by uuid,
// or by machine id when s has one).
func (f *flow) involves(s *daemonSession) bool {
	for _, p := range f.rec.Placements {
		if p.DaemonID == s.id || s.reg.MachineID != "" && p.MachineID == s.reg.MachineID {
			return true
		}
	}
	return false
}

// nodesForLocked are the nodes of f assigned to s: by daemon uuid, or by
// machine id when s has one.
func (f *flow) nodesFor(s *daemonSession) []string {
	var out []string
	for _, p := range f.rec.Placements {
		if p.DaemonID == s.id || (s.reg.MachineID != "" && p.MachineID == s.reg.MachineID) {
			out = append(out, p.NodeID)
		}
	}
	sort.Strings(out)
	return out
}

func (f *flow) info() proto.DataflowInfo {
	d := proto.DataflowInfo{
		ID: f.rec.ID, Name: f.rec.Name, Status: f.rec.Status, Error: f.rec.Error,
		Placements: f.rec.Placements, DescriptorSHA256: f.rec.DescriptorSHA256(),
		WorkingDir: f.rec.WorkingDir, CreatedAt: f.rec.CreatedAt, UpdatedAt: f.rec.UpdatedAt,
	}
	for _, n := range f.nodes {
		d.Nodes = append(d.Nodes, n)
	}
	sort.Slice(d.Nodes, func(i, j int) bool { return d.Nodes[i].NodeID < d.Nodes[j].NodeID })
	return d
}

func recordInfo(r store.DataflowRecord) proto.DataflowInfo {
	return proto.DataflowInfo{
		ID: r.ID, Name: r.Name, Status: r.Status, Error: r.Error, Placements: r.Placements,
		DescriptorSHA256: r.DescriptorSHA256(), WorkingDir: r.WorkingDir,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, RestartedAs: r.RestartedAs,
	}
}

func (c *Coordinator) persistLocked(f *flow) {
	f.rec.UpdatedAt = c.clock.Now()
	if err := c.store.PutDataflow(f.rec); err != nil {
		c.log.Error("store dataflow", "dataflow", f.rec.ID, "err", err)
	}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Start places and spawns a dataflow; when any daemon fails to spawn its
// part, the daemons that succeeded are stopped again.
func (c *Coordinator) Start(ctx context.Context, req proto.Start) (proto.StartReply, error) {
	f, err := c.admitFlow(req)
	if err != nil {
		return proto.StartReply{}, err
	}
	c.log.Info("starting dataflow", "dataflow", f.rec.Name, "uuid", f.rec.ID, "nodes", len(f.rec.Placements))
	if err := c.spawnAll(ctx, f); err != nil {
		return proto.StartReply{}, err
	}
	c.mu.Lock()
	f.starting = false
	if f.rec.Status == proto.FlowPending {
		f.rec.Status = proto.FlowRunning
		c.persistLocked(f)
	}
	c.maybeFinishLocked(f)
	rep := proto.StartReply{DataflowID: f.rec.ID, Name: f.rec.Name, Placements: f.rec.Placements}
	c.mu.Unlock()
	return rep, nil
}

// admitFlow validates req, places its nodes on the connected daemons and
// records the new dataflow as pending.
func (c *Coordinator) admitFlow(req proto.Start) (*flow, error) {
	if err := validateStart(&req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.Name == "" {
		req.Name = c.freshNameLocked()
	}
	for _, f := range c.flows {
		if f.rec.Name == req.Name {
			return nil, fmt.Errorf("there is already a running dataflow with name `%s` (%s); stop it first or choose another --name", req.Name, f.rec.ID)
		}
	}
	sessions := c.sortedDaemonsLocked()
	if len(sessions) == 0 {
		return nil, errors.New("no daemon is connected to the coordinator; start one with `adora daemon` or `adora up`")
	}
	cands := make([]placement.Daemon, len(sessions))
	machines := map[string]string{}
	for i, s := range sessions {
		cands[i] = placement.Daemon{ID: s.id, MachineID: s.reg.MachineID, Labels: s.reg.Labels}
		machines[s.id] = s.reg.MachineID
	}
	decisions, err := placement.Place(req.Dataflow.Nodes, cands)
	if err != nil {
		return nil, err
	}
	now := c.clock.Now()
	rec := store.DataflowRecord{
		ID: uuid.Must(uuid.NewV7()).String(), Name: req.Name, Descriptor: req.Descriptor, Dataflow: req.Dataflow,
		WorkingDir: req.WorkingDir, Artifacts: req.Artifacts, Status: proto.FlowPending, CreatedAt: now, UpdatedAt: now,
	}
	for _, d := range decisions {
		rec.Placements = append(rec.Placements, proto.Placement{NodeID: d.Node, DaemonID: d.DaemonID, MachineID: machines[d.DaemonID], Reason: d.String()})
	}
	f := newFlow(rec)
	f.starting = true
	c.flows[rec.ID] = f
	c.persistLocked(f)
	return f, nil
}

func validateStart(req *proto.Start) error {
	if req.Name != "" && !validName.MatchString(req.Name) {
		return fmt.Errorf("dataflow name %q: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)", req.Name)
	}
	if len(req.Dataflow.Nodes) == 0 {
		return errors.New("the dataflow has no nodes")
	}
	seen := map[string]bool{}
	for _, n := range req.Dataflow.Nodes {
		if n.ID == "" {
			return errors.New("a node has no id")
		}
		if seen[n.ID] {
			return fmt.Errorf("node id %q appears twice", n.ID)
		}
		seen[n.ID] = true
		if n.Deploy.Distribute == config.DistributeHTTP {
			a, ok := req.Artifacts[n.ID]
			if !ok || !proto.ValidID(a.BuildID) || a.SHA256 == "" {
				return fmt.Errorf("node %q is distributed over http but no artifact was uploaded for it (adora start uploads it; other callers use client.UploadHTTPArtifacts first)", n.ID)
			}
		}
	}
	return nil
}

var nameWords = [2][]string{
	{"brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively", "merry", "nimble", "proud", "quick", "quiet", "swift", "witty"},
	{"otter", "falcon", "badger", "heron", "lynx", "marmot", "panda", "raven", "robin", "seal", "tiger", "walrus", "wombat", "yak", "zebra", "koala"},
}

// freshNameLocked returns a two-word name no active dataflow uses.
func (c *Coordinator) freshNameLocked() string {
	used := map[string]bool{}
	for _, f := range c.flows {
		used[f.rec.Name] = true
	}
	u := uuid.New()
	for i := 0; ; i++ {
		name := nameWords[0][int(u[i%16])%16] + "-" + nameWords[1][int(u[(i+7)%16])%16]
		if i >= 16 {
			name += "-" + u.String()[:4]
		}
		if !used[name] {
			return name
		}
	}
}

// spawnMessageLocked is the Spawn request for the nodes of f on daemon id.
func (c *Coordinator) spawnMessageLocked(f *flow, id string, nodes []string, recovery bool) proto.Spawn {
	sp := proto.Spawn{
		DataflowID: f.rec.ID, Name: f.rec.Name, Descriptor: f.rec.Descriptor, Dataflow: f.rec.Dataflow,
		Nodes: nodes, WorkingDir: f.rec.WorkingDir, Artifacts: f.rec.Artifacts, Recovery: recovery,
	}
	// Daemons need where every node runs, not why: leaving the reasons out
	// keeps big dataflows inside one frame.
	sp.Placements = make([]proto.Placement, len(f.rec.Placements))
	for i, p := range f.rec.Placements {
		p.Reason = ""
		sp.Placements[i] = p
	}
	for _, did := range f.daemonIDs() {
		if s, ok := c.daemons[did]; ok {
			sp.Peers = append(sp.Peers, proto.Peer{DaemonID: did, MachineID: s.reg.MachineID, ZenohEndpoints: s.reg.ZenohEndpoints})
		}
	}
	return sp
}

// spawnJob is one daemon's part of a start.
type spawnJob struct {
	s   *daemonSession
	msg proto.Spawn
	err error
}

// spawnAll sends Spawn to every daemon of f in parallel. On any failure it
// stops f on every daemon it involved and records f as failed.
func (c *Coordinator) spawnAll(ctx context.Context, f *flow) error {
	jobs, err := c.spawnJobs(f)
	if err != nil {
		c.failStart(f, err)
		return err
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, c.cfg.SpawnTimeout)
			defer cancel()
			j.err = j.s.conn.Request(sctx, proto.TypeSpawn, j.msg, nil)
		}()
	}
	wg.Wait()

	var failed []string
	sessions := make([]*daemonSession, len(jobs))
	for i, j := range jobs {
		sessions[i] = j.s
		if j.err != nil {
			failed = append(failed, fmt.Sprintf("daemon `%s`: %s", j.s.name(), truncate(j.err.Error(), 1024)))
		}
	}
	if len(failed) == 0 {
		c.mu.Lock()
		for _, j := range jobs {
			if _, done := f.finished[j.s.id]; !done {
				markReportedLocked(j.s, f.rec.ID, j.msg.Nodes)
			}
		}
		c.mu.Unlock()
		return nil
	}
	// Roll back everywhere, including daemons that failed part-way.
	_, rbErrs := c.stopOn(sessions, f.rec.ID, 0, true)
	msg := fmt.Sprintf("spawn failed on %s; rolled back %d other daemon(s)", strings.Join(failed, "; "), len(jobs)-len(failed))
	if len(rbErrs) > 0 {
		msg += "; rollback failed on " + strings.Join(rbErrs, "; ")
	}
	err = errors.New(msg)
	c.failStart(f, err)
	return err
}

// spawnJobs builds one Spawn per daemon of f.
func (c *Coordinator) spawnJobs(f *flow) ([]*spawnJob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var jobs []*spawnJob
	for _, id := range f.daemonIDs() {
		s := c.daemons[id]
		if s == nil {
			return nil, fmt.Errorf("spawn failed: daemon %s disconnected before the start", id)
		}
		jobs = append(jobs, &spawnJob{s: s, msg: c.spawnMessageLocked(f, id, f.rec.NodesOn(id), false)})
	}
	return jobs, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (c *Coordinator) failStart(f *flow, err error) {
	c.log.Warn("dataflow start failed", "dataflow", f.rec.Name, "uuid", f.rec.ID, "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	f.starting = false
	c.finalizeLocked(f, proto.FlowFailed, err.Error())
}

// markReportedLocked records in s's last report that it runs nodes of
// dataflow id, so periodic recovery does not re-spawn what was just
// spawned before the daemon's next report arrives.
func markReportedLocked(s *daemonSession, id string, nodes []string) {
	if s.report == nil {
		s.report = &proto.StatusReport{}
	}
	if s.reports(id) {
		return
	}
	df := proto.DataflowReport{DataflowID: id}
	for _, n := range nodes {
		df.Nodes = append(df.Nodes, proto.NodeState{NodeID: n, Status: proto.NodeRunning})
	}
	s.report.Dataflows = append(s.report.Dataflows, df)
}

func unmarkReportedLocked(s *daemonSession, id string) {
	if s.report == nil {
		return
	}
	out := s.report.Dataflows[:0:0]
	for _, df := range s.report.Dataflows {
		if df.DataflowID != id {
			out = append(out, df)
		}
	}
	s.report = &proto.StatusReport{Dataflows: out}
}

// stopTimeout bounds a daemon's answer to Stop with grace g: the grace,
// the SIGTERM half-grace, and slack.
func stopTimeout(g time.Duration) time.Duration {
	if g <= 0 {
		g = proto.DefaultGrace
	}
	return g + g/2 + 15*time.Second
}

// stopOn sends Stop for dataflow id to sessions in parallel and returns
// the node states they report and one message per failure.
func (c *Coordinator) stopOn(sessions []*daemonSession, id string, grace time.Duration, force bool) ([]proto.NodeState, []string) {
	var mu sync.Mutex
	var nodes []proto.NodeState
	var errs []string
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.ctx, stopTimeout(grace))
			defer cancel()
			var rep proto.StopReply
			err := s.conn.Request(ctx, proto.TypeStop, proto.Stop{DataflowID: id, Grace: grace, Force: force}, &rep)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("daemon `%s`: %s", s.name(), truncate(err.Error(), 1024)))
				return
			}
			nodes = append(nodes, rep.Nodes...)
		}()
	}
	wg.Wait()
	sort.Strings(errs)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].NodeID < nodes[j].NodeID })
	return nodes, errs
}

// resolveLocked finds the active dataflow named ref (uuid or name).
func (c *Coordinator) resolveLocked(ref string) *flow {
	if f, ok := c.flows[ref]; ok {
		return f
	}
	for _, f := range c.flows {
		if f.rec.Name == ref {
			return f
		}
	}
	return nil
}

// resolveRecord finds the most recent stored dataflow named ref.
func (c *Coordinator) resolveRecord(ref string) (store.DataflowRecord, error) {
	if r, err := c.store.Dataflow(ref); err == nil {
		return r, nil
	}
	recs, err := c.store.Dataflows()
	if err != nil {
		return store.DataflowRecord{}, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Name == ref {
			return recs[i], nil
		}
	}
	return store.DataflowRecord{}, fmt.Errorf("no dataflow with name or uuid `%s`", ref)
}

// Stop stops an active dataflow (by name or uuid) on every daemon it runs
// on. Daemons that are not connected stop it when they reconnect; the
// reply's Error says so.
func (c *Coordinator) Stop(ctx context.Context, req proto.StopFlow) (proto.StopReply, error) {
	if req.Grace < 0 {
		return proto.StopReply{}, errors.New("the grace duration must not be negative")
	}
	c.mu.Lock()
	f := c.resolveLocked(req.Dataflow)
	if f == nil {
		c.mu.Unlock()
		r, err := c.resolveRecord(req.Dataflow)
		if err != nil {
			return proto.StopReply{}, err
		}
		return proto.StopReply{}, fmt.Errorf("dataflow `%s` (%s) is not running (status %s)", r.Name, r.ID, r.Status)
	}
	if f.starting {
		c.mu.Unlock()
		return proto.StopReply{}, fmt.Errorf("dataflow `%s` is still starting; try again in a moment", f.rec.Name)
	}
	if f.stopping {
		// Another stop is under way: wait for it rather than stop twice.
		done := f.done
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return proto.StopReply{}, fmt.Errorf("stop `%s`: %w", req.Dataflow, ctx.Err())
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		d := f.info()
		return proto.StopReply{DataflowID: d.ID, Name: d.Name, Status: d.Status, Nodes: d.Nodes, Error: d.Error}, nil
	}
	f.stopping = true
	f.rec.Status = proto.FlowStopping
	c.persistLocked(f)
	var sessions []*daemonSession
	var missing []string
	for _, id := range f.daemonIDs() {
		if _, done := f.finished[id]; done {
			continue
		}
		if s, ok := c.daemons[id]; ok {
			sessions = append(sessions, s)
		} else {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()

	c.log.Info("stopping dataflow", "dataflow", f.rec.Name, "uuid", f.rec.ID, "grace", req.Grace, "force", req.Force)
	nodes, errs := c.stopOn(sessions, f.rec.ID, req.Grace, req.Force)
	for _, id := range missing {
		errs = append(errs, fmt.Sprintf("daemon %s is not connected; its nodes will be stopped when it reconnects", id))
	}
	rep := proto.StopReply{DataflowID: f.rec.ID, Name: f.rec.Name, Status: proto.FlowStopped, Nodes: nodes, Error: strings.Join(errs, "; ")}
	c.mu.Lock()
	f.stopping = false
	for _, n := range nodes {
		f.nodes[n.NodeID] = n
	}
	c.finalizeLocked(f, proto.FlowStopped, rep.Error)
	c.mu.Unlock()
	return rep, nil
}

// Restart stops a dataflow (if it runs) and starts it again from its
// stored descriptor, working directory and artifacts under a new uuid.
func (c *Coordinator) Restart(ctx context.Context, req proto.Restart) (proto.RestartReply, error) {
	if req.Grace < 0 {
		return proto.RestartReply{}, errors.New("the grace duration must not be negative")
	}
	c.mu.Lock()
	f := c.resolveLocked(req.Dataflow)
	var rec store.DataflowRecord
	if f != nil {
		rec = f.rec
	}
	c.mu.Unlock()
	if f == nil {
		r, err := c.resolveRecord(req.Dataflow)
		if err != nil {
			return proto.RestartReply{}, err
		}
		rec = r
	} else {
		srep, err := c.Stop(ctx, proto.StopFlow{Dataflow: rec.ID, Grace: req.Grace, Force: req.Force})
		if err != nil {
			return proto.RestartReply{}, fmt.Errorf("restart `%s`: %w", rec.Name, err)
		}
		if srep.Error != "" {
			c.log.Warn("restart: stop was incomplete", "dataflow", rec.Name, "err", srep.Error)
		}
	}
	sr, err := c.Start(ctx, proto.Start{Name: rec.Name, Descriptor: rec.Descriptor, Dataflow: rec.Dataflow, WorkingDir: rec.WorkingDir, Artifacts: rec.Artifacts})
	if err != nil {
		return proto.RestartReply{}, fmt.Errorf("restart `%s`: %w", rec.Name, err)
	}
	if old, err := c.store.Dataflow(rec.ID); err == nil {
		old.RestartedAs = sr.DataflowID
		if err := c.store.PutDataflow(old); err != nil {
			c.log.Error("store dataflow", "dataflow", old.ID, "err", err)
		}
	}
	return proto.RestartReply{Name: rec.Name, OldID: rec.ID, NewID: sr.DataflowID, Placements: sr.Placements}, nil
}

// finalizeLocked ends f: records its final status, wakes waiters and log
// followers, and forgets it.
func (c *Coordinator) finalizeLocked(f *flow, st proto.FlowStatus, errText string) {
	if c.flows[f.rec.ID] != f {
		return
	}
	delete(c.flows, f.rec.ID)
	f.rec.Status, f.rec.Error = st, errText
	c.persistLocked(f)
	close(f.done)
	for k := range c.recovery {
		if k.flow == f.rec.ID {
			delete(c.recovery, k)
		}
	}
	c.endFollowersLocked(f.rec.ID, st, errText)
	if err := c.store.Prune(c.cfg.KeepFinished); err != nil {
		c.log.Warn("prune store", "err", err)
	}
	c.log.Info("dataflow ended", "dataflow", f.rec.Name, "uuid", f.rec.ID, "status", st, "error", errText)
}

// maybeFinishLocked ends f when every daemon finished its part.
func (c *Coordinator) maybeFinishLocked(f *flow) {
	if f.starting || f.stopping || c.flows[f.rec.ID] != f {
		return
	}
	var errs []string
	for _, id := range f.daemonIDs() {
		fin, ok := f.finished[id]
		if !ok {
			return
		}
		if fin.Failed {
			e := fin.Error
			if e == "" {
				e = "a node failed"
			}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		c.finalizeLocked(f, proto.FlowFailed, truncate(strings.Join(errs, "; "), 4096))
		return
	}
	c.finalizeLocked(f, proto.FlowSucceeded, "")
}

func (c *Coordinator) dataflowFinished(s *daemonSession, fin proto.DataflowFinished) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.flows[fin.DataflowID]
	unmarkReportedLocked(s, fin.DataflowID)
	delete(s.metrics, fin.DataflowID)
	if !ok {
		return
	}
	f.setNodesLocked(s.id, fin.Nodes)
	if f.recovering[s.id] && fin.Failed {
		// A re-spawn that crashed: try again after the backoff rather
		// than ending the dataflow.
		delete(f.recovering, s.id)
		c.recovery[recoveryKey{s.id, f.rec.ID}] = c.clock.Now()
		c.log.Warn("auto-recovery: re-spawned nodes failed; retrying after backoff", "dataflow", f.rec.Name, "uuid", f.rec.ID, "daemon", s.name(), "err", fin.Error)
		return
	}
	delete(f.recovering, s.id)
	f.finished[s.id] = fin
	c.maybeFinishLocked(f)
}
