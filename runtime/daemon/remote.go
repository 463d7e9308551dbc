package daemon

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/dataplane"
	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh"
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

// DataPlaneUser is the Zenoh user daemons authenticate as.
const DataPlaneUser = "adora"

// dataPlaneLabel separates the data-plane password from any other use of
// the coordinator token.
const dataPlaneLabel = "adora zenoh data plane v1"

// DataPlaneCredentials derives the Zenoh credentials of the data plane
// from the coordinator token: user DataPlaneUser, password the hex
// HMAC-SHA256 of dataPlaneLabel keyed with the token. Every daemon that
// holds the token dials with them and requires them of every dialer, so
// only daemons of the same coordinator link. It returns nil when token is
// "" (authentication off): the data plane is then open, as the control
// plane is.
func DataPlaneCredentials(token string) *zenoh.Credentials {
	if token == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(dataPlaneLabel))
	pwd := hex.EncodeToString(m.Sum(nil))
	return &zenoh.Credentials{User: DataPlaneUser, Password: pwd, Accept: map[string]string{DataPlaneUser: pwd}}
}

// CredentialSetter is a transport whose credentials can change
// (zenoh.Session).
type CredentialSetter interface {
	SetCredentials(*zenoh.Credentials) error
}

// FollowToken returns a token source that calls src and, for each token
// it gives, sets the data-plane credentials of tr to the ones derived from
// it, so that a token file read again at each connection attempt (see
// Config.TokenSource) also governs the data plane. It logs when the
// credentials change (never the token or the password). Links already
// open stay open. An error from src leaves the credentials as they were.
// current is the token tr's credentials were derived from ("" for none).
func FollowToken(src func() (string, error), tr CredentialSetter, current string, log *slog.Logger) func() (string, error) {
	var mu sync.Mutex
	last := current
	return func() (string, error) {
		tok, err := src()
		if err != nil {
			return tok, err
		}
		mu.Lock()
		defer mu.Unlock()
		if tok == last {
			return tok, nil
		}
		if err := tr.SetCredentials(DataPlaneCredentials(tok)); err != nil {
			return "", fmt.Errorf("data-plane credentials: %w", err)
		}
		if tok != "" {
			log.Info("data plane authenticated with the credentials derived from the coordinator token read now")
		} else {
			log.Warn("data plane not authenticated: the coordinator token is gone")
		}
		last = tok
		return tok, nil
	}
}

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

// The attachment of a publication on an output key is a header followed by
// the message metadata (shm.AppendMeta's encoding):
//
//	byte 0      format version, attachmentV1
//	bytes 1..8  sequence number, big-endian uint64
//	bytes 9..   metadata
//
// The sending daemon numbers the publications of each output key 1, 2, 3, …
// but only those it hands to a matching remote subscriber: one published
// while none matched carries 0 (and is counted lost by the sender). A gap
// in the numbers a receiving daemon sees is loss on the way (for example
// what a socket held when a link broke) and is counted against the local
// nodes that read the output. The last number sent travels in the
// output-closed and node-failed events, so a loss at the end of a stream
// is counted too.
const (
	attachmentV1     = 1
	attachmentHeader = 9
)

// appendAttachment appends the v1 header with sequence number seq, then meta.
func appendAttachment(b []byte, seq uint64, meta []byte) []byte {
	b = append(b, attachmentV1)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, meta...)
}

// parseAttachment splits an output publication's attachment.
func parseAttachment(att []byte) (seq uint64, meta []byte, err error) {
	if len(att) < attachmentHeader {
		return 0, nil, fmt.Errorf("attachment of %d bytes, want at least %d", len(att), attachmentHeader)
	}
	if att[0] != attachmentV1 {
		return 0, nil, fmt.Errorf("attachment format %d, this daemon reads %d (upgrade the daemons to one version)", att[0], attachmentV1)
	}
	return binary.BigEndian.Uint64(att[1:attachmentHeader]), att[attachmentHeader:], nil
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

	started time.Time

	mu     sync.Mutex
	subs   []transport.Subscription
	lost   map[string]uint64      // by node: see Lost
	closed map[config.Source]bool // remote outputs closed (Output "" = every output: the node failed)
	out    map[config.Source]*outSeq
	in     map[config.Source]*inSeq
	// pending are events kept while no remote daemon was linked; the
	// goroutine retryEvents, started by start and stopped by close, sends
	// them.
	pending   []wireEvent
	retryStop chan struct{}
	retryDone chan struct{}
}

// outSeq numbers the publications of one local output.
type outSeq struct {
	mu   sync.Mutex // held across a publication: numbers leave in order
	last uint64     // last number sent
}

// inSeq tracks the numbers received from one remote output.
type inSeq struct {
	last    uint64   // last number received (or accounted for)
	readers []string // local nodes reading the output
	bad     bool     // an unreadable attachment was reported
}

func newBridge(tr transport.Transport, flowID string, log *slog.Logger) *bridge {
	return &bridge{tr: tr, flowID: flowID, log: log, started: time.Now(),
		lost: map[string]uint64{}, closed: map[config.Source]bool{},
		out: map[config.Source]*outSeq{}, in: map[config.Source]*inSeq{}}
}

// outSeqOf returns the numbering of local output src.
func (b *bridge) outSeqOf(src config.Source) *outSeq {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.out[src]
	if o == nil {
		o = &outSeq{}
		b.out[src] = o
	}
	return o
}

// received accounts for number n of remote output src: the numbers
// skipped since the last one are counted lost against its local readers.
// n at or below the last one (the sending daemon restarted, or reused a
// number after a failed publication) starts over from n.
func (b *bridge) received(src config.Source, n uint64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.in[src]
	if st == nil {
		return
	}
	if n > st.last+1 {
		b.lostLocked(st.readers, n-st.last-1)
	}
	st.last = n
}

// ended accounts for the last number final sent on remote output src.
func (b *bridge) ended(src config.Source, final uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.in[src]
	if st == nil || final <= st.last {
		return
	}
	b.lostLocked(st.readers, final-st.last)
	st.last = final
}

func (b *bridge) lostLocked(nodes []string, n uint64) {
	for _, id := range nodes {
		b.lost[id] += n
	}
}

// note records what a remote lifecycle event says about the remote
// node's outputs, and accounts for the last numbers it carries.
func (b *bridge) note(ev wireEvent) {
	switch ev.Kind {
	case dataplane.OutputClosed:
		b.ended(config.Source{Node: ev.Node, Output: ev.Output}, ev.Seq)
	case dataplane.NodeFailed:
		for out, n := range ev.Seqs {
			b.ended(config.Source{Node: ev.Node, Output: out}, n)
		}
	}
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
// message metadata (sent in the Zenoh attachment, after a numbered
// header). While the dataflow starts it waits for a remote receiver to
// subscribe; it blocks the sending node meanwhile, which is the point.
// A publication no remote receiver is subscribed to, or that fails, is
// counted lost against node; it takes no number, so the receiving side
// sees no gap for it.
func (b *bridge) Publish(node, output string, meta, data []byte) error {
	key := OutputKey(b.flowID, node, output)
	if m, ok := b.tr.(matcher); ok && !b.awaitReceiver(m, key) {
		b.mu.Lock()
		b.lostLocked([]string{node}, 1)
		b.mu.Unlock()
		return nil
	}
	o := b.outSeqOf(config.Source{Node: node, Output: output})
	o.mu.Lock()
	defer o.mu.Unlock()
	att := appendAttachment(make([]byte, 0, attachmentHeader+len(meta)), o.last+1, meta)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := b.tr.Publish(ctx, key, data, att); err != nil {
		b.mu.Lock()
		b.lostLocked([]string{node}, 1)
		b.mu.Unlock()
		return fmt.Errorf("publish %s/%s to other machines (counted as dropped): %w", node, output, err)
	}
	o.last++
	return nil
}

// lastSent returns the last number sent on local output src.
func (b *bridge) lastSent(src config.Source) uint64 {
	b.mu.Lock()
	o := b.out[src]
	b.mu.Unlock()
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// lastSentOf returns the last numbers sent on the outputs of node that
// sent any.
func (b *bridge) lastSentOf(node string) map[string]uint64 {
	b.mu.Lock()
	var outs []string
	for src := range b.out {
		if src.Node == node {
			outs = append(outs, src.Output)
		}
	}
	b.mu.Unlock()
	var seqs map[string]uint64
	for _, out := range outs {
		if n := b.lastSent(config.Source{Node: node, Output: out}); n > 0 {
			if seqs == nil {
				seqs = map[string]uint64{}
			}
			seqs[out] = n
		}
	}
	return seqs
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

// Lost returns, by node, messages lost between machines: for a sending
// node, publications no remote receiver was subscribed to and failed
// publications; for a receiving node, messages of the remote outputs it
// reads that the numbering shows never arrived.
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
	// Seq is the last number sent on Output (output_closed); Seqs those
	// of the node's outputs (node_failed).
	Seq  uint64            `json:"seq,omitempty"`
	Seqs map[string]uint64 `json:"seqs,omitempty"`
}

// PublishEvent implements dataplane.Remote. Output-closed and node-failed
// events carry the last numbers sent, so that receivers count what never
// arrived at the end of a stream. An event published while no remote
// daemon of the dataflow is linked (the link is down) is kept, in order,
// and sent once one is again, so that receivers still learn that an
// output closed.
func (b *bridge) PublishEvent(ev dataplane.RemoteEvent) error {
	wev := wireEvent{Kind: ev.Kind, Node: ev.Node, Output: ev.Output, Error: ev.Error}
	switch ev.Kind {
	case dataplane.OutputClosed:
		wev.Seq = b.lastSent(config.Source{Node: ev.Node, Output: ev.Output})
	case dataplane.NodeFailed:
		wev.Seqs = b.lastSentOf(ev.Node)
	}
	if m, ok := b.tr.(matcher); ok {
		linked := m.Matching(EventKey(b.flowID, ev.Node)) // not under b.mu: handlers take it
		b.mu.Lock()
		if b.retryStop != nil && (len(b.pending) > 0 || !linked) {
			defer b.mu.Unlock()
			if len(b.pending) >= maxPendingEvents {
				return fmt.Errorf("publish %s event of %s to other machines: %d events wait for a link already", ev.Kind, ev.Node, len(b.pending))
			}
			b.pending = append(b.pending, wev)
			return nil
		}
		b.mu.Unlock()
	}
	return b.sendEvent(wev)
}

// maxPendingEvents bounds the events kept while no link is up.
const maxPendingEvents = 1024

// eventRetry is how often kept events are tried again.
const eventRetry = 100 * time.Millisecond

func (b *bridge) sendEvent(ev wireEvent) error {
	payload, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := b.tr.Publish(ctx, EventKey(b.flowID, ev.Node), payload, nil); err != nil {
		return fmt.Errorf("publish %s event of %s to other machines: %w", ev.Kind, ev.Node, err)
	}
	return nil
}

// retryEvents sends kept events, in order, while a remote daemon is
// linked, until stop is closed.
func (b *bridge) retryEvents(m matcher, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(eventRetry)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for {
			b.mu.Lock()
			if len(b.pending) == 0 {
				b.mu.Unlock()
				break
			}
			ev := b.pending[0]
			b.mu.Unlock()
			if !m.Matching(EventKey(b.flowID, ev.Node)) {
				break
			}
			if err := b.sendEvent(ev); err != nil {
				b.log.Warn("publish kept event to remote daemons", "node", ev.Node, "event", ev.Kind, "err", err)
				break
			}
			// removed only once sent: PublishEvent queues behind it meanwhile
			b.mu.Lock()
			b.pending = b.pending[1:]
			b.mu.Unlock()
		}
	}
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
		b.mu.Lock()
		b.in[src] = &inSeq{readers: readersOf(df, isLocal, src)}
		b.mu.Unlock()
		sub, err := b.tr.Subscribe(OutputKey(b.flowID, src.Node, src.Output), func(s transport.Sample) {
			n, meta, err := parseAttachment(s.Attachment)
			if err != nil {
				b.unreadable(src, err)
				return
			}
			b.received(src, n)
			if err := to.DeliverRemote(src.Node, src.Output, meta, s.Payload); err != nil {
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
		b.note(ev)
		to.DeliverRemoteEvent(dataplane.RemoteEvent{Kind: ev.Kind, Node: ev.Node, Output: ev.Output, Error: ev.Error})
	})
	if err != nil {
		b.close()
		return fmt.Errorf("subscribe to remote node events: %w", err)
	}
	b.add(sub)
	if m, ok := b.tr.(matcher); ok {
		stop, done := make(chan struct{}), make(chan struct{})
		b.mu.Lock()
		b.retryStop, b.retryDone = stop, done
		b.mu.Unlock()
		go b.retryEvents(m, stop, done)
	}
	return nil
}

// readersOf lists the local nodes with an input from src.
func readersOf(df *config.Dataflow, isLocal map[string]bool, src config.Source) []string {
	var out []string
	for _, n := range df.Nodes {
		if !isLocal[n.ID] {
			continue
		}
		for _, in := range n.Inputs {
			if !in.Source.IsTimer() && in.Source.Node == src.Node && in.Source.Output == src.Output {
				out = append(out, n.ID)
				break
			}
		}
	}
	return out
}

// unreadable counts a publication of src whose attachment this daemon
// cannot read as lost against its readers, warning once per output.
func (b *bridge) unreadable(src config.Source, err error) {
	b.mu.Lock()
	st := b.in[src]
	warn := st != nil && !st.bad
	if st != nil {
		st.bad = true
		b.lostLocked(st.readers, 1)
	}
	b.mu.Unlock()
	if warn {
		b.log.Warn("unreadable message from another machine, counted as dropped", "source", src.String(), "err", err)
	}
}

func (b *bridge) add(s transport.Subscription) {
	b.mu.Lock()
	b.subs = append(b.subs, s)
	b.mu.Unlock()
}

// close ends every subscription (waiting for handlers in flight) and the
// sending of kept events (those still kept are dropped).
func (b *bridge) close() {
	b.mu.Lock()
	subs := b.subs
	b.subs = nil
	stop, done := b.retryStop, b.retryDone
	b.retryStop = nil
	b.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	for _, s := range subs {
		s.Close()
	}
}
