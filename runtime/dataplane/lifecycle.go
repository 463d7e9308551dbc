package dataplane

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// StopManual is the cause RequestStop sends.
const StopManual = "MANUAL"

// RequestStop delivers STOP to the node, ahead of its queued inputs (step
// one of a graceful stop; the daemon kills the process after its grace
// period).
func (r *Router) RequestStop(nodeID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := r.nodes[nodeID]
	if ns == nil || ns.gone {
		return
	}
	r.pushEventLocked(ns, &shm.Msg{Type: shm.MsgStop, ID: StopManual}, true)
}

// NodeExited reports that a node's process exited. restarting says the
// daemon will spawn it again (downstream gets NODE_RESTARTED); otherwise
// downstream gets NODE_FAILED when failed, then INPUT_CLOSED for every
// input fed by the node. Drop tokens the node held are released and the
// regions it owned are reclaimed once no receiver uses them.
func (r *Router) NodeExited(nodeID string, restarting, failed bool) {
	r.mu.Lock()
	ns := r.nodes[nodeID]
	if ns == nil || r.closed {
		r.mu.Unlock()
		return
	}
	if c := ns.conn; c != nil {
		r.detachLocked(c)
	}
	ns.secret = ""
	delete(r.waiting, nodeID)
	r.checkBarrierLocked()
	if !restarting {
		ns.gone = true
		for e := ns.fifo.Front(); e != nil; e = e.Next() {
			it := e.Value.(*item)
			if it.sample != nil {
				r.unrefSampleLocked(it.sample)
			}
			if it.edge != nil {
				it.edge.closeRecvEndLocked() // EDGE_IN never goes out
			}
		}
		ns.fifo.Init()
		for _, in := range ns.inputs {
			in.items = nil
			if in.timeout != nil {
				in.timeout.Stop()
			}
		}
		r.cond.Broadcast()
	}
	var remote func()
	if c := ns.lastConn; c != nil && c.reading {
		// The reader still routes what the process sent before it died;
		// connClosed applies the exit after the last message.
		c.exit = &exitInfo{restarting: restarting, failed: failed}
	} else {
		remote = r.applyExitLocked(nodeID, restarting, failed)
	}
	r.mu.Unlock()
	if remote != nil {
		remote()
	}
}

type exitInfo struct{ restarting, failed bool }

// applyExitLocked tells receivers that nodeID restarted or is gone; the
// returned func publishes the same to remote daemons (call it unlocked).
func (r *Router) applyExitLocked(nodeID string, restarting, failed bool) func() {
	r.sourceEventLocked(nodeID, restarting, failed)
	remote := r.cfg.Remote
	if remote == nil {
		return nil
	}
	return func() {
		ev := RemoteEvent{Kind: NodeRestarted, Node: nodeID}
		if !restarting {
			if !failed {
				r.publishOutputsClosed(remote, nodeID)
				return
			}
			ev = RemoteEvent{Kind: NodeFailed, Node: nodeID, Error: "node exited with an error"}
		}
		if err := remote.PublishEvent(ev); err != nil {
			r.log.Warn("publish node event to remote daemons", "node", nodeID, "event", ev.Kind, "err", err)
		}
	}
}

func (r *Router) publishOutputsClosed(remote Remote, nodeID string) {
	for k := range r.remoteOut {
		if k.node != nodeID {
			continue
		}
		if err := remote.PublishEvent(RemoteEvent{Kind: OutputClosed, Node: k.node, Output: k.output}); err != nil {
			r.log.Warn("publish output closed to remote daemons", "node", k.node, "output", k.output, "err", err)
		}
	}
}

// sourceEventLocked tells the receivers of src's outputs that it restarted
// or is gone.
func (r *Router) sourceEventLocked(src string, restarting, failed bool) {
	for _, ns := range r.nodes {
		if ns.gone {
			continue
		}
		var affected []*inputState
		for _, in := range ns.inputs {
			if !in.spec.Source.IsTimer() && in.spec.Source.Node == src {
				affected = append(affected, in)
			}
		}
		if len(affected) == 0 {
			continue
		}
		slices.SortFunc(affected, func(a, b *inputState) int { return cmpString(a.spec.ID, b.spec.ID) })
		ids := make([]string, len(affected))
		for i, in := range affected {
			ids[i] = in.spec.ID
		}
		switch {
		case restarting:
			r.pushEventLocked(ns, &shm.Msg{Type: shm.MsgNodeRestarted, ID: src, IDs: ids}, false)
			continue
		case failed:
			r.pushEventLocked(ns, &shm.Msg{Type: shm.MsgNodeFailed, ID: src, IDs: ids, Error: "node exited with an error"}, false)
		}
		for _, in := range affected {
			r.closeInputLocked(in)
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// startTimers runs one ticker per distinct timer interval, shared by every
// input that uses it.
func (r *Router) startTimers() {
	by := map[time.Duration][]*inputState{}
	for _, ns := range r.nodes {
		for _, in := range ns.inputs {
			if d := in.spec.Source.Timer; d > 0 {
				by[d] = append(by[d], in)
			}
		}
	}
	for d, ins := range by {
		r.wg.Add(1)
		go r.timerLoop(d, ins)
	}
}

func (r *Router) timerLoop(d time.Duration, ins []*inputState) {
	defer r.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case now := <-t.C:
			r.mu.Lock()
			meta := shm.Meta{Timestamp: now.UnixNano()}
			for _, in := range ins {
				r.enqueueLocked(in, meta, nil, nil, nil, false)
			}
			r.mu.Unlock()
		}
	}
}

// touchInputLocked runs the input_timeout circuit breaker on new data: a
// broken input recovers (INPUT_RECOVERED before the data) and the deadline
// is re-armed. It is armed only after the first message.
func (r *Router) touchInputLocked(in *inputState) {
	d := in.spec.InputTimeout
	if d <= 0 {
		return
	}
	if in.broken {
		in.broken = false
		r.pushEventLocked(in.node, &shm.Msg{Type: shm.MsgInputRecovered, ID: in.spec.ID}, false)
	}
	in.gen++
	gen := in.gen
	if in.timeout != nil {
		in.timeout.Stop()
	}
	in.timeout = time.AfterFunc(d, func() { r.inputTimedOut(in, gen) })
}

func (r *Router) inputTimedOut(in *inputState, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || in.gen != gen || in.closed || in.broken || in.node.gone {
		return
	}
	in.broken = true
	in.node.metrics.InputTimeouts++
	r.pushEventLocked(in.node, &shm.Msg{Type: shm.MsgInputClosed, ID: in.spec.ID}, false)
	r.log.Info("input timed out", "node", in.node.id, "input", in.spec.ID, "timeout", in.spec.InputTimeout)
}

// RemoteEventKind names what happened to a remote source.
type RemoteEventKind string

const (
	OutputClosed  RemoteEventKind = "output_closed"
	NodeRestarted RemoteEventKind = "node_restarted"
	NodeFailed    RemoteEventKind = "node_failed"
)

// RemoteEvent is a lifecycle event of a node on another machine (or of a
// local node, for other machines).
type RemoteEvent struct {
	Kind   RemoteEventKind
	Node   string
	Output string // OutputClosed only
	Error  string // NodeFailed only
}

// Remote carries data-plane traffic to the daemons of other machines. The
// router calls Publish for every output that feeds a node not in
// Config.Local (meta is shm.AppendMeta's encoding; data is valid only during
// the call) and PublishEvent for lifecycle events of local nodes. Deliveries
// from other machines come back through DeliverRemote and
// DeliverRemoteEvent.
type Remote interface {
	Publish(node, output string, meta, data []byte) error
	PublishEvent(ev RemoteEvent) error
}

// DeliverRemote hands a message published by a node on another machine to
// the local inputs it feeds. data is copied: payloads of at least the
// shared-memory threshold into a region of the router's own, which local
// receivers then read in place. It blocks while a backpressure input queue
// is full.
func (r *Router) DeliverRemote(node, output string, meta, data []byte) error {
	m, err := shm.DecodeMeta(meta)
	if err != nil {
		return fmt.Errorf("remote output %s/%s: %w", node, output, err)
	}
	m.Params = bytes.Clone(m.Params)
	r.delivering.RLock() // Close unmaps regions only after deliveries end
	defer r.delivering.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	routes := r.routes[outKey{node, output}]
	if r.closed || len(routes) == 0 {
		return nil
	}
	var s *sample
	if len(data) >= r.cfg.ShmThreshold {
		if s, err = r.ownSampleLocked(len(data)); err != nil {
			return fmt.Errorf("remote output %s/%s: %w", node, output, err)
		}
		r.mu.Unlock() // the region is ours until enqueued: copy unlocked
		copy(s.region.own.Data, data)
		r.mu.Lock()
		data = nil
		if r.closed {
			return nil
		}
	} else {
		data = bytes.Clone(data)
	}
	for _, in := range routes {
		r.enqueueLocked(in, m, data, s, nil, true)
	}
	if s != nil {
		r.unrefSampleLocked(s)
	}
	return nil
}

// DeliverRemoteEvent applies a lifecycle event of a remote source node to
// the local receivers.
func (r *Router) DeliverRemoteEvent(ev RemoteEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	switch ev.Kind {
	case OutputClosed:
		for _, in := range r.routes[outKey{ev.Node, ev.Output}] {
			r.closeInputLocked(in)
		}
	case NodeRestarted:
		r.sourceEventLocked(ev.Node, true, false)
	case NodeFailed:
		r.sourceEventLocked(ev.Node, false, true)
	}
}
