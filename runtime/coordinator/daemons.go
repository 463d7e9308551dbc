package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/gorilla/websocket"

	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	// The bearer token, not the Origin header, authenticates peers; CLIs
	// and daemons send no Origin.
	CheckOrigin: func(*http.Request) bool { return true },
}

// helloTimeout bounds the wait for a fresh connection's hello.
const helloTimeout = 10 * time.Second

// maxMachineID bounds a machine id (it ends up in unit names and logs).
const maxMachineID = 256

// daemonSession is one daemon connection. Fields after reg are guarded by
// Coordinator.mu.
type daemonSession struct {
	conn       *wsconn.Conn
	remote     string
	id         string // daemon uuid, set at register
	reg        proto.Register
	registered bool

	connectedAt   time.Time
	lastHeartbeat time.Time
	late          bool // warned about a late heartbeat
	unresponsive  bool // did not answer a probe; may be replaced
	stats         proto.FaultStats
	report        *proto.StatusReport                    // last status report; nil before the first
	metrics       map[string]map[string]proto.NodeMetric // dataflow -> node -> latest
	// unknownSince holds, for each dataflow the daemon reports that
	// neither c.flows nor the store knows, when it was first seen so (or
	// when the last stop of it was sent); see stopUnknown.
	unknownSince map[string]time.Time
	// stopping holds the dataflows a Stop is in flight for (stopOnDaemon).
	stopping map[string]bool
}

func (s *daemonSession) name() string {
	if s.reg.MachineID != "" {
		return s.reg.MachineID
	}
	if s.id != "" {
		return s.id
	}
	return s.remote
}

func (s *daemonSession) lastHeartbeatAt() time.Time { return s.lastHeartbeat }

func (s *daemonSession) info(connected bool) proto.DaemonInfo {
	d := proto.DaemonInfo{
		ID: s.id, MachineID: s.reg.MachineID, Labels: s.reg.Labels, Version: s.reg.Version,
		Hostname: s.reg.Hostname, OS: s.reg.OS, Arch: s.reg.Arch, RemoteAddr: s.remote,
		ZenohEndpoints: s.reg.ZenohEndpoints, Connected: connected,
		ConnectedAt: s.connectedAt, LastHeartbeat: s.lastHeartbeat, Stats: s.stats,
	}
	if s.report != nil {
		for _, df := range s.report.Dataflows {
			d.Dataflows = append(d.Dataflows, df.DataflowID)
			for _, n := range df.Nodes {
				if !n.Status.Done() && n.Status != proto.NodePending {
					d.NodesRunning++
				}
			}
		}
		sort.Strings(d.Dataflows)
	}
	return d
}

// reports reports whether s's last status report lists dataflow id.
func (s *daemonSession) reports(id string) bool {
	if s.report == nil {
		return false
	}
	for _, df := range s.report.Dataflows {
		if df.DataflowID == id {
			return true
		}
	}
	return false
}

func (c *Coordinator) handleDaemon(w http.ResponseWriter, r *http.Request) {
	if !c.track(w) {
		return
	}
	defer c.untrack()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	// Closing the coordinator must not wait for a peer that never says hello.
	stopHello := context.AfterFunc(c.ctx, func() { ws.NetConn().Close() })
	_, err = wsconn.ServerHello(ws, proto.RoleDaemon, helloTimeout)
	stopHello()
	if err != nil {
		c.log.Warn("daemon hello refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	s := &daemonSession{remote: r.RemoteAddr, metrics: map[string]map[string]proto.NodeMetric{}}
	s.conn = wsconn.New(ws, func(conn *wsconn.Conn, e *proto.Envelope) { c.daemonMessage(s, e) }, c.cfg.ConnOptions)
	s.conn.Start()
	select {
	case <-s.conn.Done():
	case <-c.ctx.Done():
	}
	s.conn.Close()
	c.daemonGone(s)
}

// daemonGone forgets s unless a newer connection of the same daemon
// replaced it (a stale close must never remove the live connection).
func (c *Coordinator) daemonGone(s *daemonSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.registered || c.daemons[s.id] != s {
		return
	}
	delete(c.daemons, s.id)
	if len(s.unknownSince) > 0 {
		c.unknownGone[s.id] = s.unknownSince
	}
	reason := "closed"
	if err := s.conn.Err(); err != nil {
		reason = err.Error()
	}
	c.log.Info("daemon disconnected", "daemon", s.name(), "uuid", s.id, "reason", reason)
	rec := c.daemonRecordLocked(s)
	if err := c.store.PutDaemon(rec); err != nil {
		c.log.Error("store daemon", "daemon", s.id, "err", err)
	}
}

func (c *Coordinator) daemonRecordLocked(s *daemonSession) store.DaemonRecord {
	return store.DaemonRecord{
		ID: s.id, MachineID: s.reg.MachineID, Labels: s.reg.Labels, Version: s.reg.Version,
		Hostname: s.reg.Hostname, OS: s.reg.OS, Arch: s.reg.Arch, ZenohEndpoints: s.reg.ZenohEndpoints,
		FirstSeen: s.connectedAt, LastSeen: s.lastHeartbeat,
	}
}

// daemonMessage handles one message from a daemon (on its reader goroutine).
func (c *Coordinator) daemonMessage(s *daemonSession, e *proto.Envelope) {
	if !s.registered {
		if e.Type != proto.TypeRegister || !e.IsRequest() {
			c.log.Warn("daemon sent a message before registering", "remote", s.remote, "type", e.Type)
			s.conn.Reply(c.ctx, e, "", nil, errors.New("register first"))
			s.conn.Abort()
			return
		}
		c.register(s, e)
		return
	}
	if !c.isLive(s) {
		// A replaced connection's late messages must not undo what the
		// live connection reported.
		if e.IsRequest() {
			s.conn.Reply(c.ctx, e, "", nil, errors.New("connection replaced by a newer one"))
		}
		return
	}
	var err error
	switch e.Type {
	case proto.TypeRegister:
		err = errors.New("daemon already registered on this connection")
		s.conn.Reply(c.ctx, e, "", nil, err)
		s.conn.Abort()
		return
	case proto.TypeHeartbeat:
		var hb proto.Heartbeat
		if err = e.Into(&hb); err == nil {
			c.mu.Lock()
			s.lastHeartbeat = c.clock.Now()
			s.stats = hb.Stats
			c.mu.Unlock()
		}
	case proto.TypeStatusReport:
		var rep proto.StatusReport
		if err = e.Into(&rep); err == nil {
			c.statusReport(s, rep)
		}
	case proto.TypeNodeMetrics:
		var m proto.NodeMetrics
		if err = e.Into(&m); err == nil {
			c.nodeMetrics(s, m)
			c.dataPlaneReport(s, m.Time, m.DataPlane)
		}
	case proto.TypeLog:
		var l proto.Log
		if err = e.Into(&l); err == nil {
			c.daemonLog(s, l.Lines)
		}
	case proto.TypeNodeStatus:
		var ev proto.NodeStatusEvent
		if err = e.Into(&ev); err == nil {
			c.nodeStatus(s, ev)
		}
	case proto.TypeDataflowFinished:
		var f proto.DataflowFinished
		if err = e.Into(&f); err == nil {
			c.dataflowFinished(s, f)
		}
	default:
		if e.IsRequest() {
			s.conn.Reply(c.ctx, e, "", nil, fmt.Errorf("unknown request %q", e.Type))
		}
		return
	}
	if err != nil {
		c.log.Warn("bad message from daemon", "daemon", s.name(), "type", e.Type, "err", err)
	}
	if e.IsRequest() {
		s.conn.Reply(c.ctx, e, "", nil, err)
	}
}

func (c *Coordinator) isLive(s *daemonSession) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.daemons[s.id] == s
}

// register admits s under its stable identity.
func (c *Coordinator) register(s *daemonSession, e *proto.Envelope) {
	var reg proto.Register
	err := e.Into(&reg)
	if err == nil {
		err = validRegister(reg)
	}
	if err == nil {
		err = c.checkOldAlive(reg)
	}
	var stale *daemonSession
	if err == nil {
		stale, err = c.admit(s, reg)
	}
	if err != nil {
		c.log.Warn("daemon registration refused", "remote", s.remote, "machine", reg.MachineID, "err", err)
		s.conn.Reply(c.ctx, e, "", nil, err)
		s.conn.Abort()
		return
	}
	if stale != nil {
		c.log.Info("daemon reconnected, replacing its stale connection", "daemon", s.name(), "uuid", s.id, "old_remote", stale.remote)
		stale.conn.Abort()
	}
	c.log.Info("daemon registered", "daemon", s.name(), "uuid", s.id, "version", reg.Version, "remote", s.remote, "labels", reg.Labels)
	s.conn.Reply(c.ctx, e, proto.TypeRegisterOK, proto.RegisterOK{DaemonID: s.id, RemoteAddr: s.remote}, nil)
	c.catchUp(s)
}

// checkOldAlive looks at the live connections a registration would
// displace: the same uuid (a restarted daemon) and another daemon holding
// the same machine id. Each gets ProbeTimeout to answer a ping. One that
// answers is a live daemon, and the registration is refused; one that
// does not is stale, marked so, and replaced by admit.
func (c *Coordinator) checkOldAlive(reg proto.Register) error {
	c.mu.Lock()
	old := c.daemons[reg.DaemonUUID]
	var holder *daemonSession
	if reg.MachineID != "" {
		for id, o := range c.daemons {
			if id != reg.DaemonUUID && o.reg.MachineID == reg.MachineID {
				holder = o
			}
		}
	}
	c.mu.Unlock()
	if old != nil && c.answers(old) {
		return fmt.Errorf("daemon %s is already connected (from %s, pid %d on %s) and still answers: two daemons share one identity; give each daemon its own --machine-id or ADORA_HOME",
			reg.DaemonUUID, old.remote, old.reg.PID, old.reg.Hostname)
	}
	if holder != nil && c.answers(holder) {
		return fmt.Errorf("machine id %q is already in use by daemon %s (connected from %s); stop that daemon or start this one with another --machine-id",
			reg.MachineID, holder.id, holder.remote)
	}
	return nil
}

// answers probes s; a session that does not answer is marked unresponsive.
func (c *Coordinator) answers(s *daemonSession) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ProbeTimeout)
	defer cancel()
	if s.conn.Probe(ctx) == nil {
		return true
	}
	c.mu.Lock()
	s.unresponsive = true
	c.mu.Unlock()
	return false
}

func validRegister(r proto.Register) error {
	if r.DaemonUUID == "" {
		return errors.New("register: daemon_uuid is empty")
	}
	if len(r.DaemonUUID) > 128 || len(r.MachineID) > maxMachineID {
		return errors.New("register: daemon_uuid or machine_id too long")
	}
	return nil
}

// admit records s as the live connection of daemon reg.DaemonUUID. A
// different daemon already connected with the same machine id is refused.
// It returns the stale connection s replaces, if any.
func (c *Coordinator) admit(s *daemonSession, reg proto.Register) (*daemonSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("coordinator is shutting down")
	}
	if reg.MachineID != "" {
		for id, o := range c.daemons {
			if id == reg.DaemonUUID || o.reg.MachineID != reg.MachineID {
				continue
			}
			if !o.unresponsive {
				return nil, fmt.Errorf("machine id %q is already in use by daemon %s (connected from %s); stop that daemon or start this one with another --machine-id",
					reg.MachineID, id, o.remote)
			}
			// A daemon that did not answer its probe gives way.
			c.log.Warn("replacing an unresponsive daemon that held the machine id", "machine", reg.MachineID, "old", id, "new", reg.DaemonUUID)
			delete(c.daemons, id)
			o.conn.Abort()
		}
	}
	now := c.clock.Now()
	stale := c.daemons[reg.DaemonUUID]
	if stale != nil {
		s.unknownSince = stale.unknownSince
	} else {
		s.unknownSince = c.unknownGone[reg.DaemonUUID]
	}
	delete(c.unknownGone, reg.DaemonUUID)
	s.id, s.reg, s.registered = reg.DaemonUUID, reg, true
	s.connectedAt, s.lastHeartbeat = now, now
	c.daemons[s.id] = s
	if err := c.store.PutDaemon(c.daemonRecordLocked(s)); err != nil {
		c.log.Error("store daemon", "daemon", s.id, "err", err)
	}
	return stale, nil
}

func (c *Coordinator) sortedDaemonsLocked() []*daemonSession {
	out := make([]*daemonSession, 0, len(c.daemons))
	for _, s := range c.daemons {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].reg.MachineID != out[j].reg.MachineID {
			return out[i].reg.MachineID < out[j].reg.MachineID
		}
		return out[i].id < out[j].id
	})
	return out
}

// statusReport reconciles what a daemon runs with what should run.
func (c *Coordinator) statusReport(s *daemonSession, rep proto.StatusReport) {
	for _, fin := range rep.Finished {
		c.dataflowFinished(s, fin)
	}
	var orphans []string
	c.mu.Lock()
	s.report = &rep
	for id := range s.unknownSince {
		if !s.reports(id) {
			delete(s.unknownSince, id) // gone, or no longer reported
		}
	}
	for _, df := range rep.Dataflows {
		f, ok := c.flows[df.DataflowID]
		if !ok {
			orphans = append(orphans, df.DataflowID)
			continue
		}
		delete(s.unknownSince, df.DataflowID)
		delete(c.recovery, recoveryKey{daemon: s.id, flow: f.rec.ID})
		delete(f.recovering, s.id)
		f.setNodesLocked(s.id, df.Nodes)
		c.adoptLocked(f, s)
		if f.rec.Status == proto.FlowRecovering || f.rec.Status == proto.FlowPending && !f.starting {
			f.rec.Status = proto.FlowRunning
			c.persistLocked(f)
			c.log.Info("dataflow reported running", "dataflow", f.rec.Name, "uuid", f.rec.ID, "daemon", s.name())
		}
	}
	c.mu.Unlock()
	c.stopOrphans(s, orphans)
	c.recover(s)
}

// adoptLocked moves placements that name s's machine but an older daemon
// uuid (the machine's identity was reset) over to s.
func (c *Coordinator) adoptLocked(f *flow, s *daemonSession) {
	if s.reg.MachineID == "" {
		return
	}
	changed := false
	for i, p := range f.rec.Placements {
		if p.MachineID == s.reg.MachineID && p.DaemonID != s.id {
			f.rec.Placements[i].DaemonID = s.id
			changed = true
		}
	}
	if changed {
		c.persistLocked(f)
	}
}

// stopOrphans stops dataflows a daemon runs that this coordinator stopped
// or finished while the daemon was away. Dataflows the store never saw
// are noted, and stopped by stopUnknown once Config.UnknownGrace passed.
func (c *Coordinator) stopOrphans(s *daemonSession, ids []string) {
	for _, id := range ids {
		rec, err := c.store.Dataflow(id)
		if errors.Is(err, store.ErrNotFound) {
			c.noteUnknown(s, id)
			continue
		}
		if err != nil {
			c.log.Warn("daemon reports a dataflow the store cannot read; leaving it alone", "daemon", s.name(), "dataflow", id, "err", err)
			continue
		}
		if rec.Status.Active() {
			continue
		}
		reason := fmt.Sprintf("the coordinator records dataflow `%s` as %s: it ended while this daemon was disconnected", rec.Name, rec.Status)
		c.stopOnDaemon(s, proto.Stop{DataflowID: id, Reason: reason}, func() {
			c.log.Info("daemon still runs a dataflow that ended; stopping it", "daemon", s.name(), "dataflow", rec.Name, "uuid", id)
		}, nil)
	}
}

// stopOnDaemon sends s a Stop on a worker, unless a Stop of that dataflow
// to s is in flight already (a daemon reports while it stops, and every
// report would otherwise add a Stop). announce, if set, runs before the
// Stop is sent; done, if set, after a successful reply.
func (c *Coordinator) stopOnDaemon(s *daemonSession, stop proto.Stop, announce func(), done func(proto.StopReply)) {
	id := stop.DataflowID
	c.mu.Lock()
	if s.stopping[id] || c.closed {
		c.mu.Unlock()
		return
	}
	if s.stopping == nil {
		s.stopping = map[string]bool{}
	}
	s.stopping[id] = true
	c.mu.Unlock()
	if announce != nil {
		announce()
	}
	ok := c.goWorker(func() {
		ctx, cancel := context.WithTimeout(c.ctx, stopTimeout(stop.Grace))
		defer cancel()
		var rep proto.StopReply
		err := s.conn.Request(ctx, proto.TypeStop, stop, &rep)
		c.mu.Lock()
		delete(s.stopping, id)
		c.mu.Unlock()
		if err != nil {
			c.log.Warn("stop dataflow on daemon", "daemon", s.name(), "dataflow", id, "err", err)
			return
		}
		if done != nil {
			done(rep)
		}
	})
	if !ok {
		c.mu.Lock()
		delete(s.stopping, id)
		c.mu.Unlock()
	}
}

// nodeMetrics records the latest metric of each node a report names. A
// daemon may split its report over several messages; the metrics of a
// dataflow are dropped when its part ends.
func (c *Coordinator) nodeMetrics(s *daemonSession, m proto.NodeMetrics) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nm := range m.Metrics {
		byNode := s.metrics[nm.DataflowID]
		if byNode == nil {
			byNode = map[string]proto.NodeMetric{}
			s.metrics[nm.DataflowID] = byNode
		}
		byNode[nm.NodeID] = nm
	}
}

func (c *Coordinator) nodeStatus(s *daemonSession, ev proto.NodeStatusEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.flows[ev.DataflowID]; ok {
		f.setNodeLocked(s.id, ev.Node)
	}
}
