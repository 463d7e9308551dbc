package command

import (
	"maps"
	"slices"
	"strconv"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// clusterOp is the kind of change an adora cluster command carries out
// through the apply executor.
type clusterOp string

const (
	opInstall   clusterOp = "install"   // install and reconfigure daemons
	opUpgrade   clusterOp = "upgrade"   // replace the adora binary, wave by wave
	opUninstall clusterOp = "uninstall" // remove the daemons
)

// actions are the machine actions op carries out.
func (op clusterOp) actions() []plan.Action {
	switch op {
	case opInstall:
		return []plan.Action{plan.Install, plan.Reconfigure}
	case opUpgrade:
		return []plan.Action{plan.Upgrade}
	}
	return []plan.Action{plan.Uninstall}
}

// clusterPlans is what a cluster command carries out: Run, the plan
// restricted to op's changes on the machines of the cluster file, and
// Full, the plan it was cut from (what else each machine would need).
type clusterPlans struct {
	Run  *plan.Plan
	Full *plan.Plan
}

// computeClusterPlan plans op for the machines of d.Cluster. It is pure:
// prior and observed are not modified.
//
//   - install: the machines' install and reconfigure changes (daemons
//     missing, drifted or configured differently);
//   - upgrade: their upgrade changes; a daemon found installed that the
//     state does not record (installed by hand or by an older adora) is
//     taken as it was observed, so that its binary is compared;
//   - uninstall: every machine of the file, recorded or not, is removed.
//
// Dataflow changes and machines outside the file are never part of Run.
func computeClusterPlan(op clusterOp, prior *state.State, observed *state.Observed, d plan.Desired) (clusterPlans, error) {
	cl := d.Cluster
	ids := map[string]bool{}
	for _, m := range cl.Machines {
		ids[m.ID] = true
	}
	d.Dataflows, d.NodeBinaries = nil, nil
	switch op {
	case opUpgrade:
		prior = adoptObserved(prior, observed, d)
	case opUninstall:
		prior = adoptAll(prior, d)
		empty := *cl
		empty.Machines, empty.Dataflows = nil, nil
		d.Cluster = &empty
	}
	full, err := plan.Compute(prior, observed, d)
	if err != nil {
		return clusterPlans{}, err
	}
	keep := plan.OnlyActions(op.actions()...)
	run := plan.Filter(full, func(c plan.Change) bool { return plan.OnlyMachines(c) && ids[c.Name] && keep(c) })
	if op == opUninstall {
		// The executor finds how to reach each machine in the plan's
		// cluster: the file's, with its SSH settings.
		run.Cluster, full.Cluster = cl, cl
	}
	return clusterPlans{Run: run, Full: full}, nil
}

// adoptObserved returns prior plus a record, built from the observation,
// of each machine of the cluster the state does not know but whose daemon
// unit was found installed.
func adoptObserved(prior *state.State, observed *state.Observed, d plan.Desired) *state.State {
	st := cloneOrEmpty(prior)
	if observed == nil {
		return st
	}
	for _, m := range d.Cluster.Machines {
		obs, seen := observed.Machines[m.ID]
		if _, known := st.Machines[m.ID]; known || !seen || !obs.Reachable || !obs.UnitPresent || m.Local {
			continue
		}
		rec := machineRecord(m.ID, d)
		// The unit hash stands for the coordinator address: a unit that
		// differs plans a reconfiguration, not an upgrade.
		rec.CoordinatorAddr = desiredCoordinator(d.Cluster)
		rec.UnitHash, rec.BinarySHA256, rec.BinaryVersion = obs.UnitHash, obs.BinarySHA256, obs.BinaryVersion
		if obs.DaemonConnected && obs.DaemonLabels != nil {
			rec.Labels = maps.Clone(obs.DaemonLabels)
		}
		st.Machines[m.ID] = rec
	}
	return st
}

// adoptAll returns prior plus a record of every machine of the cluster the
// state does not know, so that uninstall removes it too.
func adoptAll(prior *state.State, d plan.Desired) *state.State {
	st := cloneOrEmpty(prior)
	for _, m := range d.Cluster.Machines {
		if _, known := st.Machines[m.ID]; !known {
			st.Machines[m.ID] = machineRecord(m.ID, d)
		}
	}
	return st
}

// machineRecord is the record of machine id as the cluster file
// configures it, with no binary or unit known.
func machineRecord(id string, d plan.Desired) state.Machine {
	i := slices.IndexFunc(d.Cluster.Machines, func(m config.Machine) bool { return m.ID == id })
	m := d.Cluster.Machines[i]
	mode := state.Systemd
	if m.Local {
		mode = state.AdHoc
	}
	return state.Machine{ID: m.ID, Host: m.Host, User: m.User, Port: m.Port, DaemonMode: mode, Labels: maps.Clone(m.Labels)}
}

// desiredCoordinator is the coordinator address daemons of c are given,
// as the plan records it (ADDR:PORT).
func desiredCoordinator(c *config.Cluster) string {
	port := c.Coordinator.Port
	if port == 0 {
		port = config.DefaultCoordinatorPort
	}
	return c.Coordinator.Addr + ":" + strconv.Itoa(port)
}

func cloneOrEmpty(st *state.State) *state.State {
	if st == nil {
		return &state.State{Machines: map[string]state.Machine{}, Dataflows: map[string]state.Dataflow{}}
	}
	c := st.Clone()
	if c.Machines == nil {
		c.Machines = map[string]state.Machine{}
	}
	return c
}

// fullChange is the change the full plan has for machine id.
func (cp clusterPlans) fullChange(id string) plan.Change {
	c, _ := cp.Full.Change(state.MachineAddr(id))
	return c
}
