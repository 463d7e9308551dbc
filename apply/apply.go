// Package apply carries out a plan: machine installs, rolling upgrades
// and dataflow starts and stops, in dependency order, recording the state
// after every completed step. It declares the small interfaces it needs
// (Installer, Upgrader, DaemonWaiter, Deployer) and is wired to the SSH
// layer and the coordinator client by command/.
//
// Order of phases (each phase finishes before the next starts; a failure
// ends the apply after its phase):
//
//	1 stop      dataflows removed from the configuration
//	2 install   new machines (and daemons found missing), wait for them
//	3 waves     upgrades/reconfigurations, wave by wave, each waiting for
//	            its daemons to come back with the new version
//	4 start     new dataflows; restarts (stop, then start) for changed ones
//	5 uninstall machines removed from the cluster, once nothing runs there
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// Installer installs and removes a machine's daemon. Install is also used
// to reconfigure (rewrite the unit and restart); it returns once the
// daemon process was started.
type Installer interface {
	Install(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error
	Uninstall(ctx context.Context, m config.Machine) error
}

// Upgrader replaces a machine's adora binary and restarts its daemon.
type Upgrader interface {
	Upgrade(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error
}

// DaemonWaiter waits until the daemon of a machine is connected to the
// coordinator and reports version.
type DaemonWaiter interface {
	WaitDaemon(ctx context.Context, machineID, version string) error
}

// Deployer starts and stops dataflows through the coordinator.
type Deployer interface {
	Start(ctx context.Context, name string, df *config.Dataflow, placements map[string]string) (uuid string, err error)
	Stop(ctx context.Context, name, uuid string) error
}

// Phase is one of the ordered phases of an apply.
type Phase string

const (
	PhaseStop      Phase = "stop"
	PhaseInstall   Phase = "install"
	PhaseRollout   Phase = "rollout"
	PhaseStart     Phase = "start"
	PhaseUninstall Phase = "uninstall"
)

// Status is the progress of one change.
type Status string

const (
	Started Status = "started"
	Running Status = "running" // still in progress, every ProgressInterval
	Done    Status = "done"
	Failed  Status = "failed"
)

// Event reports the progress of one change to the Progress callback.
type Event struct {
	Address string
	Action  plan.Action
	Phase   Phase
	Wave    int
	Status  Status
	Elapsed time.Duration // for Running, Done and Failed
	Err     error         // for Failed
}

// Executor runs plans. Its fields are set once before use; Apply may be
// called once at a time.
type Executor struct {
	Installer Installer
	Upgrader  Upgrader
	Waiter    DaemonWaiter
	Deployer  Deployer
	// Backend persists the state after every completed change.
	Backend state.Backend
	// Checker, when set, re-observes a machine just before each of its
	// changes and refuses the change when a precondition of the plan no
	// longer holds (the world moved during a long apply).
	Checker MachineObserver
	// Progress, when set, is called for every Event, from the goroutine
	// running the change; it must be safe for concurrent use.
	Progress func(Event)
	// Parallelism bounds concurrent installs, uninstalls, starts and stops
	// (default 10). Rolling waves are sized by the plan.
	Parallelism int
	// ProgressInterval is how often a Running event reports a change that
	// is still in progress (default 10 s).
	ProgressInterval time.Duration
	// Now is the clock for timings (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger

	mu sync.Mutex // guards st and persist calls
	st *state.State
}

// Result says how an apply ended.
type Result struct {
	Done        int // changes completed
	Interrupted bool
	// Remaining lists addresses not carried out (failed, skipped after an
	// interrupt or a failure).
	Remaining []string
}

// ErrPersist wraps a failure to store the state after a completed step;
// the state Apply returns then holds what the backend could not store.
var ErrPersist = errors.New("persist state")

// ErrInterrupted is returned when an interrupt stopped the apply between
// steps; the state records every completed step.
var ErrInterrupted = errors.New("apply interrupted: completed steps are recorded in the state; run adora plan to see the remaining work")

// Apply carries out p starting from st, which it updates and persists
// after every completed change. Closing interrupt asks to stop after the
// changes in progress (no new change starts); cancelling ctx aborts the
// changes in progress too. Apply returns the updated state.
func (e *Executor) Apply(ctx context.Context, interrupt <-chan struct{}, p *plan.Plan, st *state.State) (*state.State, Result, error) {
	e.st = st
	if e.st == nil {
		return nil, Result{}, errors.New("apply: no state to record into")
	}
	if e.st.Machines == nil {
		e.st.Machines = map[string]state.Machine{}
	}
	if e.st.Dataflows == nil {
		e.st.Dataflows = map[string]state.Dataflow{}
	}
	e.st.Coordinator = p.Coordinator
	var res Result
	for _, ph := range phases(p) {
		if err := e.runPhase(ctx, interrupt, p, ph, &res); err != nil {
			res.Remaining = append(res.Remaining, remaining(p, ph)...)
			return e.st, res, err
		}
	}
	return e.st, res, nil
}

// step is one phase, or one wave of the rollout phase: changes that run
// concurrently.
type step struct {
	phase   Phase
	wave    int
	changes []plan.Change
}

// phases splits p into its ordered steps. Node changes are carried out by
// their dataflow's change and do not appear.
func phases(p *plan.Plan) []step {
	by := map[Phase][]plan.Change{}
	waves := make([][]plan.Change, len(p.Waves))
	for _, c := range p.Changes {
		switch {
		case c.Kind == plan.KindMachine && c.Wave > 0:
			waves[c.Wave-1] = append(waves[c.Wave-1], c)
		case c.Kind == plan.KindMachine && c.Action == plan.Install:
			by[PhaseInstall] = append(by[PhaseInstall], c)
		case c.Kind == plan.KindMachine && c.Action == plan.Uninstall:
			by[PhaseUninstall] = append(by[PhaseUninstall], c)
		case c.Kind == plan.KindDataflow && c.Action == plan.Stop:
			by[PhaseStop] = append(by[PhaseStop], c)
		case c.Kind == plan.KindDataflow && (c.Action == plan.Start || c.Action == plan.Restart):
			by[PhaseStart] = append(by[PhaseStart], c)
		}
	}
	var out []step
	add := func(ph Phase) {
		if len(by[ph]) > 0 {
			out = append(out, step{phase: ph, changes: by[ph]})
		}
	}
	add(PhaseStop)
	add(PhaseInstall)
	for i, w := range waves {
		if len(w) > 0 {
			out = append(out, step{phase: PhaseRollout, wave: i + 1, changes: w})
		}
	}
	add(PhaseStart)
	add(PhaseUninstall)
	return out
}

// remaining lists the addresses of the steps after s.
func remaining(p *plan.Plan, s step) []string {
	var out []string
	after := false
	for _, ph := range phases(p) {
		if after {
			for _, c := range ph.changes {
				out = append(out, c.Address)
			}
		}
		if ph.phase == s.phase && ph.wave == s.wave {
			after = true
		}
	}
	return out
}

func (e *Executor) parallelism(s step) int {
	if s.phase == PhaseRollout {
		return len(s.changes)
	}
	if e.Parallelism > 0 {
		return e.Parallelism
	}
	return 10
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Executor) emit(ev Event) {
	if e.Progress != nil {
		e.Progress(ev)
	}
}

// runPhase runs one step's changes, at most parallelism at a time; no new
// change starts after interrupt closes. It returns ErrInterrupted or the
// joined errors of failed changes.
func (e *Executor) runPhase(ctx context.Context, interrupt <-chan struct{}, p *plan.Plan, s step, res *Result) error {
	sem := make(chan struct{}, e.parallelism(s))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	interrupted := false
	for _, c := range s.changes {
		select {
		case sem <- struct{}{}:
		case <-interrupt:
		case <-ctx.Done():
		}
		if isClosed(interrupt) || ctx.Err() != nil {
			mu.Lock()
			interrupted = true
			res.Remaining = append(res.Remaining, c.Address)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := e.run(ctx, p, s, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.Address, err))
				res.Remaining = append(res.Remaining, c.Address)
				return
			}
			res.Done++
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if interrupted {
		res.Interrupted = true
		if ctx.Err() != nil {
			return fmt.Errorf("apply aborted: %w", ctx.Err())
		}
		return ErrInterrupted
	}
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// run carries out one change, reporting its progress, and records it.
func (e *Executor) run(ctx context.Context, p *plan.Plan, s step, c plan.Change) error {
	start := e.now()
	e.emit(Event{Address: c.Address, Action: c.Action, Phase: s.phase, Wave: s.wave, Status: Started})
	stop := e.heartbeat(c, s, start)
	err := e.do(ctx, p, c)
	stop()
	ev := Event{Address: c.Address, Action: c.Action, Phase: s.phase, Wave: s.wave, Status: Done, Elapsed: e.now().Sub(start)}
	if err != nil {
		ev.Status, ev.Err = Failed, err
		e.logger().Warn("apply step failed", "address", c.Address, "action", c.Action, "err", err)
	}
	e.emit(ev)
	return err
}

// heartbeat emits a Running event every ProgressInterval until the
// returned stop is called; stop waits for the goroutine to end.
func (e *Executor) heartbeat(c plan.Change, s step, start time.Time) (stop func()) {
	interval := e.ProgressInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.emit(Event{Address: c.Address, Action: c.Action, Phase: s.phase, Wave: s.wave, Status: Running, Elapsed: e.now().Sub(start)})
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (e *Executor) do(ctx context.Context, p *plan.Plan, c plan.Change) error {
	switch c.Kind {
	case plan.KindMachine:
		return e.doMachine(ctx, p, c)
	case plan.KindDataflow:
		return e.doDataflow(ctx, p, c)
	}
	return fmt.Errorf("apply: no executor for %s changes", c.Kind)
}

func (e *Executor) doMachine(ctx context.Context, p *plan.Plan, c plan.Change) error {
	m, err := e.machine(p, c.Name)
	if err != nil {
		return err
	}
	if err := e.checkPreconditions(ctx, p, m, c.Address); err != nil {
		return err
	}
	switch c.Action {
	case plan.Uninstall:
		if err := need(e.Installer, "installer"); err != nil {
			return err
		}
		if err := e.Installer.Uninstall(ctx, m); err != nil {
			return err
		}
		return e.record(ctx, c, "")
	case plan.Install, plan.Reconfigure:
		if err := need(e.Installer, "installer"); err != nil {
			return err
		}
		if err := e.removeMoved(ctx, c); err != nil {
			return err
		}
		if err := e.Installer.Install(ctx, m, *c.MachineAfter, p.Binary); err != nil {
			return err
		}
	case plan.Upgrade:
		if err := need(e.Upgrader, "upgrader"); err != nil {
			return err
		}
		if err := e.Upgrader.Upgrade(ctx, m, *c.MachineAfter, p.Binary); err != nil {
			return err
		}
	default:
		return fmt.Errorf("apply: cannot %s a machine", c.Action)
	}
	if e.Waiter != nil {
		if err := e.Waiter.WaitDaemon(ctx, c.Name, c.MachineAfter.BinaryVersion); err != nil {
			return fmt.Errorf("wait for daemon %s %s: %w", c.Name, c.MachineAfter.BinaryVersion, err)
		}
	}
	return e.record(ctx, c, "")
}

func (e *Executor) doDataflow(ctx context.Context, p *plan.Plan, c plan.Change) error {
	if err := need(e.Deployer, "deployer"); err != nil {
		return err
	}
	e.mu.Lock()
	rec, running := e.st.Dataflows[c.Name]
	e.mu.Unlock()
	adopt := c.Action == plan.Restart && !running && c.DataflowAfter != nil && c.DataflowAfter.UUID != ""
	if adopt {
		rec.UUID = c.DataflowAfter.UUID // running, but not recorded
	}
	if c.Action == plan.Stop || (c.Action == plan.Restart && (running || adopt)) {
		if err := e.Deployer.Stop(ctx, c.Name, rec.UUID); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		if err := e.record(ctx, plan.Change{Kind: plan.KindDataflow, Name: c.Name, Action: plan.Stop}, ""); err != nil {
			return err
		}
		if c.Action == plan.Stop {
			return nil
		}
	}
	df, ok := p.Dataflows[c.Name]
	if !ok || c.DataflowAfter == nil {
		return fmt.Errorf("plan has no descriptor for dataflow %s", c.Name)
	}
	uuid, err := e.Deployer.Start(ctx, c.Name, df, c.DataflowAfter.Placements)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return e.record(ctx, c, uuid)
}

// PreconditionError is a planned change refused because a live fact it
// relied on changed since the plan was made.
type PreconditionError struct {
	Violations []plan.Violation
}

func (e *PreconditionError) Error() string {
	msgs := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		msgs[i] = v.String()
	}
	return "not carried out, the machine changed since the plan was made: " + strings.Join(msgs, "; ") + "; run adora plan again"
}

// checkPreconditions re-observes m when the plan holds preconditions for
// addr and fails when one no longer holds.
func (e *Executor) checkPreconditions(ctx context.Context, p *plan.Plan, m config.Machine, addr string) error {
	if e.Checker == nil {
		return nil
	}
	// Only facts the machine itself shows are re-checked here (whether
	// its daemon is connected needs the coordinator).
	sub := &plan.Plan{}
	for _, pc := range p.Preconditions {
		if pc.Address == addr && (pc.Field == "reachable" || pc.Field == "binary_sha256") {
			sub.Preconditions = append(sub.Preconditions, pc)
		}
	}
	if len(sub.Preconditions) == 0 {
		return nil
	}
	obs, err := e.Checker.ObserveMachine(ctx, m)
	if err != nil {
		obs = state.MachineObservation{ID: m.ID, Error: err.Error()}
	}
	now := &state.Observed{Machines: map[string]state.MachineObservation{m.ID: obs}}
	if v := plan.CheckPreconditions(sub, now); len(v) > 0 {
		return &PreconditionError{Violations: v}
	}
	return nil
}

// removeMoved uninstalls the recorded daemon of a machine that moves to
// another host or daemon mode, before the new one is installed, so that
// two daemons never share a machine ID.
func (e *Executor) removeMoved(ctx context.Context, c plan.Change) error {
	e.mu.Lock()
	rec, ok := e.st.Machines[c.Name]
	e.mu.Unlock()
	if !ok || (rec.Host == c.MachineAfter.Host && rec.DaemonMode == c.MachineAfter.DaemonMode) {
		return nil
	}
	old := config.Machine{ID: rec.ID, Host: rec.Host, User: rec.User, Port: rec.Port, Local: rec.DaemonMode == state.AdHoc}
	if err := e.Installer.Uninstall(ctx, old); err != nil {
		return fmt.Errorf("uninstall the daemon on the old host %s: %w", rec.Host, err)
	}
	return nil
}

// machine returns the connection details of a machine: from the plan's
// cluster, or from the state for machines that left it.
func (e *Executor) machine(p *plan.Plan, id string) (config.Machine, error) {
	if p.Cluster != nil {
		for _, m := range p.Cluster.Machines {
			if m.ID == id {
				return m, nil
			}
		}
	}
	e.mu.Lock()
	rec, ok := e.st.Machines[id]
	e.mu.Unlock()
	if !ok {
		return config.Machine{}, fmt.Errorf("machine %s is neither in the cluster nor in the state", id)
	}
	return config.Machine{ID: rec.ID, Host: rec.Host, User: rec.User, Port: rec.Port, Local: rec.DaemonMode == state.AdHoc}, nil
}

// record applies c to the state and persists it.
func (e *Executor) record(ctx context.Context, c plan.Change, uuid string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	plan.Record(e.st, c, uuid)
	if e.Backend == nil {
		return nil
	}
	// Persist even when ctx was cancelled: the step happened.
	if err := e.Backend.Write(context.WithoutCancel(ctx), e.st); err != nil {
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	return nil
}

func need(v any, what string) error {
	if v == nil {
		return fmt.Errorf("apply: no %s configured", what)
	}
	return nil
}
