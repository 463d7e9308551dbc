package coordinator

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

// dataPlaneState is the latest data-plane (Zenoh) report of one daemon
// and the rates since the one before. It outlives the daemon's connection:
// the Zenoh id it holds is how other daemons' links to that daemon are
// recognised while it is away.
type dataPlaneState struct {
	at       time.Time // the daemon's report time
	received time.Time // by the coordinator's clock
	report   proto.DataPlaneReport
	// rates: messages in, messages out, bytes in, bytes out per second.
	msgIn, msgOut, bytesIn, bytesOut float64
}

// dataPlaneReport records the data-plane part of a daemon's NodeMetrics.
func (c *Coordinator) dataPlaneReport(s *daemonSession, at time.Time, r *proto.DataPlaneReport) {
	if r == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := &dataPlaneState{at: at, received: c.clock.Now(), report: *r}
	if prev := c.dataPlane[s.id]; prev != nil {
		next.rates(prev)
	}
	c.dataPlane[s.id] = next
}

// rates fills the per-second rates from the counters of prev, unless the
// counters went back (the daemon restarted) or no time passed.
func (st *dataPlaneState) rates(prev *dataPlaneState) {
	dt := st.at.Sub(prev.at).Seconds()
	now, old := st.report.Counters, prev.report.Counters
	if dt <= 0 || now.MessagesReceived < old.MessagesReceived || now.MessagesSent < old.MessagesSent ||
		now.BytesReceived < old.BytesReceived || now.BytesSent < old.BytesSent {
		return
	}
	st.msgIn = float64(now.MessagesReceived-old.MessagesReceived) / dt
	st.msgOut = float64(now.MessagesSent-old.MessagesSent) / dt
	st.bytesIn = float64(now.BytesReceived-old.BytesReceived) / dt
	st.bytesOut = float64(now.BytesSent-old.BytesSent) / dt
}

// dataPlaneStatusLocked summarises the data plane of connected daemon s,
// or returns nil when s reported none since it connected (a report from
// before may describe a daemon since restarted without a data plane).
func (c *Coordinator) dataPlaneStatusLocked(s *daemonSession) *proto.DataPlaneStatus {
	st := c.dataPlane[s.id]
	if st == nil || st.received.Before(s.connectedAt) {
		return nil
	}
	out := &proto.DataPlaneStatus{
		DaemonID: s.id, MachineID: s.reg.MachineID, Time: st.at,
		Links: len(st.report.Links), Counters: st.report.Counters,
		MessagesInPerSec: st.msgIn, MessagesOutPerSec: st.msgOut, BytesInPerSec: st.bytesIn, BytesOutPerSec: st.bytesOut,
	}
	for _, p := range c.expectedPeersLocked(s.id) {
		out.PeersExpected++
		if c.linkedLocked(st.report.Links, p.id) {
			out.PeersUp++
		} else {
			out.Unreachable = append(out.Unreachable, p.name)
		}
	}
	sort.Strings(out.Unreachable)
	return out
}

type expectedPeer struct{ id, name string }

// expectedPeersLocked lists the daemons daemon id should have a link to:
// the other daemons of the active dataflows it takes part in that have a
// data plane (they registered Zenoh endpoints, or reported a data plane
// before), sorted by id.
func (c *Coordinator) expectedPeersLocked(id string) []expectedPeer {
	names := map[string]string{}
	for _, f := range c.flows {
		if !slices.Contains(f.daemonIDs(), id) {
			continue
		}
		for _, p := range f.rec.Placements {
			if p.DaemonID != id && names[p.DaemonID] == "" {
				names[p.DaemonID] = p.MachineID
			}
		}
	}
	out := make([]expectedPeer, 0, len(names))
	for pid, name := range names {
		s, connected := c.daemons[pid]
		if connected {
			name = s.reg.MachineID
		}
		if (!connected || len(s.reg.ZenohEndpoints) == 0) && c.dataPlane[pid] == nil {
			continue // no data plane known: the coordinator handed no endpoint
		}
		if name == "" {
			name = pid
		}
		out = append(out, expectedPeer{id: pid, name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// linkedLocked reports whether links include one to daemon pid: to its
// last reported Zenoh id, or (a link this side dialled) to one of the
// endpoints it registered.
func (c *Coordinator) linkedLocked(links []proto.DataPlaneLink, pid string) bool {
	zid := ""
	if st := c.dataPlane[pid]; st != nil {
		zid = st.report.ZID
	}
	addrs := map[string]bool{}
	if s, ok := c.daemons[pid]; ok {
		for _, ep := range s.reg.ZenohEndpoints {
			if _, addr, ok := strings.Cut(ep, "/"); ok {
				addrs[addr] = true
			}
		}
	}
	for _, l := range links {
		if (zid != "" && l.ZID == zid) || (l.Initiator && addrs[l.Remote]) {
			return true
		}
	}
	return false
}

// dataPlaneStatusesLocked summarises every connected daemon that reported
// a data plane, sorted by machine id then daemon id.
func (c *Coordinator) dataPlaneStatusesLocked() []proto.DataPlaneStatus {
	var out []proto.DataPlaneStatus
	for _, s := range c.sortedDaemonsLocked() {
		if st := c.dataPlaneStatusLocked(s); st != nil {
			out = append(out, *st)
		}
	}
	return out
}

// encodedSize is the JSON size of v.
func encodedSize(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}
