// Package coordtest helps test code that talks to a coordinator: it runs a
// real Coordinator on a loopback port and provides Daemon, an in-process
// daemon that speaks the daemon protocol (register, status reports,
// spawn/stop/logs/destroy answers) without running any process. The real
// daemon lives in runtime/daemon; this one lets coordinator, client and
// apply tests run fast and deterministically.
package coordtest

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// Clock is a settable clock for Config.Clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Server is a coordinator serving on 127.0.0.1.
type Server struct {
	*coordinator.Coordinator
	Endpoint wsconn.Endpoint
	cancel   context.CancelFunc
	done     chan error
}

// Start serves a coordinator with cfg on a free loopback port (an empty
// Store becomes a memory store). Token in cfg also goes into Endpoint.
// The server stops at the end of the test, or earlier with Stop.
func Start(t testing.TB, cfg coordinator.Config) *Server {
	t.Helper()
	return StartOn(t, cfg, 0)
}

// StartOn is Start on a given loopback port (0: a free one), to bring a
// coordinator back where its clients expect it.
func StartOn(t testing.TB, cfg coordinator.Config, port int) *Server {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = store.NewMemory()
	}
	c, err := coordinator.New(cfg)
	if err != nil {
		t.Fatalf("coordinator.New: %v", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		c.Close()
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Coordinator: c, cancel: cancel, done: make(chan error, 1),
		Endpoint: wsconn.Endpoint{Addr: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Token: cfg.Token}}
	go func() { s.done <- c.Serve(ctx, ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the coordinator down (as a kill would: no dataflow is
// stopped) and waits for it. Safe to call twice.
func (s *Server) Stop() {
	s.cancel()
	if s.done != nil {
		<-s.done
		s.done = nil
	}
}

// Wait polls cond every few milliseconds until it holds or timeout
// passes; it reports whether cond held.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}
