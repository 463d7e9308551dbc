// Package coordtest helps test code that talks to a coordinator: it runs a
// real Coordinator on a loopback port and provides Daemon, an in-process
// daemon that speaks the daemon protocol (register, status reports,
// spawn/stop/logs/destroy answers) without running any process. The real
// daemon lives in runtime/daemon; this one lets coordinator, client and
// apply tests run fast and deterministically.
package coordtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
// The port lies below the kernel's ephemeral range, so no outgoing
// connection (not even a client redialling this very port) can hold it
// when a test brings the coordinator back on it with StartOn.
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
	ln, err := listen(port)
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

// listen listens on 127.0.0.1:port. For port 0 it picks a free port
// below the ephemeral range; for a given port it retries for a few
// seconds while the port is still held (a closed listener's connections
// going away).
func listen(port int) (net.Listener, error) {
	if port == 0 {
		lo, _ := ephemeralRange()
		for range 50 {
			p := 10000 + rand.IntN(lo-10000)
			if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				return ln, nil
			}
		}
		return net.Listen("tcp", "127.0.0.1:0")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ephemeralRange is the kernel's range of ports for outgoing connections
// (Linux's default when it cannot be read).
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		l, err1 := strconv.Atoi(f[0])
		h, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && l > 11000 && h >= l {
			return l, h
		}
	}
	return lo, hi
}
