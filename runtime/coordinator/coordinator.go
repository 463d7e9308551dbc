// Package coordinator owns adora's control plane: the registry of connected
// daemons (stable identities, heartbeats), the lifecycle of dataflows
// (placement, spawn with rollback, stop, restart), auto-recovery, log and
// metrics fan-out to CLIs (node metrics, and each daemon's data-plane
// links checked against the peers its dataflows need, see dataplane.go),
// the artifact store, and persistence through
// runtime/coordinator/store. It serves HTTP and WebSocket on one port:
//
//	GET  /api/health, /health            unauthenticated JSON (proto.Health)
//	GET  /api/control                    WebSocket, CLI requests
//	GET  /api/daemon                     WebSocket, daemon registration and events
//	PUT  /api/artifacts/{build}/{node}   upload a node binary (X-Adora-Sha256)
//	GET  /api/artifacts/{build}/{node}   download it
//	GET|PUT /api/state/{ws}, POST .../lock, .../unlock   plan/apply state
//
// Every endpoint but health requires "Authorization: Bearer <token>" when
// Config.Token is set.
//
// A dataflow moves through these states (proto.FlowStatus):
//
//	pending -> running -> stopping -> stopped
//	   |          |  \-> succeeded | failed  (every daemon finished its part)
//	   v          v
//	 failed    recovering (coordinator restarted; back to running when a
//	 (spawn)               daemon reports it, or re-spawned by auto-recovery)
//
// The coordinator keeps every active dataflow in memory and in the store;
// after a restart it reloads the active ones as recovering and lets the
// daemons' status reports bring them back to running without restarting
// any node.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// Clock tells the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures a Coordinator.
// DefaultSpawnTimeout bounds a daemon's answer to Spawn. It is longer than
// a daemon's default build timeout of one node (10 min), since a spawn
// runs the nodes' build: lines first.
const DefaultSpawnTimeout = 15 * time.Minute

type Config struct {
	// Store persists daemons and dataflows (required).
	Store store.Store
	// Token is the bearer token; "" turns authentication off.
	Token string
	// ArtifactsDir holds uploaded node binaries; "" disables the artifact
	// endpoints (they answer 503).
	ArtifactsDir string
	Logger       *slog.Logger
	Clock        Clock
	// TickInterval drives the heartbeat watchdog and periodic recovery
	// (default 5 s).
	TickInterval time.Duration
	// SpawnTimeout bounds one daemon's answer to Spawn, which includes
	// building the nodes' build: lines on that daemon (default
	// DefaultSpawnTimeout).
	SpawnTimeout time.Duration
	// ConnOptions tune every WebSocket connection.
	ConnOptions wsconn.Options
	// KeepFinished is how many finished dataflows the store keeps
	// (default 200).
	KeepFinished int
	// MaxConnections bounds concurrent WebSocket connections (default
	// 1024); further upgrades get 503.
	MaxConnections int
	// ProbeTimeout is how long a daemon uuid's existing connection has to
	// answer a ping when the same uuid registers again (default 2 s): an
	// answer means two live daemons share one identity, and the newcomer
	// is refused; silence means the old connection is stale and is
	// replaced.
	ProbeTimeout time.Duration
	// UnknownGrace is how long a daemon may run a dataflow that neither
	// this coordinator nor its store knows (a coordinator restarted with
	// a memory store, a store that lost it) before the coordinator stops
	// it (default 1 min; negative: never, such dataflows are left alone).
	UnknownGrace time.Duration
}

// Coordinator is the control plane. Create it with New, serve it with
// Serve or Handler, end it with Close.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	clock Clock

	ctx    context.Context // canceled by Close: ends every connection
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection handlers, request workers, ticker

	destroyed chan struct{} // closed once a Destroy request completed
	destroyMu sync.Once

	stateMu sync.Mutex // serializes state read-check-write

	conns int // WebSocket connections being served; guarded by mu

	lastGC time.Time // last artifact cleanup; used by Tick only

	mu        sync.Mutex
	daemons   map[string]*daemonSession // connected and registered, by daemon id
	flows     map[string]*flow          // active dataflows, by id
	recovery  map[recoveryKey]time.Time // last auto-recovery attempt
	followers map[*follower]struct{}
	// unknownGone keeps the unknownSince of daemons that disconnected, so
	// a daemon reconnecting often does not restart its grace windows.
	unknownGone map[string]map[string]time.Time
	// dataPlane holds the latest data-plane report of each daemon that
	// sent one, connected or not (see dataPlaneState).
	dataPlane map[string]*dataPlaneState
	closed    bool
}

// New loads the store and returns a Coordinator ready to serve. Active
// dataflows found in the store are reloaded as recovering.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Store == nil {
		return nil, errors.New("coordinator: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = proto.HeartbeatInterval
	}
	if cfg.SpawnTimeout <= 0 {
		cfg.SpawnTimeout = DefaultSpawnTimeout
	}
	if cfg.KeepFinished <= 0 {
		cfg.KeepFinished = 200
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 1024
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 2 * time.Second
	}
	if cfg.UnknownGrace == 0 {
		cfg.UnknownGrace = DefaultUnknownGrace
	}
	if cfg.ConnOptions.Logger == nil {
		cfg.ConnOptions.Logger = cfg.Logger
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{
		cfg: cfg, log: cfg.Logger, store: cfg.Store, clock: cfg.Clock,
		ctx: ctx, cancel: cancel,
		destroyed: make(chan struct{}),
		daemons:   map[string]*daemonSession{},
		flows:     map[string]*flow{},
		recovery:  map[recoveryKey]time.Time{},
		followers: map[*follower]struct{}{},

		unknownGone: map[string]map[string]time.Time{},
		dataPlane:   map[string]*dataPlaneState{},
	}
	if err := c.reload(); err != nil {
		cancel()
		return nil, err
	}
	c.wg.Add(1)
	go c.tickLoop()
	return c, nil
}

// reload brings the active dataflows of the store back into memory.
func (c *Coordinator) reload() error {
	recs, err := c.store.Dataflows()
	if err != nil {
		return fmt.Errorf("coordinator: load dataflows: %w", err)
	}
	now := c.clock.Now()
	for _, r := range recs {
		if !r.Status.Active() {
			continue
		}
		prev := r.Status
		r.UpdatedAt = now
		if r.Status == proto.FlowStopping {
			// The stop was under way: finish it. Daemons that still run
			// nodes of it get a stop when they report them (stopOrphans).
			r.Status = proto.FlowStopped
			if err := c.store.PutDataflow(r); err != nil {
				return fmt.Errorf("coordinator: store dataflow %s: %w", r.ID, err)
			}
			c.log.Info("coordinator restarted during a stop: dataflow marked stopped", "dataflow", r.Name, "uuid", r.ID)
			continue
		}
		r.Status = proto.FlowRecovering
		if err := c.store.PutDataflow(r); err != nil {
			return fmt.Errorf("coordinator: store dataflow %s: %w", r.ID, err)
		}
		c.flows[r.ID] = newFlow(r)
		c.log.Info("coordinator restarted: waiting for daemons to report dataflow",
			"dataflow", r.Name, "uuid", r.ID, "was", prev, "now", r.Status)
	}
	return nil
}

// Destroyed is closed after a Destroy request stopped everything; the
// process should then exit.
func (c *Coordinator) Destroyed() <-chan struct{} { return c.destroyed }

// Close ends every connection and background goroutine and waits for
// them. It does not close the store.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// Serve serves HTTP on ln until ctx ends or a Destroy request completes,
// then shuts down and closes the coordinator.
func (c *Coordinator) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case <-c.destroyed:
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	c.Close()
	if err == nil {
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Handler is the coordinator's HTTP handler.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proto.PathHealth, c.handleHealth)
	mux.HandleFunc("GET "+proto.PathHealthAlt, c.handleHealth)
	mux.Handle("GET "+proto.PathControl, c.authed(http.HandlerFunc(c.handleControl)))
	mux.Handle("GET "+proto.PathDaemon, c.authed(http.HandlerFunc(c.handleDaemon)))
	mux.Handle("PUT "+proto.PathArtifacts+"{build}/{node}", c.authed(http.HandlerFunc(c.handleArtifactPut)))
	mux.Handle("GET "+proto.PathArtifacts+"{build}/{node}", c.authed(http.HandlerFunc(c.handleArtifactGet)))
	c.stateRoutes(mux)
	return mux
}

// authed refuses requests without the bearer token (when auth is on).
func (c *Coordinator) authed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.cfg.Token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !auth.Equal(strings.TrimSpace(got), c.cfg.Token) {
				c.log.Warn("rejected request: missing or invalid token", "path", r.URL.Path, "remote", r.RemoteAddr)
				http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Coordinator) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := proto.Health{Status: "ok", Version: versionString(), Protocol: proto.ProtocolVersion, Auth: c.cfg.Token != "", Daemons: []proto.HealthDaemon{}}
	c.mu.Lock()
	for _, s := range c.sortedDaemonsLocked() {
		h.Daemons = append(h.Daemons, proto.HealthDaemon{ID: s.id, MachineID: s.reg.MachineID, Version: s.reg.Version})
	}
	h.ActiveDataflows = len(c.flows)
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, h)
}

// track counts the calling connection handler into c.wg so Close waits
// for it. It answers 503 and returns false when closing or at
// MaxConnections; on true the caller defers c.untrack().
func (c *Coordinator) track(w http.ResponseWriter) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		http.Error(w, "coordinator is shutting down", http.StatusServiceUnavailable)
		return false
	}
	if c.conns >= c.cfg.MaxConnections {
		c.log.Warn("refused connection: too many connections", "max", c.cfg.MaxConnections)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return false
	}
	c.conns++
	c.wg.Add(1)
	return true
}

func (c *Coordinator) untrack() {
	c.mu.Lock()
	c.conns--
	c.mu.Unlock()
	c.wg.Done()
}

// goWorker runs f on a goroutine the coordinator owns; false when closing.
func (c *Coordinator) goWorker(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *Coordinator) tickLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.Tick()
		}
	}
}

// Tick runs the periodic work once: the heartbeat watchdog (daemons silent
// for proto.HeartbeatTimeout are disconnected), heartbeats to daemons,
// auto-recovery for daemons whose last report lacks a dataflow, and (every
// 10 minutes) removal of artifacts no stored dataflow references. It is
// called every TickInterval from one goroutine; tests call it directly
// with a fake clock (not concurrently with the ticker: give them a long
// TickInterval).
func (c *Coordinator) Tick() {
	now := c.clock.Now()
	var stale, live []*daemonSession
	c.mu.Lock()
	var late []*daemonSession
	for _, s := range c.daemons {
		silent := now.Sub(s.lastHeartbeat)
		switch {
		case silent > proto.HeartbeatTimeout:
			stale = append(stale, s)
		case silent > proto.HeartbeatTimeout/2:
			if !s.late {
				s.late = true
				late = append(late, s)
			}
			live = append(live, s)
		default:
			s.late = false
			live = append(live, s)
		}
	}
	c.mu.Unlock()
	for _, s := range late {
		c.log.Warn("daemon heartbeat late", "daemon", s.name(), "uuid", s.id, "silent_for", now.Sub(s.lastHeartbeat).Round(time.Second))
	}
	for _, s := range stale {
		c.log.Warn("daemon missed heartbeats, disconnecting", "daemon", s.name(), "last_heartbeat", s.lastHeartbeatAt())
		s.conn.Abort()
	}
	for _, s := range live {
		s.conn.TrySend(proto.TypeHeartbeat, proto.Heartbeat{})
		c.recover(s)
		c.stopUnknown(s, now)
	}
	if now.Sub(c.lastGC) >= artifactGCInterval {
		c.lastGC = now
		c.gcArtifacts(now)
	}
}

// artifactGCInterval is how often Tick looks for unreferenced artifacts.
const artifactGCInterval = 10 * time.Minute
