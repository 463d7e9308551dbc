package coordinator

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/adora-rs/adora/runtime/proto"
)

// Auto-recovery, as the deployment guide describes it: when a daemon's
// status report lacks a running dataflow that has nodes assigned to that
// daemon (by its uuid, or by its machine id), those nodes are spawned
// again, at most once per proto.RecoveryBackoff per daemon and dataflow.
// A report that includes the dataflow clears the backoff.

type recoveryJob struct {
	msg   proto.Spawn
	flow  *flow
	nodes []string
}

// recover re-spawns, on daemon s, the nodes of running dataflows assigned
// to it that its last status report lacks, at most once per
// proto.RecoveryBackoff per daemon and dataflow.
func (c *Coordinator) recover(s *daemonSession) {
	now := c.clock.Now()
	var jobs []recoveryJob
	c.mu.Lock()
	if !s.registered || c.daemons[s.id] != s || s.report == nil {
		c.mu.Unlock()
		return
	}
	ids := make([]string, 0, len(c.flows))
	for id := range c.flows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f := c.flows[id]
		if f.starting || f.stopping || (f.rec.Status != proto.FlowRunning && f.rec.Status != proto.FlowRecovering) {
			continue
		}
		if _, done := f.finished[s.id]; done || s.reports(id) || f.inflight[s.id] {
			continue // finished, running, or a re-spawn is in flight
		}
		nodes := f.nodesFor(s)
		if len(nodes) == 0 {
			continue
		}
		key := recoveryKey{s.id, id}
		if last, ok := c.recovery[key]; ok && now.Sub(last) < proto.RecoveryBackoff {
			continue
		}
		c.recovery[key] = now
		f.recovering[s.id] = true
		f.inflight[s.id] = true
		c.adoptLocked(f, s)
		c.log.Info(fmt.Sprintf("auto-recovery: re-spawning dataflow %s (%s) nodes [%s] on daemon %s", f.rec.Name, id, strings.Join(nodes, " "), s.name()))
		jobs = append(jobs, recoveryJob{msg: c.spawnMessageLocked(f, s.id, nodes, true), flow: f, nodes: nodes})
	}
	c.mu.Unlock()
	for _, j := range jobs {
		c.goWorker(func() { c.recoverySpawn(s, j) })
	}
}

func (c *Coordinator) recoverySpawn(s *daemonSession, j recoveryJob) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SpawnTimeout)
	defer cancel()
	err := s.conn.Request(ctx, proto.TypeSpawn, j.msg, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(j.flow.inflight, s.id)
	if err != nil {
		delete(j.flow.recovering, s.id)
		c.log.Warn("auto-recovery: re-spawn failed; retrying after backoff", "dataflow", j.flow.rec.Name, "uuid", j.flow.rec.ID, "daemon", s.name(), "err", err)
		return
	}
	if !j.flow.recovering[s.id] {
		return // the re-spawned part already ended (dataflowFinished)
	}
	markReportedLocked(s, j.flow.rec.ID, j.nodes)
	if c.flows[j.flow.rec.ID] == j.flow && j.flow.rec.Status == proto.FlowRecovering {
		j.flow.rec.Status = proto.FlowRunning
		c.persistLocked(j.flow)
	}
}
