package plan

import (
	"maps"

	"github.com/adora-rs/adora/state"
)

// Record updates st as if c had been carried out: the change's after
// record replaces the resource's, or the resource is removed. Apply calls
// it after each completed step; node changes are recorded by their
// dataflow's change. uuid, when not empty, is the run ID the coordinator
// gave a started dataflow.
func Record(st *state.State, c Change, uuid string) {
	switch c.Kind {
	case KindMachine:
		if c.Action == Uninstall {
			delete(st.Machines, c.Name)
			return
		}
		if c.MachineAfter != nil {
			m := *c.MachineAfter
			m.Labels = maps.Clone(m.Labels)
			st.Machines[c.Name] = m
		}
	case KindDataflow:
		if c.Action == Stop {
			delete(st.Dataflows, c.Name)
			return
		}
		if c.DataflowAfter != nil {
			d := *c.DataflowAfter
			d.Placements = maps.Clone(d.Placements)
			if uuid != "" {
				d.UUID = uuid
			}
			st.Dataflows[c.Name] = d
		}
	}
}
