// Package daemon is adora's per-machine agent: it registers with the
// coordinator under a stable identity, spawns and supervises the nodes the
// coordinator assigns (through runtime/supervisor and the data plane
// router), streams their logs and metrics, and answers stop, logs and
// destroy requests. Before the first spawn of a dataflow's nodes it runs
// their build: lines in each node's working directory (see Build), one
// dataflow at a time; restarts and recovery spawns do not rebuild.
//
// The daemon keeps its nodes running while the coordinator is unreachable:
// it reconnects with exponential backoff forever and reports what it runs
// (StatusReport) after every registration, so the coordinator can rebuild
// its view or re-spawn what is missing (auto-recovery).
//
//	Run --dial+hello+register--> connected --conn lost--> backoff --> dial ...
//	  \                             |  (nodes keep running throughout)
//	   \--duplicate machine id / protocol mismatch: Run returns the error
//	    \-- Destroy request or ctx cancelled: stop all nodes, Run returns nil
//
// Files on the machine (one state directory per machine id):
//
//	$ADORA_HOME/daemon/<machine id, or _unnamed>/
//	  identity                       {"version": 1, "daemon_uuid": "..."}
//	  logs/<dataflow>/<node>.jsonl   node output and daemon lines, JSON lines
//	                                 {seq, time, node, stream, line}, seq
//	                                 numbering the node's lines 1, 2, ...;
//	                                 rotated at 10 MiB into .1 ... .4
//	  pids/<dataflow>/<node>.pid     "<pid> <start ticks> <boot id>" while it runs
//	  sockets/<dataflow>             the data-plane socket directory (in /tmp)
//	  artifacts/<build>/<node>       node binaries downloaded (distribute: http)
//	$ADORA_HOME/work/<dataflow>/     working directory when the CLI's is absent
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
	"github.com/adora-rs/adora/runtime/supervisor"
	"github.com/adora-rs/adora/transport"
)

// Defaults of the reconnect backoff.
const (
	DefaultReconnectMin = 500 * time.Millisecond
	DefaultReconnectMax = 10 * time.Second
)

// Config configures a Daemon.
type Config struct {
	MachineID string
	Labels    map[string]string
	// Coordinator is where to connect (with the bearer token, if any).
	Coordinator wsconn.Endpoint
	// TokenSource, when set, gives the bearer token before each connection
	// attempt, replacing Coordinator.Token (a token file re-read, so that a
	// daemon started before the coordinator wrote it gets in once it has).
	// An error fails that attempt, which is retried.
	TokenSource func() (string, error)
	// Home is ADORA_HOME; "" means paths.Home().
	Home      string
	Logger    *slog.Logger
	NewRouter RouterFactory // nil: nodes run without a data plane
	// Transport carries data between machines (a Zenoh session); nil
	// keeps every dataflow on this machine. When it can Connect (Mesh),
	// the daemon links to the peers each Spawn names.
	Transport transport.Transport
	// Endpoints are where other daemons reach Transport
	// ("tcp/10.0.0.2:7447"), sent at registration.
	Endpoints []string

	// BuildTimeout bounds the build of one node (its `build:` lines) before
	// its first spawn; 0 means DefaultBuildTimeout.
	BuildTimeout time.Duration

	// Intervals; zero values take the proto defaults.
	HeartbeatInterval time.Duration
	MetricsInterval   time.Duration
	ReconnectMin      time.Duration
	ReconnectMax      time.Duration
}

// Mesh is a transport that can keep links to given endpoints (a Zenoh
// session in peer mode).
type Mesh interface {
	Connect(endpoint string) error
}

// ErrRefused wraps a registration the coordinator refused (for example a
// duplicate machine id): retrying cannot help.
var ErrRefused = errors.New("coordinator refused registration")

// Daemon is one machine's agent. Create it with New, then call Run once.
type Daemon struct {
	cfg      Config
	log      *slog.Logger
	id       string
	home     string
	stateDir string

	wg       sync.WaitGroup // request handlers and flow watchers
	buildSem chan struct{}  // one dataflow's builds at a time
	// buildCtx ends when Run stops: builds in progress are killed.
	buildCtx     context.Context
	cancelBuilds context.CancelFunc
	logs         chan proto.LogLine
	flushReq     chan chan struct{} // see flushLogs

	mu          sync.Mutex
	conn        *wsconn.Conn
	flows       map[string]*flowRun
	starting    map[string]context.CancelFunc // dataflow ids whose spawn is in progress; cancel stops its build
	closing     bool                          // Run is stopping every dataflow
	finished    []proto.DataflowFinished      // not yet delivered to a coordinator
	destroyed   chan struct{}
	destroyOnce sync.Once
	stats       proto.FaultStats
	cpu         map[cpuKey]cpuSample
}

type flowRun struct {
	flow *Flow
	name string
	done chan struct{} // closed after the finished report is queued
}

// New loads (or creates) the daemon's identity and reaps node processes a
// previous daemon with the same identity left behind.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	home := cfg.Home
	if home == "" {
		h, err := paths.Home()
		if err != nil {
			return nil, err
		}
		home = h
	}
	idName := cfg.MachineID
	if idName == "" {
		idName = "_unnamed"
	}
	d := &Daemon{
		cfg:       cfg,
		log:       cfg.Logger,
		home:      home,
		stateDir:  filepath.Join(home, "daemon", idName),
		logs:      make(chan proto.LogLine, 4096),
		flushReq:  make(chan chan struct{}),
		flows:     map[string]*flowRun{},
		starting:  map[string]context.CancelFunc{},
		buildSem:  make(chan struct{}, 1),
		destroyed: make(chan struct{}),
		cpu:       map[cpuKey]cpuSample{},
	}
	d.buildCtx, d.cancelBuilds = context.WithCancel(context.Background())
	idPath := filepath.Join(d.stateDir, "identity")
	id, err := LoadIdentity(idPath)
	if err != nil {
		return nil, err
	}
	d.id = id
	d.removeStaleSocketDirs()
	if n, err := supervisor.ReapStale(filepath.Join(d.stateDir, "pids"), d.log); err != nil {
		d.log.Warn("reap leftover node processes", "err", err)
	} else if n > 0 {
		d.log.Warn("killed node processes left by a previous daemon", "groups", n)
	}
	return d, nil
}

// ID is the daemon's stable uuid.
func (d *Daemon) ID() string { return d.id }

// StateDir is where the daemon keeps its identity, node logs and pid files.
func (d *Daemon) StateDir() string { return d.stateDir }

func (d *Daemon) interval(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// Run connects to the coordinator and serves it until ctx is cancelled or a
// Destroy request arrives (both stop every node and return nil), or the
// coordinator refuses the daemon (an ErrRefused error). Connection losses
// are retried forever; nodes keep running meanwhile.
func (d *Daemon) Run(ctx context.Context) error {
	// The log forwarder and the tickers outlive the connection loop until
	// every flow has ended (final log lines flush before results).
	bgCtx, bgCancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); d.forwardLogs(bgCtx) }()
	go func() { defer bg.Done(); d.tick(bgCtx) }()
	err := d.connectLoop(ctx)
	d.mu.Lock()
	d.closing = true // spawns still in flight stop their nodes at once
	d.mu.Unlock()
	d.cancelBuilds()
	d.stopAll(proto.DefaultGrace, false)
	d.wg.Wait()
	bgCancel()
	bg.Wait()
	return err
}

func (d *Daemon) connectLoop(ctx context.Context) error {
	minB := d.interval(d.cfg.ReconnectMin, DefaultReconnectMin)
	maxB := d.interval(d.cfg.ReconnectMax, DefaultReconnectMax)
	backoff := minB
	for {
		connected, err := d.session(ctx)
		if errors.Is(err, ErrRefused) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.destroyed:
			return nil
		default:
		}
		if connected {
			backoff = minB
		}
		wait := jitter(backoff)
		d.log.Warn("coordinator unreachable, retrying", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-d.destroyed:
			return nil
		case <-time.After(wait):
		}
		backoff = nextBackoff(backoff, maxB)
	}
}

// nextBackoff doubles the reconnect delay up to max.
func nextBackoff(cur, max time.Duration) time.Duration {
	return min(cur*2, max)
}

// jitter spreads d by +-20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// coordinator returns the coordinator's endpoint with the current token.
func (d *Daemon) coordinator() (wsconn.Endpoint, error) {
	ep := d.cfg.Coordinator
	if d.cfg.TokenSource != nil {
		tok, err := d.cfg.TokenSource()
		if err != nil {
			return ep, fmt.Errorf("coordinator token: %w", err)
		}
		ep.Token = tok
	}
	return ep, nil
}

// session runs one connection: dial, register, report, serve until the
// connection ends. connected says whether registration succeeded.
func (d *Daemon) session(ctx context.Context) (connected bool, err error) {
	ep, err := d.coordinator()
	if err != nil {
		return false, err
	}
	dctx, cancel := context.WithTimeout(ctx, proto.RequestTimeout)
	defer cancel()
	conn, _, err := wsconn.Dial(dctx, ep, proto.PathDaemon, proto.RoleDaemon, d.handle, wsconn.Options{Logger: d.log})
	if err != nil {
		var re *wsconn.RemoteError
		if errors.As(err, &re) {
			return false, fmt.Errorf("%w: %s", ErrRefused, re.Msg)
		}
		return false, err
	}
	defer conn.Close()
	var ok proto.RegisterOK
	if err := conn.Request(dctx, proto.TypeRegister, d.register(), &ok); err != nil {
		var re *wsconn.RemoteError
		if errors.As(err, &re) {
			return false, fmt.Errorf("%w: %s", ErrRefused, re.Msg)
		}
		return false, fmt.Errorf("register: %w", err)
	}
	d.log.Info("registered with coordinator", "daemon_id", ok.DaemonID, "machine_id", d.cfg.MachineID)
	if err := conn.Send(ctx, proto.TypeStatusReport, d.statusReport()); err != nil {
		return true, err
	}
	d.mu.Lock()
	d.conn = conn
	pending := d.finished
	d.finished = nil
	d.mu.Unlock()
	for _, f := range pending {
		d.sendFinished(f)
	}
	select {
	case <-conn.Done():
		err = conn.Err()
		if err == nil {
			err = errors.New("coordinator closed the connection")
		}
	case <-ctx.Done():
	case <-d.destroyed:
	}
	d.mu.Lock()
	d.conn = nil
	d.mu.Unlock()
	return true, err
}

func (d *Daemon) register() proto.Register {
	host, _ := os.Hostname()
	return proto.Register{
		DaemonUUID:     d.id,
		MachineID:      d.cfg.MachineID,
		Labels:         d.cfg.Labels,
		Version:        version.Version,
		Hostname:       host,
		OS:             runtime.GOOS,
		Arch:           runtime.GOARCH,
		PID:            os.Getpid(),
		ZenohEndpoints: d.cfg.Endpoints,
	}
}

// send delivers an event on the current connection; it reports false when
// the daemon is not connected or the queue stayed full.
func (d *Daemon) send(t proto.Type, payload any) bool {
	d.mu.Lock()
	c := d.conn
	d.mu.Unlock()
	if c == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), proto.WriteWait)
	defer cancel()
	return c.Send(ctx, t, payload) == nil
}

// sendFinished delivers a finished report now or after the next
// registration.
func (d *Daemon) sendFinished(f proto.DataflowFinished) {
	d.flushLogs()
	if d.send(proto.TypeDataflowFinished, f) {
		return
	}
	d.mu.Lock()
	d.finished = append(d.finished, f)
	d.mu.Unlock()
}

// handle runs on the connection's reader goroutine: requests are served
// on goroutines the daemon owns.
func (d *Daemon) handle(c *wsconn.Conn, e *proto.Envelope) {
	switch e.Type {
	case proto.TypeSpawn, proto.TypeStop, proto.TypeLogs, proto.TypeDestroy:
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.serve(c, e)
		}()
	case proto.TypeHeartbeat:
	default:
		if e.IsRequest() {
			c.Reply(context.Background(), e, "", nil, fmt.Errorf("daemon does not handle %s requests", e.Type))
		}
	}
}

func (d *Daemon) serve(c *wsconn.Conn, e *proto.Envelope) {
	ctx := context.Background()
	var (
		t       proto.Type
		payload any
		err     error
	)
	switch e.Type {
	case proto.TypeSpawn:
		var m proto.Spawn
		if err = e.Into(&m); err == nil {
			err = d.spawn(&m)
		}
	case proto.TypeStop:
		var m proto.Stop
		if err = e.Into(&m); err == nil {
			t, payload = proto.TypeStopReply, d.stop(m)
		}
	case proto.TypeLogs:
		var m proto.Logs
		if err = e.Into(&m); err == nil {
			var r proto.LogsReply
			r, err = d.readLogs(m)
			t, payload = proto.TypeLogsReply, r
		}
	case proto.TypeDestroy:
		var m proto.Destroy
		_ = e.Into(&m)
		d.stopAll(m.Grace, false)
		c.Reply(ctx, e, "", nil, nil)
		d.destroyOnce.Do(func() { close(d.destroyed) })
		return
	}
	if rerr := c.Reply(ctx, e, t, payload, err); rerr != nil {
		d.log.Warn("reply to coordinator", "type", e.Type, "err", rerr)
	}
}

// stopAll stops every dataflow and waits for their nodes.
func (d *Daemon) stopAll(grace time.Duration, force bool) {
	d.mu.Lock()
	runs := make([]*flowRun, 0, len(d.flows))
	for _, r := range d.flows {
		runs = append(runs, r)
	}
	d.mu.Unlock()
	for _, r := range runs {
		r.flow.Stop(grace, force)
	}
	for _, r := range runs {
		<-r.done
	}
}
