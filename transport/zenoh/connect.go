package zenoh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

func (s *Session) listen(ctx context.Context, ep string) error {
	addr, err := parseEndpoint(ep)
	if err != nil {
		return fmt.Errorf("zenoh listen: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("zenoh listen %s: %w", ep, err)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop(ln)
	s.log.Info("zenoh: listening", "endpoint", formatEndpoint(ln.Addr()))
	return nil
}

func (s *Session) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("zenoh: accept", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		select {
		case s.pending <- struct{}{}:
		default:
			// too many handshakes in progress: refuse rather than pile up
			s.log.Warn("zenoh: too many pending handshakes, connection refused", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(s.ctx, conn, false)
		}()
	}
}

// maxPendingHandshakes bounds the accepted connections still in INIT/OPEN.
const maxPendingHandshakes = 100

// Connect keeps a link to endpoint: it dials now and again with backoff
// whenever the link is lost, until Disconnect or Close. Connecting twice
// to the same endpoint is a no-op.
func (s *Session) Connect(endpoint string) error {
	addr, err := parseEndpoint(endpoint)
	if err != nil {
		return fmt.Errorf("zenoh connect: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.dialing[addr] != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.dialing[addr] = cancel
	s.wg.Add(1)
	go s.dialLoop(ctx, endpoint, addr)
	return nil
}

// Disconnect stops keeping a link to endpoint (given to Connect) and
// closes the link it dialled, if one is open. Links the remote dialled to
// us are not affected.
func (s *Session) Disconnect(endpoint string) error {
	addr, err := parseEndpoint(endpoint)
	if err != nil {
		return fmt.Errorf("zenoh disconnect: %w", err)
	}
	s.mu.Lock()
	cancel := s.dialing[addr]
	delete(s.dialing, addr)
	s.mu.Unlock()
	if cancel == nil {
		return fmt.Errorf("zenoh disconnect: not connected to %s", endpoint)
	}
	cancel()
	return nil
}

func (s *Session) dialLoop(ctx context.Context, ep, addr string) {
	defer s.wg.Done()
	backoff := s.cfg.ReconnectMin
	lastAuthErr := "" // a refusal on credentials is logged once, not at every retry
	for ctx.Err() == nil {
		d := net.Dialer{Timeout: s.cfg.HandshakeTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			start := time.Now()
			err = s.serve(ctx, conn, true)
			lastAuthErr = s.noteAuthFailure(ep, err, lastAuthErr)
			if errors.Is(err, errSelf) {
				// The endpoint is our own (a peer list that names us):
				// nothing to keep up.
				s.log.Info("zenoh: endpoint is this session, not dialling it again", "endpoint", ep)
				s.mu.Lock()
				if cancel := s.dialing[addr]; cancel != nil {
					cancel()
					delete(s.dialing, addr)
				}
				s.mu.Unlock()
				return
			}
			if time.Since(start) > s.cfg.ReconnectMax {
				backoff = s.cfg.ReconnectMin // the link lived: start over
			}
		} else if ctx.Err() == nil {
			s.log.Debug("zenoh: dial", "endpoint", ep, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, s.cfg.ReconnectMax)
	}
}

// noteAuthFailure logs a dial that failed on credentials at Warn, unless
// the previous attempt failed the same way, and returns what to compare
// the next attempt with.
func (s *Session) noteAuthFailure(ep string, err error, last string) string {
	if !errors.Is(err, errAuth) {
		return ""
	}
	if err.Error() != last {
		s.log.Warn("zenoh: link not authenticated, retrying", "endpoint", ep, "err", err)
	}
	return err.Error()
}

// serve runs the handshake on conn and, if it succeeds, the link until it
// closes or ctx ends. When the link duplicates an existing one, it waits for the link
// that was kept to close, so that a dial loop does not spin.
func (s *Session) serve(ctx context.Context, conn net.Conn, initiator bool) error {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	r := newStreamReader(conn)
	conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	var p *params
	var err error
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if initiator {
		p, err = s.handshakeInitiator(conn, r)
	} else {
		p, err = s.handshakeResponder(conn, r)
	}
	stop()
	if !initiator {
		<-s.pending
	}
	if err != nil {
		s.log.Debug("zenoh: handshake", "remote", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return err
	}
	conn.SetDeadline(time.Time{})
	if s.wrapConn != nil {
		conn = s.wrapConn(conn)
	}
	l := newLink(s, conn, r, p, initiator)
	kept, ok := s.register(l)
	if !ok {
		if kept != nil {
			select {
			case <-kept.done:
			case <-ctx.Done():
			}
		}
		return nil
	}
	stop = context.AfterFunc(ctx, func() { l.close(wire.CloseGeneric, true, context.Cause(ctx)) })
	defer stop()
	s.run(l)
	return nil
}

// register adds l to the link table. Between two links to the same peer
// the one dialled by the smaller ZID is kept (both sides agree on that);
// between two in the same direction the existing one is kept. It returns
// the kept link when l loses, and false.
func (s *Session) register(l *link) (*link, bool) {
	s.declMu.Lock()
	defer s.declMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.close(wire.CloseGeneric, true, ErrClosed)
		return nil, false
	}
	key := string(l.zid)
	old := s.links[key]
	if old != nil && !l.preferredOver(old) {
		s.mu.Unlock()
		l.closeDuplicate(errors.New("duplicate link"))
		return old, false
	}
	if old != nil {
		l.inherit(old)
	}
	s.links[key] = l
	s.mu.Unlock()
	if old != nil {
		old.closeDuplicate(errors.New("replaced by a preferred link"))
	}
	s.stats.opened.Add(1)
	l.log.Info("zenoh: link open", "initiator", l.initiator, "batch", l.p.batchSize, "snmask", l.p.snMask)
	l.sendInitialDeclarationsLocked()
	return nil, true
}

// preferredOver reports whether l should replace old (same peer).
func (l *link) preferredOver(old *link) bool {
	if l.initiator == old.initiator {
		return false
	}
	ours := bytes.Compare(l.s.zid, l.zid) < 0 // we have the smaller ZID
	return l.initiator == ours
}

// run serves an open link until it closes, then removes it.
func (s *Session) run(l *link) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.keepAlive()
	}()
	l.readLoop()
	<-l.done
	s.mu.Lock()
	if s.links[string(l.zid)] == l {
		delete(s.links, string(l.zid))
	}
	s.mu.Unlock()
	s.stats.closed.Add(1)
	l.log.Info("zenoh: link closed", "err", l.closeErr)
}

// jitter spreads d over [d/2, 3d/2), so that many daemons that lost the
// same peer do not all dial it again at the same instant.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
