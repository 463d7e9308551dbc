package apply

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/state"
)

// MachineObserver looks at one machine (over SSH, or locally): unit,
// binary checksum and version.
type MachineObserver interface {
	ObserveMachine(ctx context.Context, m config.Machine) (state.MachineObservation, error)
}

// ClusterObserver asks the coordinator which daemons are connected and
// which dataflows run where.
type ClusterObserver interface {
	ObserveCluster(ctx context.Context) (ClusterView, error)
}

// ClusterView is the coordinator's view of the fleet.
type ClusterView struct {
	Daemons   map[string]DaemonView                // by machine ID
	Dataflows map[string]state.DataflowObservation // by dataflow name
}

// DaemonView is one connected daemon.
type DaemonView struct {
	Version string
	Labels  map[string]string
}

// Refresh observes every machine of the cluster and of the state (at most
// parallelism at a time, default 10) and the coordinator, and returns what
// it saw. Unreachable machines and an unreachable coordinator are facts of
// the observation, not errors; Refresh fails only when ctx ends.
func Refresh(ctx context.Context, mo MachineObserver, co ClusterObserver, cluster *config.Cluster, prior *state.State, parallelism int) (*state.Observed, error) {
	if parallelism < 1 {
		parallelism = 10
	}
	machines := refreshTargets(cluster, prior)
	obs := &state.Observed{Machines: map[string]state.MachineObservation{}, Dataflows: map[string]state.DataflowObservation{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelism)
	var view ClusterView
	var viewErr error
	if co != nil {
		wg.Go(func() { view, viewErr = co.ObserveCluster(ctx) })
	}
	for _, m := range machines {
		if mo == nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			o, err := mo.ObserveMachine(ctx, m)
			o.ID = m.ID
			if err != nil {
				o = state.MachineObservation{ID: m.ID, Error: err.Error()}
			}
			mu.Lock()
			obs.Machines[m.ID] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mergeView(obs, view, viewErr, co != nil)
	return obs, nil
}

func mergeView(obs *state.Observed, view ClusterView, err error, asked bool) {
	switch {
	case !asked:
		obs.CoordinatorError = "not asked"
		return
	case err != nil:
		obs.CoordinatorError = err.Error()
		return
	}
	obs.CoordinatorReachable = true
	for name, d := range view.Dataflows {
		d.Name = name
		obs.Dataflows[name] = d
	}
	for id, d := range view.Daemons {
		o, ok := obs.Machines[id]
		if !ok {
			o = state.MachineObservation{ID: id}
		}
		o.DaemonConnected = true
		o.DaemonVersion = d.Version
		o.DaemonLabels = maps.Clone(d.Labels)
		obs.Machines[id] = o
	}
}

// refreshTargets is the union of the cluster's machines and the state's,
// sorted by ID.
func refreshTargets(cluster *config.Cluster, prior *state.State) []config.Machine {
	byID := map[string]config.Machine{}
	if prior != nil {
		for id, m := range prior.Machines {
			byID[id] = config.Machine{ID: id, Host: m.Host, User: m.User, Port: m.Port, Local: m.DaemonMode == state.AdHoc}
		}
	}
	if cluster != nil {
		for _, m := range cluster.Machines {
			byID[m.ID] = m
		}
	}
	out := make([]config.Machine, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, byID[id])
	}
	return out
}
