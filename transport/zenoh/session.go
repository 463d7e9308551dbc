// Package zenoh is a pure-Go implementation of the Zenoh 1.0 wire
// protocol (version 0x09) over TCP unicast: enough of a Zenoh peer (or
// client of a Zenoh router) to publish and subscribe with eclipse-zenoh
// and with other adora daemons. It implements transport.Transport.
//
// A Session owns its listeners, its links (one per remote Zenoh id) and
// the goroutines serving them; Close stops and waits for all of them.
//
//	Open ──► listen: accept loop ───────────────┐
//	     └─► Connect(ep): dial loop with backoff ┤
//	                                             ▼
//	         handshake INIT/OPEN ──► link: reader goroutine (link_rx.go)
//	                                       keep-alive and lease goroutine
//	                                       our declarations, then D_FINAL(0)
//
// With Config.Credentials set, every link is authenticated in the
// handshake with Zenoh's user/password scheme (usrpwd, auth.go), in both
// roles: a session presents its pair when it dials and requires a known
// one of every dialer.
//
// Subscriptions can be declared before any peer exists; they are declared
// on every link when it opens. Publications go only to links whose remote
// declared a matching subscriber (a router: once it has told us its
// subscribers), and to matching local subscriptions.
package zenoh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/zenoh/keyexpr"
	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// Mode is the role a Session announces.
type Mode int

// Modes: Peer between adora daemons and towards Zenoh peers; Client
// towards a Zenoh router.
const (
	Peer Mode = iota
	Client
)

func (m Mode) String() string {
	if m == Client {
		return "client"
	}
	return "peer"
}

// Config configures a Session. Zero values take the defaults noted.
type Config struct {
	Mode    Mode
	Listen  []string // endpoints "tcp/HOST:PORT" to accept links on (port 0 picks one)
	Connect []string // endpoints to keep a link to, reconnecting with backoff
	ZID     []byte   // 1-16 bytes; default 16 random bytes
	Lease   time.Duration
	Logger  *slog.Logger

	// MaxMessageSize caps a reassembled message (default 256 MiB);
	// larger ones are dropped and counted.
	MaxMessageSize int
	// ReconnectMin and ReconnectMax bound the reconnect backoff
	// (defaults 100 ms and 5 s).
	ReconnectMin, ReconnectMax time.Duration
	// HandshakeTimeout bounds INIT/OPEN (default 5 s).
	HandshakeTimeout time.Duration
	// Credentials, when set, turn on user/password authentication: the
	// session presents them when it dials and requires them of every
	// dialer (see Credentials). nil: no authentication.
	Credentials *Credentials
}

// Defaults.
const (
	DefaultLease          = 10 * time.Second
	DefaultMaxMessageSize = 256 << 20
)

// Stats are the session's counters since Open.
type Stats struct {
	MessagesSent     uint64 // PUSH sent, per link
	MessagesReceived uint64 // PUSH received
	BytesSent        uint64 // bytes written to links, framing included
	// Writes counts the writes to links: a batch (one FRAME, which
	// carries every small message that arrived while the write before it
	// was in progress), a run of FRAGMENTs, a KEEPALIVE or a CLOSE.
	// MessagesSent/Writes is the batching factor.
	Writes        uint64
	BytesReceived uint64 // bytes read from links, framing included
	Dropped       uint64 // messages lost: failed sends, oversize, bad SN or alias
	LinksOpened   uint64
	LinksClosed   uint64
	// AuthRefused counts accepted connections closed because the dialer
	// presented no valid credentials (see Credentials).
	AuthRefused uint64
}

type counters struct {
	sent, received, bytesSent, bytesReceived, dropped, opened, closed, authRefused, writes atomic.Uint64
}

// Session is a Zenoh session. Its methods are safe for concurrent use.
type Session struct {
	cfg    Config
	log    *slog.Logger
	zid    []byte
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  counters
	auth   atomic.Pointer[authConfig] // nil: no authentication
	// refusals rate-limits the Warn lines about refused dialers.
	refusals refusalLimiter

	mu        sync.RWMutex
	links     map[string]*link // by remote ZID (string of bytes)
	subs      map[uint32]*subscription
	listeners []net.Listener
	dialing   map[string]context.CancelFunc // dial loops by address
	pending   chan struct{}                 // accepted connections in handshake
	closed    bool
	nextID    uint32

	// wrapConn, when set (tests), wraps each link's connection once
	// its handshake is done. Set it before the first link.
	wrapConn func(net.Conn) net.Conn

	// declMu orders declaration traffic (initial declarations, new and
	// removed subscriptions, answers to interests) across links.
	declMu sync.Mutex
}

var _ transport.Transport = (*Session)(nil)

// ErrClosed is returned by operations on a closed Session.
var ErrClosed = errors.New("zenoh session closed")

// Open starts a session: it binds every Listen endpoint (failing if one
// cannot be bound) and starts a dial loop for every Connect endpoint.
// ctx bounds only the setup; the session lives until Close.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Session{
		cfg:     cfg,
		log:     cfg.Logger,
		zid:     cfg.ZID,
		links:   map[string]*link{},
		subs:    map[uint32]*subscription{},
		dialing: map[string]context.CancelFunc{},
		pending: make(chan struct{}, maxPendingHandshakes),
	}
	if err := s.SetCredentials(cfg.Credentials); err != nil {
		return nil, err
	}
	s.cfg.Credentials = nil // the session keeps its own copy
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, ep := range cfg.Listen {
		if err := s.listen(ctx, ep); err != nil {
			s.Close()
			return nil, err
		}
	}
	for _, ep := range cfg.Connect {
		if err := s.Connect(ep); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (c *Config) fill() error {
	if c.Mode != Peer && c.Mode != Client {
		return fmt.Errorf("zenoh config: unknown mode %d", c.Mode)
	}
	if c.Mode == Client && len(c.Listen) > 0 {
		return errors.New("zenoh config: a client does not listen; use peer mode or drop Listen")
	}
	if c.ZID == nil {
		c.ZID = newZID()
	}
	if len(c.ZID) == 0 || len(c.ZID) > wire.MaxZIDLen {
		return fmt.Errorf("zenoh config: ZID must be 1-16 bytes, got %d", len(c.ZID))
	}
	if c.ZID[len(c.ZID)-1] == 0 {
		return errors.New("zenoh config: the last (most significant) byte of the ZID must not be zero; Zenoh ids are little-endian numbers without leading zeros")
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Lease < 100*time.Millisecond || c.Lease%time.Millisecond != 0 {
		return fmt.Errorf("zenoh config: lease %v must be a whole number of milliseconds, at least 100ms", c.Lease)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(5*time.Second, c.ReconnectMin)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	return nil
}

// newZID returns 16 random bytes whose last (most significant, the id is
// little-endian) byte is non-zero, so the id has one canonical length.
func newZID() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	if b[15] == 0 {
		b[15] = 1
	}
	return b
}

// SetCredentials replaces the session's credentials (nil turns
// authentication off). Handshakes that start afterwards use them; links
// already open stay open. c is copied.
func (s *Session) SetCredentials(c *Credentials) error {
	a, err := newAuthConfig(c)
	if err != nil {
		return err
	}
	s.auth.Store(a)
	return nil
}

// ZID returns the session's Zenoh id (little-endian bytes).
func (s *Session) ZID() []byte { return append([]byte(nil), s.zid...) }

// ListenEndpoints returns the bound listen endpoints, with actual ports.
func (s *Session) ListenEndpoints() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, l := range s.listeners {
		out = append(out, formatEndpoint(l.Addr()))
	}
	return out
}

// PeerInfo describes one open link.
type PeerInfo struct {
	ZID       []byte
	WhatAmI   string
	Remote    string // remote address
	Initiator bool   // we dialled
	// Counters of this link since it opened (see Stats).
	MessagesSent, MessagesReceived, BytesSent, BytesReceived uint64
}

// Peers lists the open links.
func (s *Session) Peers() []PeerInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []PeerInfo
	for _, l := range s.links {
		out = append(out, PeerInfo{
			ZID: l.zid, WhatAmI: l.whatami.String(), Remote: l.conn.RemoteAddr().String(), Initiator: l.initiator,
			MessagesSent: l.stats.sent.Load(), MessagesReceived: l.stats.received.Load(),
			BytesSent: l.stats.bytesSent.Load(), BytesReceived: l.stats.bytesReceived.Load(),
		})
	}
	return out
}

// Stats returns a snapshot of the counters.
func (s *Session) Stats() Stats {
	c := &s.stats
	return Stats{
		MessagesSent: c.sent.Load(), MessagesReceived: c.received.Load(),
		BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesReceived.Load(), Writes: c.writes.Load(),
		Dropped: c.dropped.Load(), LinksOpened: c.opened.Load(), LinksClosed: c.closed.Load(),
		AuthRefused: c.authRefused.Load(),
	}
}

// Close closes every link (sending CLOSE), stops listening and dialling,
// and waits for all the session's goroutines.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	links := make([]*link, 0, len(s.links))
	for _, l := range s.links {
		links = append(links, l)
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range ls {
		l.Close()
	}
	for _, l := range links {
		l.close(wire.CloseGeneric, true, nil)
	}
	s.wg.Wait()
	return nil
}

// Publish sends a PUT of payload (with attachment, if non-nil) on key to
// every matching remote subscriber and local subscription. It returns
// once the bytes are handed to the kernel for every link (bounded by ctx
// and the lease); a link that fails is closed and the loss counted.
func (s *Session) Publish(ctx context.Context, key string, payload, attachment []byte) error {
	if err := keyexpr.Check(key); err != nil {
		return fmt.Errorf("zenoh publish: %w", err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	var targets []*link
	for _, l := range s.links {
		if l.wants(key) {
			targets = append(targets, l)
		}
	}
	var local []*subscription
	for _, sub := range s.subs {
		if keyexpr.Intersects(sub.expr, key) {
			local = append(local, sub)
		}
	}
	s.mu.RUnlock()

	var errs []error
	for _, l := range targets {
		if err := l.sendPut(ctx, key, payload, attachment); err != nil {
			s.stats.dropped.Add(1)
			errs = append(errs, err)
		}
	}
	if len(local) > 0 {
		smp := transport.Sample{Key: key, Payload: payload, Attachment: attachment}
		for _, sub := range local {
			sub.deliver(smp)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("zenoh publish %s: %w", key, errors.Join(errs...))
	}
	return nil
}

// Matching reports whether a publication on key would reach a remote
// node now: a link whose peer declared a matching subscriber, or a link
// to a router. A caller that expects a remote receiver can count a
// publication made while this is false as lost.
func (s *Session) Matching(key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, l := range s.links {
		if l.wants(key) {
			return true
		}
	}
	return false
}

// Subscribe declares a subscriber on keyExpr (canonical, with `*` and
// `**` allowed) to every current and future link. h is called from one
// goroutine at a time; the Sample is valid only until h returns.
func (s *Session) Subscribe(keyExpr string, h transport.Handler) (transport.Subscription, error) {
	if err := keyexpr.Check(keyExpr); err != nil {
		return nil, fmt.Errorf("zenoh subscribe: %w", err)
	}
	if h == nil {
		return nil, errors.New("zenoh subscribe: nil handler")
	}
	s.declMu.Lock()
	defer s.declMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.nextID++
	sub := &subscription{s: s, id: s.nextID, expr: keyExpr, h: h}
	s.subs[sub.id] = sub
	links := s.linkListLocked()
	s.mu.Unlock()
	d := declareSubscriber(sub.id, keyExpr, nil)
	for _, l := range links {
		l.sendNetwork(d)
	}
	return sub, nil
}

func (s *Session) linkListLocked() []*link {
	out := make([]*link, 0, len(s.links))
	for _, l := range s.links {
		out = append(out, l)
	}
	return out
}

func declareSubscriber(id uint32, expr string, interest *uint32) *wire.Declare {
	d := &wire.Declare{Kind: wire.DeclSubscriber, ID: id, Key: wire.WireExpr{Suffix: expr}, HasKey: true}
	if interest != nil {
		d.HasInterest, d.InterestID = true, *interest
	}
	return d
}

type subscription struct {
	s    *Session
	id   uint32
	expr string
	h    transport.Handler

	mu     sync.Mutex // held while h runs: one call at a time
	closed bool
}

func (sub *subscription) deliver(smp transport.Sample) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.h(smp)
	}
}

// Close undeclares the subscriber and waits for a handler call in flight.
func (sub *subscription) Close() error {
	s := sub.s
	s.declMu.Lock()
	s.mu.Lock()
	_, ok := s.subs[sub.id]
	delete(s.subs, sub.id)
	links := s.linkListLocked()
	s.mu.Unlock()
	if ok {
		u := &wire.Declare{Kind: wire.UndeclSubscribe, ID: sub.id, Key: wire.WireExpr{Suffix: sub.expr}, HasKey: true}
		for _, l := range links {
			l.sendNetwork(u)
		}
	}
	s.declMu.Unlock()
	sub.mu.Lock()
	sub.closed = true
	sub.mu.Unlock()
	return nil
}
