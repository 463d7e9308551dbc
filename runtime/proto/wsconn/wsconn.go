// Package wsconn runs one control-plane WebSocket connection: exactly one
// reader and one writer goroutine, ping/pong deadlines, the 1 MiB frame
// limit, request/reply correlation and the hello handshake. The
// coordinator, the daemon and the client library all speak through it.
//
// A malformed or oversized frame closes the connection it arrived on and
// nothing else.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/adora-rs/adora/runtime/proto"
)

// ErrClosed is returned by operations on a closed connection.
var ErrClosed = errors.New("connection closed")

// RemoteError is an error reply from the peer.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Handler receives every request and event from the peer (replies are
// routed to Request callers). It runs on the reader goroutine: it must not
// block for long; work that takes time belongs on a goroutine the handler's
// owner starts, which answers later with Conn.Reply.
type Handler func(c *Conn, e *proto.Envelope)

// Options tune a connection; zero values take the proto defaults.
type Options struct {
	PingInterval time.Duration
	PongWait     time.Duration
	WriteWait    time.Duration
	// QueueLen is the outgoing frame queue length (default 256).
	QueueLen int
	Logger   *slog.Logger
}

func (o *Options) defaults() {
	if o.PingInterval <= 0 {
		o.PingInterval = proto.PingInterval
	}
	if o.PongWait <= 0 {
		o.PongWait = proto.PongWait
	}
	if o.WriteWait <= 0 {
		o.WriteWait = proto.WriteWait
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Conn is a running connection. Its methods are safe for concurrent use.
type Conn struct {
	ws      *websocket.Conn
	opts    Options
	handler Handler
	out     chan []byte
	done    chan struct{} // closed when the connection is finished
	wg      sync.WaitGroup
	nextID  atomic.Uint64
	started atomic.Bool

	mu        sync.Mutex
	pending   map[uint64]chan *proto.Envelope
	probes    map[string]chan struct{} // ping payload -> closed on its pong
	err       error
	closeOnce sync.Once
}

// Start wraps an upgraded (and handshaken) WebSocket and starts its reader
// and writer goroutines. Close stops them and waits.
func Start(ws *websocket.Conn, h Handler, opts Options) *Conn {
	c := New(ws, h, opts)
	c.Start()
	return c
}

// New wraps ws without starting it, so the owner can publish the *Conn
// before its handler can run; call Start next.
func New(ws *websocket.Conn, h Handler, opts Options) *Conn {
	opts.defaults()
	c := &Conn{
		ws:      ws,
		opts:    opts,
		handler: h,
		out:     make(chan []byte, opts.QueueLen),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan *proto.Envelope),
	}
	ws.SetReadLimit(proto.MaxMessageSize)
	return c
}

// Start starts the reader and writer goroutines of a Conn made with New.
func (c *Conn) Start() {
	c.started.Store(true)
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
}

// RemoteAddr is the peer's network address.
func (c *Conn) RemoteAddr() string { return c.ws.RemoteAddr().String() }

// Done is closed when the connection has ended for any reason.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (nil while it runs or after Close).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection and waits for its goroutines.
func (c *Conn) Close() error {
	c.finish(nil)
	if !c.started.Load() {
		return c.ws.Close() // no writer to close the socket
	}
	c.wg.Wait()
	return nil
}

// Probe sends a WebSocket ping and waits for its pong: nil means the peer
// process is alive and reading this connection. It fails when ctx ends
// first or the connection closes.
func (c *Conn) Probe(ctx context.Context) error {
	data := "probe-" + strconv.FormatUint(c.nextID.Add(1), 10)
	ch := make(chan struct{})
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.probes == nil {
		c.probes = map[string]chan struct{}{}
	}
	c.probes[data] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.probes, data)
		c.mu.Unlock()
	}()
	deadline := time.Now().Add(c.opts.WriteWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.ws.WriteControl(websocket.PingMessage, []byte(data), deadline); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Abort ends the connection without waiting for its goroutines: queued
// frames are still written (best effort). Safe to call from a Handler;
// the connection's owner still calls Close.
func (c *Conn) Abort() { c.finish(nil) }

// finish records the reason, closes the socket and fails pending requests.
func (c *Conn) finish(reason error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = reason
		pend := c.pending
		c.pending = nil
		c.mu.Unlock()
		for _, ch := range pend {
			close(ch)
		}
		close(c.done)
		// Unblock the reader; the writer sees done.
		c.ws.SetReadDeadline(time.Now())
	})
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	c.ws.SetReadDeadline(time.Now().Add(c.opts.PongWait))
	c.ws.SetPongHandler(func(data string) error {
		c.mu.Lock()
		if ch, ok := c.probes[data]; ok {
			delete(c.probes, data)
			close(ch)
		}
		c.mu.Unlock()
		return c.ws.SetReadDeadline(time.Now().Add(c.opts.PongWait))
	})
	for {
		mt, frame, err := c.ws.ReadMessage()
		if err != nil {
			c.finish(readError(err))
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(c.opts.PongWait))
		if mt != websocket.TextMessage {
			c.closeWith(websocket.CloseUnsupportedData, "binary frames are not supported")
			return
		}
		e, err := proto.Decode(frame)
		if err != nil {
			c.closeWith(websocket.CloseProtocolError, err.Error())
			return
		}
		if e.IsReply() {
			c.deliver(e)
			continue
		}
		if c.handler != nil {
			c.handler(c, e)
		}
	}
}

func readError(err error) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		return fmt.Errorf("peer sent a frame over %d bytes: %w", proto.MaxMessageSize, err)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway) {
		return nil
	}
	return err
}

// closeWith sends a close frame (best effort) and ends the connection.
func (c *Conn) closeWith(code int, text string) {
	if len(text) > 120 {
		text = text[:120]
	}
	c.opts.Logger.Warn("closing connection", "remote", c.RemoteAddr(), "reason", text)
	msg := websocket.FormatCloseMessage(code, text)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	c.finish(fmt.Errorf("%s", text))
}

func (c *Conn) deliver(e *proto.Envelope) {
	c.mu.Lock()
	ch, ok := c.pending[e.ReplyTo]
	delete(c.pending, e.ReplyTo)
	c.mu.Unlock()
	if ok {
		ch <- e // buffered 1
	}
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	defer c.ws.Close()
	ping := time.NewTicker(c.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case frame := <-c.out:
			c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.finish(fmt.Errorf("write: %w", err))
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.WriteWait)); err != nil {
				c.finish(fmt.Errorf("ping: %w", err))
				return
			}
		case <-c.done:
			c.drain()
			return
		}
	}
}

// drain writes frames still queued (best effort) and a close frame, so a
// reply sent just before Close reaches the peer.
func (c *Conn) drain() {
	deadline := time.Now().Add(time.Second)
	for {
		select {
		case frame := <-c.out:
			c.ws.SetWriteDeadline(deadline)
			if c.ws.WriteMessage(websocket.TextMessage, frame) != nil {
				return
			}
		default:
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
			return
		}
	}
}

// enqueue queues a frame, waiting for room until ctx ends.
func (c *Conn) enqueue(ctx context.Context, e *proto.Envelope) error {
	frame, err := proto.Encode(e)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.out <- frame:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send sends an event (no reply expected).
func (c *Conn) Send(ctx context.Context, t proto.Type, payload any) error {
	e, err := proto.NewEnvelope(t, payload)
	if err != nil {
		return err
	}
	return c.enqueue(ctx, e)
}

// TrySend sends an event only if the outgoing queue has room; it reports
// whether the event was queued. For fan-out to possibly slow peers.
func (c *Conn) TrySend(t proto.Type, payload any) bool {
	e, err := proto.NewEnvelope(t, payload)
	if err != nil {
		return false
	}
	frame, err := proto.Encode(e)
	if err != nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- frame:
		return true
	default:
		return false
	}
}

// Reply answers request req: with err as an error reply when err != nil,
// else with payload (nil for an empty proto.TypeReply).
func (c *Conn) Reply(ctx context.Context, req *proto.Envelope, t proto.Type, payload any, err error) error {
	if req.ID == 0 {
		return nil // an event: nothing to answer
	}
	var e *proto.Envelope
	if err != nil {
		e = &proto.Envelope{Type: proto.TypeReply, Error: err.Error()}
	} else {
		if t == "" {
			t = proto.TypeReply
		}
		var encErr error
		e, encErr = proto.NewEnvelope(t, payload)
		if encErr != nil {
			e = &proto.Envelope{Type: proto.TypeReply, Error: encErr.Error()}
		}
	}
	e.ReplyTo = req.ID
	err = c.enqueue(ctx, e)
	if err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
		// The reply could not be encoded (too large): answer with the
		// reason so the requester does not wait forever.
		return c.enqueue(ctx, &proto.Envelope{Type: proto.TypeReply, ReplyTo: req.ID, Error: truncateErr(err.Error())})
	}
	return err
}

func truncateErr(s string) string {
	if len(s) > 1024 {
		return s[:1024]
	}
	return s
}

// Request sends a request and waits for its reply, decoding the payload
// into out (which may be nil). An error reply comes back as *RemoteError.
func (c *Conn) Request(ctx context.Context, t proto.Type, payload, out any) error {
	e, err := proto.NewEnvelope(t, payload)
	if err != nil {
		return err
	}
	e.ID = c.nextID.Add(1)
	ch := make(chan *proto.Envelope, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return ErrClosed
	}
	c.pending[e.ID] = ch
	c.mu.Unlock()
	if err := c.enqueue(ctx, e); err != nil {
		c.forget(e.ID)
		return err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return c.closedErr()
		}
		return replyResult(r, out)
	case <-ctx.Done():
		c.forget(e.ID)
		return ctx.Err()
	}
}

// StartRequest sends a request whose replies and follow-up events the
// caller will watch itself; it returns the request ID and a channel that
// receives the reply (closed if the connection ends first). onID, when not
// nil, is called with the ID before the request is sent, so the caller can
// get ready for events that carry it.
func (c *Conn) StartRequest(ctx context.Context, t proto.Type, payload any, onID func(uint64)) (uint64, <-chan *proto.Envelope, error) {
	e, err := proto.NewEnvelope(t, payload)
	if err != nil {
		return 0, nil, err
	}
	e.ID = c.nextID.Add(1)
	if onID != nil {
		onID(e.ID)
	}
	ch := make(chan *proto.Envelope, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return 0, nil, ErrClosed
	}
	c.pending[e.ID] = ch
	c.mu.Unlock()
	if err := c.enqueue(ctx, e); err != nil {
		c.forget(e.ID)
		return 0, nil, err
	}
	return e.ID, ch, nil
}

// Result decodes a reply envelope obtained from StartRequest.
func Result(r *proto.Envelope, out any) error { return replyResult(r, out) }

func replyResult(r *proto.Envelope, out any) error {
	if r.Error != "" {
		return &RemoteError{Msg: r.Error}
	}
	if out == nil {
		return nil
	}
	return r.Into(out)
}

func (c *Conn) closedErr() error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	if c.pending != nil {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}
