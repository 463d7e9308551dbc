package zenoh

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh/keyexpr"
	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// handleNetwork acts on one network message received on l. A returned
// error closes the link (a peer that breaks the protocol); messages that
// are merely useless are counted and dropped.
func (l *link) handleNetwork(m wire.NetworkMessage) error {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("zenoh: received", "msg", fmt.Sprintf("%T%+v", m, m))
	}
	switch m := m.(type) {
	case *wire.Push:
		return l.handlePush(m)
	case *wire.Declare:
		return l.handleDeclare(m)
	case *wire.Interest:
		l.handleInterest(m)
	case *wire.Request:
		// We declare no queryables: end the query at once so the remote
		// get does not wait for its timeout.
		l.sendNetwork(&wire.ResponseFinal{RequestID: m.ID})
	case *wire.Response, *wire.ResponseFinal, *wire.NetworkOAM:
	}
	return nil
}

// resolve turns a received wire expression into a key expression string.
func (l *link) resolve(w wire.WireExpr) (string, error) {
	if w.Scope == 0 {
		return w.Suffix, nil
	}
	var prefix string
	var ok bool
	if w.SenderMapping {
		l.mu.Lock()
		prefix, ok = l.rxAlias[w.Scope]
		l.mu.Unlock()
	} else {
		// receiver mapping: an id we declared (a Zenoh router answers
		// with our own aliases for keys we published)
		prefix, ok = l.ourAlias(w.Scope)
	}
	if !ok {
		return "", fmt.Errorf("unknown expression id %d (sender mapping %v)", w.Scope, w.SenderMapping)
	}
	return prefix + w.Suffix, nil
}

func (l *link) handlePush(p *wire.Push) error {
	key, err := l.resolve(p.Key)
	if err != nil {
		l.s.stats.dropped.Add(1)
		l.log.Debug("zenoh: PUSH dropped", "err", err)
		return nil
	}
	l.s.stats.received.Add(1)
	l.stats.received.Add(1)
	if p.Put == nil {
		return nil // DEL: nothing to deliver to transport.Handler
	}
	smp := transport.Sample{Key: key, Payload: p.Put.Payload}
	if p.Put.HasAttachment {
		smp.Attachment = p.Put.Attachment
	}
	l.s.mu.RLock()
	var subs []*subscription
	for _, sub := range l.s.subs {
		if keyexpr.Intersects(sub.expr, key) {
			subs = append(subs, sub)
		}
	}
	l.s.mu.RUnlock()
	l.delivering.Store(true)
	for _, sub := range subs {
		sub.deliver(smp)
	}
	l.lastRx.Store(time.Now().UnixNano())
	l.delivering.Store(false)
	return nil
}

func (l *link) handleDeclare(d *wire.Declare) error {
	switch d.Kind {
	case wire.DeclKeyExpr:
		key, err := l.resolve(d.Key)
		if err != nil {
			return fmt.Errorf("D_KEYEXPR %d: %w", d.ID, err)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.rxAlias) >= maxRemoteDecls {
			return fmt.Errorf("peer declared more than %d expression ids", maxRemoteDecls)
		}
		l.rxAlias[uint16(d.ID)] = key
	case wire.UndeclKeyExpr:
		l.mu.Lock()
		delete(l.rxAlias, uint16(d.ID))
		l.mu.Unlock()
	case wire.DeclSubscriber:
		key, err := l.resolve(d.Key)
		if err != nil {
			return fmt.Errorf("D_SUBSCRIBER %d: %w", d.ID, err)
		}
		if err := keyexpr.CheckRemote(key); err != nil {
			// Err on the side of sending: a subscriber we cannot parse
			// (a newer syntax?) gets everything rather than nothing.
			l.log.Debug("zenoh: subscriber on a key we cannot parse, matching all", "err", err)
			key = "**"
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.remoteSubs) >= maxRemoteDecls {
			return fmt.Errorf("peer declared more than %d subscribers", maxRemoteDecls)
		}
		l.remoteSubs[d.ID] = key
		clear(l.matchCache)
		l.log.Debug("zenoh: remote subscriber", "id", d.ID, "key", key)
	case wire.UndeclSubscribe:
		l.mu.Lock()
		delete(l.remoteSubs, d.ID)
		clear(l.matchCache)
		l.mu.Unlock()
	case wire.DeclFinal:
		if d.HasInterest && d.InterestID == routerInterestID && l.whatami == wire.Router {
			l.mu.Lock()
			clear(l.matchCache)
			l.mu.Unlock()
			l.routerFiltered.Store(true)
			l.log.Debug("zenoh: router subscribers known, filtering publications")
		}
	}
	// Other D_FINALs, queryables and tokens need no action.
	return nil
}

// routerInterestID is the id of the interest we send a router for its
// subscribers (current and future).
const routerInterestID = 1

// handleInterest answers an INTEREST: for Current and CurrentFuture, our
// matching subscribers (tagged with the interest id when no future
// declarations are wanted), then D_FINAL with the interest id. Future
// declarations go to every link anyway.
func (l *link) handleInterest(in *wire.Interest) {
	if in.Mode != wire.InterestCurrent && in.Mode != wire.InterestCurrentFuture {
		return
	}
	var restrict string
	if in.Key != nil {
		k, err := l.resolve(*in.Key)
		if err != nil {
			l.log.Debug("zenoh: interest on unknown expression", "err", err)
			restrict = "**"
		} else {
			restrict = k
		}
	}
	s := l.s
	s.declMu.Lock()
	defer s.declMu.Unlock()
	var msgs []any
	if in.Options&wire.InterestSubscribers != 0 {
		var tag *uint32
		if in.Mode == wire.InterestCurrent {
			tag = &in.ID
		}
		s.mu.RLock()
		for _, sub := range s.subs {
			if restrict == "" || keyexpr.Intersects(restrict, sub.expr) {
				msgs = append(msgs, declareSubscriber(sub.id, sub.expr, tag))
			}
		}
		s.mu.RUnlock()
	}
	msgs = append(msgs, &wire.Declare{HasInterest: true, InterestID: in.ID, Kind: wire.DeclFinal})
	l.sendChunked(msgs)
}

// sendChunked sends messages in as many frames as they need.
func (l *link) sendChunked(msgs []any) {
	const per = 64
	for len(msgs) > 0 {
		n := min(per, len(msgs))
		l.sendNetwork(msgs[:n]...)
		msgs = msgs[n:]
	}
}

// sendInitialDeclarations declares every local subscriber on a new link,
// then (towards a peer) D_FINAL with interest id 0, which is what a Zenoh
// peer waits for before it considers the link ready.
func (l *link) sendInitialDeclarationsLocked() {
	s := l.s
	s.mu.RLock()
	var msgs []any
	for _, sub := range s.subs {
		msgs = append(msgs, declareSubscriber(sub.id, sub.expr, nil))
	}
	s.mu.RUnlock()
	if l.whatami == wire.Router {
		// Ask for the subscribers the router knows, now and later, so
		// that we send it only what someone wants (writer-side
		// filtering, as a Zenoh client does).
		msgs = append(msgs, &wire.Interest{ID: routerInterestID, Mode: wire.InterestCurrentFuture,
			Options: wire.InterestKeyExprs | wire.InterestSubscribers})
	}
	l.sendChunked(msgs)
	if l.whatami != wire.Peer {
		return
	}
	final := &wire.Declare{HasInterest: true, InterestID: 0, Kind: wire.DeclFinal}
	if l.initiator {
		l.sendNetwork(final)
		return
	}
	// A Zenoh peer that dialled us records our Zenoh id for its pending
	// connection only after its handshake returns; a D_FINAL that arrives
	// before that is lost and its open() then waits for its scouting
	// delay (500 ms). So, as the accepting side, send it a little later.
	s.wg.Add(1)
	l.mu.Lock()
	l.finalTimer = time.AfterFunc(initialFinalDelay, func() {
		defer s.wg.Done()
		l.sendNetwork(final)
	})
	l.mu.Unlock()
}

// initialFinalDelay is how long the accepting side waits before its
// initial D_FINAL.
const initialFinalDelay = 50 * time.Millisecond
