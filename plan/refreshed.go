package plan

import (
	"maps"

	"github.com/adora-rs/adora/state"
)

// Refreshed returns a copy of prior that takes in what observed saw: the
// binary, unit and labels of reachable machines, and the run ID and
// placements of dataflows the coordinator runs; dataflows it does not run
// are dropped (a plan then starts them again). Unreachable machines, and
// dataflows when the coordinator was not asked, keep their record. It is
// what "adora refresh -update" stores; planning against it shows no drift.
func Refreshed(prior *state.State, observed *state.Observed) *state.State {
	st := prior.Clone()
	if st == nil || observed == nil {
		return st
	}
	for id, m := range st.Machines {
		if obs, ok := observed.Machines[id]; ok && obs.Reachable {
			st.Machines[id] = refreshMachine(m, obs)
		}
	}
	if !observed.CoordinatorReachable {
		return st
	}
	for name, d := range st.Dataflows {
		obs, running := observed.Dataflows[name]
		if !running {
			delete(st.Dataflows, name)
			continue
		}
		d.UUID = obs.UUID
		d.Placements = maps.Clone(obs.Placements)
		st.Dataflows[name] = d
	}
	return st
}

func refreshMachine(m state.Machine, obs state.MachineObservation) state.Machine {
	if obs.BinarySHA256 != "" {
		m.BinarySHA256, m.BinaryVersion = obs.BinarySHA256, obs.BinaryVersion
	}
	if obs.UnitHash != "" {
		m.UnitHash = obs.UnitHash
	}
	if obs.DaemonConnected && obs.DaemonLabels != nil {
		m.Labels = maps.Clone(obs.DaemonLabels)
	}
	return m
}
