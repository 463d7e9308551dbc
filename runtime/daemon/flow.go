package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/supervisor"
	"github.com/adora-rs/adora/transport"
)

// Router is the data plane of one dataflow on this machine: it connects the
// node processes to each other (dataplane.Router satisfies it through an
// adapter). The supervisor calls it around every spawn and exit.
type Router interface {
	PrepareNode(nodeID string, restartCount int) (env []string, files []*os.File, err error)
	RequestStop(nodeID string)
	NodeExited(nodeID string, restarting, failed bool)
	// Drops returns messages dropped at each node's input queues.
	Drops() map[string]uint64
	Close() error
}

// RouterConfig is what a RouterFactory gets for one dataflow.
type RouterConfig struct {
	DataflowID string
	Dataflow   *config.Dataflow
	Local      []string // node ids on this machine
	SocketDir  string   // a short private directory for unix sockets
	// Logger is the daemon's: the router adds the dataflow id to what it
	// logs (dataplane.NewRouter does).
	Logger *slog.Logger
	// Spawn is the coordinator's request (placements and peers); nil in
	// local mode.
	Spawn *proto.Spawn
	// Transport carries data to and from nodes on other machines; nil on
	// a single machine.
	Transport transport.Transport
}

// RouterFactory creates the router of one dataflow.
type RouterFactory func(RouterConfig) (Router, error)

// FlowConfig describes the part of a dataflow that runs on this machine.
type FlowConfig struct {
	ID       string
	Name     string
	Dataflow *config.Dataflow
	// Local lists the node ids to run here; nil means every node.
	Local []string
	// WorkingDir is the base working directory: relative node paths and
	// relative deploy.working_dir values resolve against it.
	WorkingDir string
	// IgnoreDeploy drops _unstable_deploy.working_dir (local mode).
	IgnoreDeploy bool
	// StateDir receives logs/<id>/<node>.jsonl and pids/<id>/<node>.pid.
	StateDir string
	// Executables replaces Node.Path for some nodes (downloaded artifacts).
	Executables map[string]string
	NewRouter   RouterFactory // nil: no data plane (plain processes)
	Spawn       *proto.Spawn
	Transport   transport.Transport // nil: single machine
	Logger      *slog.Logger
	Clock       supervisor.Clock
	OnEvent     func(supervisor.Event)
	OnLog       func(supervisor.LogLine)
}

// Flow is one dataflow's nodes on this machine: a supervisor plus the
// router. Close releases both.
type Flow struct {
	cfg       FlowConfig
	local     []string
	sup       *supervisor.Supervisor
	router    Router
	socketDir string
}

// StartFlow checks every local node (executable, working directory),
// creates the router and spawns the nodes. Nothing is left running when it
// fails.
func StartFlow(cfg FlowConfig) (*Flow, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	local := cfg.Local
	if local == nil {
		for _, n := range cfg.Dataflow.Nodes {
			local = append(local, n.ID)
		}
	}
	specs, err := nodeSpecs(cfg, local)
	if err != nil {
		return nil, err
	}
	f := &Flow{cfg: cfg, local: local}
	if cfg.NewRouter != nil {
		dir, err := os.MkdirTemp("", "adora-")
		if err != nil {
			return nil, fmt.Errorf("start dataflow %s: %w", cfg.ID, err)
		}
		f.socketDir = dir
		f.router, err = cfg.NewRouter(RouterConfig{
			DataflowID: cfg.ID, Dataflow: cfg.Dataflow, Local: local, SocketDir: dir,
			Logger: cfg.Logger, Spawn: cfg.Spawn, Transport: cfg.Transport,
		})
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start dataflow %s: data plane: %w", cfg.ID, err)
		}
	}
	scfg := supervisor.Config{
		Logger:  cfg.Logger.With("dataflow", cfg.ID),
		Clock:   cfg.Clock,
		OnEvent: cfg.OnEvent,
		OnLog:   cfg.OnLog,
		PIDDir:  filepath.Join(cfg.StateDir, "pids", cfg.ID),
	}
	scfg.Hooks.MayRestart = f.mayRestart
	if f.router != nil {
		scfg.Hooks.Prepare, scfg.Hooks.RequestStop, scfg.Hooks.Exited = f.router.PrepareNode, f.requestStop, f.router.NodeExited
	}
	f.sup = supervisor.New(scfg)
	for _, s := range specs {
		if err := f.sup.Start(s); err != nil {
			f.sup.Stop(0, true)
			f.Close()
			return nil, fmt.Errorf("start dataflow %s: %w", cfg.ID, err)
		}
	}
	return f, nil
}

// connectionReporter is a router that knows whether a node is connected
// to it; a node that never connected (a plain program) cannot receive
// STOP, so it gets SIGTERM at once instead of after the grace period.
type connectionReporter interface {
	Connected(nodeID string) bool
}

func (f *Flow) requestStop(node string) bool {
	if c, ok := f.router.(connectionReporter); ok && !c.Connected(node) {
		return false
	}
	f.router.RequestStop(node)
	return true
}

// sourceCloser is a router that knows when an output of a node on another
// machine closed for good.
type sourceCloser interface {
	SourceClosed(node, output string) bool
}

// mayRestart refuses to restart a node whose inputs are all closed: each
// comes from a node of this machine that has ended for good, or from a
// node elsewhere whose output the router saw close. A timer never closes;
// a node without inputs may always restart.
func (f *Flow) mayRestart(node string) (bool, string) {
	n := f.cfg.Dataflow.Node(node)
	if n == nil || len(n.Inputs) == 0 {
		return true, ""
	}
	final := map[string]bool{}
	local := map[string]bool{}
	for _, st := range f.sup.Nodes() {
		local[st.ID] = true
		final[st.ID] = st.Status == supervisor.Finished || st.Status == supervisor.Failed
	}
	sc, _ := f.router.(sourceCloser)
	for _, in := range n.Inputs {
		src := in.Source
		switch {
		case src.IsTimer():
			return true, ""
		case local[src.Node] && !final[src.Node]:
			return true, ""
		case !local[src.Node] && (sc == nil || !sc.SourceClosed(src.Node, src.Output)):
			return true, ""
		}
	}
	return false, "not restarting node because all inputs are already closed"
}

// nodeSpecs builds and checks the spec of every local node, reporting all
// problems together.
func nodeSpecs(cfg FlowConfig, local []string) ([]supervisor.NodeSpec, error) {
	byID := map[string]*config.Node{}
	for i := range cfg.Dataflow.Nodes {
		byID[cfg.Dataflow.Nodes[i].ID] = &cfg.Dataflow.Nodes[i]
	}
	base := supervisor.BaseEnv()
	dfEnv := supervisor.MapEnv(cfg.Dataflow.Env)
	var specs []supervisor.NodeSpec
	var errs []error
	for _, id := range local {
		n := byID[id]
		if n == nil {
			errs = append(errs, fmt.Errorf("node %s is not in the dataflow", id))
			continue
		}
		dir, err := nodeDir(cfg.WorkingDir, n, cfg.IgnoreDeploy)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", id, err))
			continue
		}
		path := n.Path
		if p, ok := cfg.Executables[id]; ok {
			path = p
		}
		if err := checkExecutable(dir, path); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", id, err))
			continue
		}
		ids := []string{"ADORA_DATAFLOW_ID=" + cfg.ID, "ADORA_NODE_ID=" + id}
		specs = append(specs, supervisor.NodeSpec{
			ID:      id,
			Path:    path,
			Args:    n.Args,
			Dir:     dir,
			Env:     supervisor.MergeEnv(base, dfEnv, supervisor.MapEnv(n.Env), ids),
			Restart: n.Restart,
			LogPath: LogPath(cfg.StateDir, cfg.ID, id),
		})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("start dataflow %s: %w", cfg.ID, errors.Join(errs...))
	}
	return specs, nil
}

// nodeDir is a node's working directory: base, or
// _unstable_deploy.working_dir (relative to base) unless ignoreDeploy. It
// must exist.
func nodeDir(base string, n *config.Node, ignoreDeploy bool) (string, error) {
	dir := base
	if wd := n.Deploy.WorkingDir; wd != "" && !ignoreDeploy {
		if filepath.IsAbs(wd) {
			dir = wd
		} else {
			dir = filepath.Join(base, wd)
		}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("working directory %s does not exist on this machine; create it or fix _unstable_deploy.working_dir", dir)
	}
	return dir, nil
}

func checkExecutable(dir, path string) error {
	p, err := supervisor.ResolvePath(dir, path)
	if err != nil {
		return err
	}
	st, err := os.Stat(p)
	switch {
	case err != nil:
		return fmt.Errorf("executable %s not found (path %q resolves against %s); build it first or fix the node's path", p, path, dir)
	case st.IsDir():
		return fmt.Errorf("executable %s is a directory", p)
	case st.Mode()&0o111 == 0:
		return fmt.Errorf("%s is not executable; chmod +x it", p)
	}
	return nil
}

// LogPath is where the log of one node of a dataflow is kept under a
// daemon's state directory.
func LogPath(stateDir, dataflowID, nodeID string) string {
	return filepath.Join(stateDir, "logs", dataflowID, nodeID+".jsonl")
}

// SocketDir is the private directory of the router's unix socket ("" without
// a router). The caller removes it with Close.
func (f *Flow) SocketDir() string { return f.socketDir }

// Local returns the ids of the nodes of this flow, sorted.
func (f *Flow) Local() []string {
	out := slices.Clone(f.local)
	slices.Sort(out)
	return out
}

// Stop stops every node (see supervisor.Supervisor.Stop); it does not wait.
func (f *Flow) Stop(grace time.Duration, force bool) { f.sup.Stop(grace, force) }

// Done is closed when every node has reached a final state.
func (f *Flow) Done() <-chan struct{} { return f.sup.Done() }

// Results returns the final outcome of every finished node.
func (f *Flow) Results() []supervisor.Result { return f.sup.Results() }

// Nodes returns a snapshot of every node.
func (f *Flow) Nodes() []supervisor.NodeState { return f.sup.Nodes() }

// Drops returns the router's per-node drop counters (nil without router).
func (f *Flow) Drops() map[string]uint64 {
	if f.router == nil {
		return nil
	}
	return f.router.Drops()
}

// inputTimeouter is a router that counts input_timeout trips.
type inputTimeouter interface {
	InputTimeouts() uint64
}

// InputTimeouts is how often an input_timeout closed an input of this
// flow (0 without a router that counts them).
func (f *Flow) InputTimeouts() uint64 {
	if t, ok := f.router.(inputTimeouter); ok {
		return t.InputTimeouts()
	}
	return 0
}

// Close kills what still runs, then closes the router.
func (f *Flow) Close() error {
	err := f.sup.Close()
	if f.router != nil {
		if rerr := f.router.Close(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if f.socketDir != "" {
		os.RemoveAll(f.socketDir)
	}
	return err
}

// Failure summarises failed nodes as "node: reason; ..." ("" if none).
func Failure(results []supervisor.Result) string {
	var s string
	for _, r := range results {
		if !r.Failed {
			continue
		}
		if s != "" {
			s += "; "
		}
		s += r.Node + ": " + r.Error
	}
	return s
}
