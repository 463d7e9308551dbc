package command

import (
	"context"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// The wiring of the apply executor that adora apply and the adora cluster
// commands share, so that every change to the fleet goes through one code
// path: the same machine operations (fleetOps), the same state backend and
// lock, the state written after every completed step.

// fleetExecutor is the executor that carries out plans on s's fleet:
// machines and dataflows through s.ops, the state written to s.backend
// after every step, each machine's preconditions re-checked just before
// its change. Callers may replace the machine roles (the cluster commands
// print their own sub-steps) before running it.
func fleetExecutor(s *deploySession, progress func(apply.Event)) *apply.Executor {
	return &apply.Executor{
		Installer: s.ops, Upgrader: s.ops, Waiter: s.ops, Deployer: s.ops, Backend: s.backend,
		Checker: s.ops, Logger: s.ops.log, Progress: progress,
	}
}

// fleetDesired is the desired fleet of s, deploying bin with rolling waves
// of parallelism machines, as adora plan computes it.
func fleetDesired(s *deploySession, bin plan.Binary, parallelism int, targets, excludes []string) plan.Desired {
	return plan.Desired{
		Cluster: s.cluster, Dataflows: s.dataflows, Binary: bin, Placer: plan.DefaultPlacer,
		Parallelism: parallelism, Targets: targets, Excludes: excludes, AdoraVersion: version.Version,
		UnitHashes: s.ops.unitHashes(s.cluster), RunAs: runAsUsers(s.cluster), NodeBinaries: nodeBinaries(s.dataflows),
	}
}

// openFleetSession opens the state of the cluster file path for operation
// (the file -state names, else adora.state next to path), takes its lock
// and wires the fleet operations of c. The caller unlocks the session.
func openFleetSession(ctx context.Context, f *deployFlags, path string, c *config.Cluster, operation string) (*deploySession, error) {
	s := &deploySession{cluster: c}
	if err := s.open(ctx, f, path, operation); err != nil {
		return nil, err
	}
	return s, nil
}

// priorOrNew is the state to apply onto: s's, or a new one, stamped with
// this adora's version.
func priorOrNew(s *deploySession) *state.State {
	st := s.prior
	if st == nil {
		st = state.New(version.Version)
	}
	st.AdoraVersion = version.Version
	return st
}
