package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/dataplane"
	"github.com/adora-rs/adora/transport"
)

// Network is the network segment of adora's data-plane keys.
const Network = "default"

// publishTimeout bounds one cross-machine publication.
const publishTimeout = 5 * time.Second

// startupWait is how long after a dataflow starts here a publication waits
// for its remote receivers to subscribe (the start barrier across
// machines). Later, a publication nobody remote subscribes to is counted
// as lost.
const startupWait = 10 * time.Second

// matcher is a transport that knows whether a publication would reach a
// remote subscriber now (zenoh.Session).
type matcher interface {
	Matching(key string) bool
}

// OutputKey is the key an output of a node travels on between machines:
// adora/<network>/<dataflow>/output/<node>/<output>.
func OutputKey(dataflowID, node, output string) string {
	return "adora/" + Network + "/" + dataflowID + "/output/" + node + "/" + output
}

// EventKey is the key of lifecycle events (output closed, node restarted,
// node failed) of a node: adora/<network>/<dataflow>/event/<node>.
func EventKey(dataflowID, node string) string {
	return "adora/" + Network + "/" + dataflowID + "/event/" + node
}

// deliverer receives traffic from other machines (dataplane.Router).
type deliverer interface {
	DeliverRemote(node, output string, meta, data []byte) error
	DeliverRemoteEvent(ev dataplane.RemoteEvent)
}

// bridge carries one dataflow's data plane between this machine and the
// others over a transport (Zenoh): it is the router's dataplane.Remote and
// subscribes to the remote outputs local nodes read.
type bridge struct {
	tr     transport.Transport
	flowID string
	log    *slog.Logger

	failures atomic.Uint64 // publications that failed
	started  time.Time

	mu     sync.Mutex
	subs   []transport.Subscription
	lost   map[string]uint64      // by publishing node: sent while no remote receiver subscribed
	closed map[config.Source]bool // remote outputs closed (Output "" = every output: the node failed)
}

func newBridge(tr transport.Transport, flowID string, log *slog.Logger) *bridge {
	return &bridge{tr: tr, flowID: flowID, log: log, started: time.Now(), lost: map[string]uint64{}, closed: map[config.Source]bool{}}
}

// note records what a remote lifecycle event says about the remote
// node's outputs.
func (b *bridge) note(ev dataplane.RemoteEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev.Kind {
	case dataplane.OutputClosed:
		b.closed[config.Source{Node: ev.Node, Output: ev.Output}] = true
	case dataplane.NodeFailed:
		b.closed[config.Source{Node: ev.Node}] = true
	case dataplane.NodeRestarted:
		for k := range b.closed {
			if k.Node == ev.Node {
				delete(b.closed, k)
			}
		}
	}
}

// SourceClosed reports whether the remote output node/output will send
// nothing more (it was closed, or its node failed for good).
func (b *bridge) SourceClosed(node, output string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed[config.Source{Node: node, Output: output}] || b.closed[config.Source{Node: node}]
}

// Publish implements dataplane.Remote: data is the payload, meta the
// message metadata (sent as the Zenoh attachment). While the dataflow
// starts it waits for a remote receiver to subscribe; it blocks the
// sending node meanwhile, which is the point.
func (b *bridge) Publish(node, output string, meta, data []byte) error {
	key := OutputKey(b.flowID, node, output)
	if m, ok := b.tr.(matcher); ok && !b.awaitReceiver(m, key) {
		b.mu.Lock()
		b.lost[node]++
		b.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := b.tr.Publish(ctx, key, data, meta); err != nil {
		b.failures.Add(1)
		return fmt.Errorf("publish %s/%s to other machines: %w", node, output, err)
	}
	return nil
}

// awaitReceiver reports whether key has a remote subscriber, waiting for
// one until the startup window ends.
func (b *bridge) awaitReceiver(m matcher, key string) bool {
	deadline := b.started.Add(startupWait)
	for !m.Matching(key) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Lost returns, by node, the publications no remote receiver was
// subscribed to.
func (b *bridge) Lost() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.lost))
	for k, v := range b.lost {
		out[k] = v
	}
	return out
}

// wireEvent is the JSON payload on an event key.
type wireEvent struct {
	Kind   dataplane.RemoteEventKind `json:"kind"`
	Node   string                    `json:"node"`
	Output string                    `json:"output,omitempty"`
	Error  string                    `json:"error,omitempty"`
}

// PublishEvent implements dataplane.Remote.
func (b *bridge) PublishEvent(ev dataplane.RemoteEvent) error {
	payload, _ := json.Marshal(wireEvent{Kind: ev.Kind, Node: ev.Node, Output: ev.Output, Error: ev.Error})
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := b.tr.Publish(ctx, EventKey(b.flowID, ev.Node), payload, nil); err != nil {
		b.failures.Add(1)
		return fmt.Errorf("publish %s event of %s to other machines: %w", ev.Kind, ev.Node, err)
	}
	return nil
}

// remoteSources lists the outputs of nodes on other machines that local
// nodes read, as node/output pairs, and whether any exist.
func remoteSources(df *config.Dataflow, local []string) []config.Source {
	isLocal := map[string]bool{}
	for _, id := range local {
		isLocal[id] = true
	}
	seen := map[config.Source]bool{}
	var out []config.Source
	for _, n := range df.Nodes {
		if !isLocal[n.ID] {
			continue
		}
		for _, in := range n.Inputs {
			src := config.Source{Node: in.Source.Node, Output: in.Source.Output}
			if in.Source.IsTimer() || isLocal[src.Node] || seen[src] {
				continue
			}
			seen[src] = true
			out = append(out, src)
		}
	}
	return out
}

// start subscribes to the remote outputs local nodes read and to the
// lifecycle events of remote nodes, delivering both to to.
func (b *bridge) start(to deliverer, df *config.Dataflow, local []string) error {
	isLocal := map[string]bool{}
	for _, id := range local {
		isLocal[id] = true
	}
	for _, src := range remoteSources(df, local) {
		src := src
		sub, err := b.tr.Subscribe(OutputKey(b.flowID, src.Node, src.Output), func(s transport.Sample) {
			if err := to.DeliverRemote(src.Node, src.Output, s.Attachment, s.Payload); err != nil {
				b.log.Warn("deliver remote output", "source", src.String(), "err", err)
			}
		})
		if err != nil {
			b.close()
			return fmt.Errorf("subscribe to %s: %w", src, err)
		}
		b.add(sub)
	}
	sub, err := b.tr.Subscribe("adora/"+Network+"/"+b.flowID+"/event/*", func(s transport.Sample) {
		var ev wireEvent
		if json.Unmarshal(s.Payload, &ev) != nil || isLocal[ev.Node] {
			return
		}
		rev := dataplane.RemoteEvent{Kind: ev.Kind, Node: ev.Node, Output: ev.Output, Error: ev.Error}
		b.note(rev)
		to.DeliverRemoteEvent(rev)
	})
	if err != nil {
		b.close()
		return fmt.Errorf("subscribe to remote node events: %w", err)
	}
	b.add(sub)
	return nil
}

func (b *bridge) add(s transport.Subscription) {
	b.mu.Lock()
	b.subs = append(b.subs, s)
	b.mu.Unlock()
}

// close ends every subscription (waiting for handlers in flight).
func (b *bridge) close() {
	b.mu.Lock()
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}
