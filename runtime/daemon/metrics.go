package daemon

import (
	"context"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/supervisor"
)

type cpuKey struct{ flow, node string }

type cpuSample struct {
	pid  int
	at   time.Time
	used time.Duration
}

// tick sends heartbeats and node metrics while connected.
func (d *Daemon) tick(ctx context.Context) {
	hb := time.NewTicker(d.interval(d.cfg.HeartbeatInterval, proto.HeartbeatInterval))
	defer hb.Stop()
	mt := time.NewTicker(d.interval(d.cfg.MetricsInterval, proto.MetricsInterval))
	defer mt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			d.send(proto.TypeHeartbeat, proto.Heartbeat{Stats: d.faultStats()})
		case <-mt.C:
			if m := d.metrics(time.Now()); len(m.Metrics) > 0 || m.DataPlane != nil {
				d.send(proto.TypeNodeMetrics, m)
			}
		}
	}
}

// metrics samples every node: CPU from the change of its CPU time since
// the last sample, RSS, restarts, status and router drops; and the data
// plane's links and counters when the transport can tell them.
func (d *Daemon) metrics(now time.Time) proto.NodeMetrics {
	d.mu.Lock()
	runs := make(map[string]*flowRun, len(d.flows))
	for id, r := range d.flows {
		runs[id] = r
	}
	d.mu.Unlock()
	out := proto.NodeMetrics{Time: now.UTC(), DataPlane: d.dataPlane()}
	for id, r := range runs {
		drops := r.flow.Drops()
		for _, n := range r.flow.Nodes() {
			m := proto.NodeMetric{DataflowID: id, NodeID: n.ID, PID: n.PID, Restarts: n.Restarts, Status: nodeStatus(n.Status), Drops: drops[n.ID]}
			if n.PID > 0 {
				if st, err := supervisor.ReadProcStat(n.PID); err == nil {
					m.MemoryBytes = st.RSS
					m.CPUPercent = d.cpuPercent(cpuKey{id, n.ID}, n.PID, now, st.CPUTime)
				}
			}
			out.Metrics = append(out.Metrics, m)
		}
	}
	return out
}

func (d *Daemon) cpuPercent(k cpuKey, pid int, now time.Time, used time.Duration) float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, ok := d.cpu[k]
	d.cpu[k] = cpuSample{pid: pid, at: now, used: used}
	if !ok || prev.pid != pid || !now.After(prev.at) {
		return 0
	}
	return 100 * float64(used-prev.used) / float64(now.Sub(prev.at))
}

// forwardLogs batches node log lines to the coordinator: up to 200 lines
// or every 100 ms. Lines are dropped while disconnected (the files keep
// them).
func (d *Daemon) forwardLogs(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var batch []proto.LogLine
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		d.mu.Lock()
		c := d.conn
		d.mu.Unlock()
		if c != nil {
			c.TrySend(proto.TypeLog, proto.Log{Lines: batch})
		}
		batch, size = nil, 0
	}
	add := func(l proto.LogLine) {
		if n := lineWireSize(l); size+n > maxLogBatchBytes {
			flush()
		}
		batch = append(batch, l)
		size += lineWireSize(l)
		if len(batch) >= 200 {
			flush()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-d.logs:
			add(l)
		case <-t.C:
			flush()
		case done := <-d.flushReq:
			for drained := false; !drained; {
				select {
				case l := <-d.logs:
					add(l)
				default:
					drained = true
				}
			}
			flush()
			close(done)
		}
	}
}

// flushLogs hands every queued log line to the connection before it
// returns, so that an event sent next (a dataflow's end) cannot overtake
// the node's last lines.
func (d *Daemon) flushLogs() {
	done := make(chan struct{})
	select {
	case d.flushReq <- done:
	case <-time.After(time.Second):
		return
	}
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// faultStats are the daemon's cumulative counters: restarts, and input
// timeouts of ended dataflows plus those of the running ones.
func (d *Daemon) faultStats() proto.FaultStats {
	d.mu.Lock()
	st := d.stats
	flows := make([]*Flow, 0, len(d.flows))
	for _, r := range d.flows {
		flows = append(flows, r.flow)
	}
	d.mu.Unlock()
	for _, f := range flows {
		st.InputTimeouts += f.InputTimeouts()
	}
	return st
}

// Bounds that keep every log message under proto.MaxMessageSize.
const (
	// maxStreamedLine cuts a line streamed to the coordinator (the node's
	// log file keeps it whole).
	maxStreamedLine = 16 << 10
	// maxLogBatchBytes bounds the worst-case JSON size of one Log batch.
	maxLogBatchBytes = 768 << 10
)

// lineWireSize is an upper bound of a line's JSON size (every byte of the
// text escaped as \u00XX, plus the fields).
func lineWireSize(l proto.LogLine) int { return 6*len(l.Line) + 256 }
