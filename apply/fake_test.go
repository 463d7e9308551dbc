package apply

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// world is an in-memory fleet implementing every interface apply needs.
// It records each call, in order, as "verb target".
type world struct {
	mu        sync.Mutex
	calls     []string
	machines  map[string]*liveMachine
	dataflows map[string]state.DataflowObservation
	uuids     int
	// hook, when set, runs at the start of each call; a non-nil error
	// fails the call.
	hook func(call string) error
	// active counts concurrent machine changes (not observations);
	// maxActive is its peak.
	active, maxActive int
	unreachable       map[string]bool
	coordinatorDown   bool
}

type liveMachine struct {
	installed, running bool
	sha, version       string
	labels             map[string]string
}

func newWorld() *world {
	return &world{machines: map[string]*liveMachine{}, dataflows: map[string]state.DataflowObservation{}, unreachable: map[string]bool{}}
}

func (w *world) call(c string) error {
	w.mu.Lock()
	w.calls = append(w.calls, c)
	hook := w.hook
	w.mu.Unlock()
	if hook != nil {
		return hook(c)
	}
	return nil
}

func (w *world) enter() func() {
	w.mu.Lock()
	w.active++
	w.maxActive = max(w.maxActive, w.active)
	w.mu.Unlock()
	return func() { w.mu.Lock(); w.active--; w.mu.Unlock() }
}

func (w *world) Install(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error {
	defer w.enter()()
	if err := w.call("install " + m.ID); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.machines[m.ID] = &liveMachine{installed: true, running: true, sha: bin.SHA256, version: bin.Version, labels: maps.Clone(after.Labels)}
	return nil
}

func (w *world) Uninstall(ctx context.Context, m config.Machine) error {
	defer w.enter()()
	if err := w.call("uninstall " + m.ID + "@" + m.Host); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.machines, m.ID)
	return nil
}

func (w *world) Upgrade(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error {
	defer w.enter()()
	if err := w.call("upgrade " + m.ID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	lm, ok := w.machines[m.ID]
	if !ok {
		return fmt.Errorf("machine %s has no daemon", m.ID)
	}
	lm.sha, lm.version, lm.running = bin.SHA256, bin.Version, true
	return nil
}

func (w *world) WaitDaemon(ctx context.Context, id, version string) error {
	if err := w.call("wait " + id + " " + version); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if lm, ok := w.machines[id]; !ok || lm.version != version || !lm.running {
		return fmt.Errorf("daemon %s did not come back at %s", id, version)
	}
	return nil
}

func (w *world) Start(ctx context.Context, name string, df *config.Dataflow, placements map[string]string) (string, error) {
	if err := w.call("start " + name); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for node, m := range placements {
		if lm, ok := w.machines[m]; !ok || !lm.running {
			return "", fmt.Errorf("node %s: machine %s has no running daemon", node, m)
		}
	}
	w.uuids++
	uuid := fmt.Sprintf("uuid-%d", w.uuids)
	w.dataflows[name] = state.DataflowObservation{Name: name, UUID: uuid, Placements: maps.Clone(placements)}
	return uuid, nil
}

func (w *world) Stop(ctx context.Context, name, uuid string) error {
	if err := w.call("stop " + name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.dataflows, name)
	return nil
}

func (w *world) ObserveMachine(ctx context.Context, m config.Machine) (state.MachineObservation, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unreachable[m.ID] {
		return state.MachineObservation{}, fmt.Errorf("dial %s: connection refused", m.Host)
	}
	o := state.MachineObservation{Reachable: true}
	if lm, ok := w.machines[m.ID]; ok {
		o.UnitPresent, o.UnitEnabled, o.UnitActive = lm.installed, lm.installed, lm.running
		o.BinarySHA256, o.BinaryVersion = lm.sha, lm.version
	}
	return o, nil
}

func (w *world) ObserveCluster(ctx context.Context) (ClusterView, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.coordinatorDown {
		return ClusterView{}, fmt.Errorf("dial coordinator: connection refused")
	}
	v := ClusterView{Daemons: map[string]DaemonView{}, Dataflows: maps.Clone(w.dataflows)}
	for id, lm := range w.machines {
		if lm.running {
			v.Daemons[id] = DaemonView{Version: lm.version, Labels: maps.Clone(lm.labels)}
		}
	}
	return v, nil
}

func (w *world) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

func (w *world) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = nil
	w.maxActive = 0
}
