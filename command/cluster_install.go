package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/state"
)

// ClusterInstallCommand installs the daemon as a systemd service on every
// machine of a cluster.yml.
type ClusterInstallCommand struct{ Meta *Meta }

func (c *ClusterInstallCommand) Synopsis() string {
	return "Install the daemon as a systemd service on every machine"
}

func (c *ClusterInstallCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora cluster install [options] PATH

  For every machine of the cluster file PATH, over SSH (sudo -n): install
  the adora binary as ` + remote.BinaryPath + ` (temp file, checksum and
  architecture verified, atomic rename), write the environment file
  /etc/adora/daemon-<id>.env (mode 0600, carries the coordinator token), write
  the unit adora-daemon-<id>.service and enable --now it. Machines already
  installed with the same content are left running. Exits 1 when any
  machine failed.

  This is adora apply restricted to the install and reconfigure changes of
  the machines of PATH: the machines are observed first, only those whose
  daemon is missing, drifted or configured differently are touched, and
  the state (adora.state next to PATH, locked meanwhile) records each
  machine as soon as it is done. A machine that runs another adora binary
  is left on it: adora cluster upgrade replaces binaries.

Options:
  -binary FILE      adora binary to install (default: this executable)
  -version V        the version FILE reports (default: asked by running
                    "FILE version"; needed when FILE is for another
                    architecture)
  -parallelism N    machines handled at once (default 10)
  -state PATH       state file (default adora.state next to PATH)
  -lock-timeout D   wait up to D for the state lock (default 0: fail)
`)
}

func (c *ClusterInstallCommand) Run(args []string) int {
	ui := &cli.ConcurrentUi{Ui: c.Meta.Ui}
	fs := clusterFlagSet(ui, "cluster install", c.Help)
	var cf clusterFlags
	cf.register(fs)
	var df deployFlags
	registerClusterState(fs, &df)
	binary := fs.String("binary", "", "adora binary to install")
	want := fs.String("version", "", "the version the binary reports")
	r, ok := openClusterFleet(ui, fs, args, &df)
	if !ok {
		return 1
	}
	defer r.close()
	cl, ctx, interrupt, s := r.cl, r.ctx, r.interrupt, r.s
	bin, err := clusterBinary(ctx, s.ops, *binary, *want)
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	observed, err := s.observe(ctx)
	if err != nil {
		ui.Error(fmt.Sprintf("observe the machines: %v", err))
		return 1
	}
	cp, err := computeClusterPlan(opInstall, s.prior, observed, fleetDesired(s, bin, cf.parallelism, nil, nil))
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	lines := newClusterLines(ui, cl.Machines, func(m config.Machine) string {
		return fmt.Sprintf("Installing %s on %s", strings.TrimSuffix(remote.UnitName(m.ID), ".service"), s.ops.Target(m))
	})
	for _, m := range cl.Machines {
		if !inRun(cp.Run, m.ID) {
			lines.set(m.ID, installedAlready(cp.fullChange(m.ID), observed.Machines[m.ID]))
		}
	}
	inst := &clusterInstaller{ops: s.ops}
	lines.note = inst.note
	e := fleetExecutor(s, lines.event)
	e.Installer, e.Upgrader, e.Waiter, e.Deployer = inst, nil, nil, nil
	e.Parallelism = cf.parallelism
	res := applyClusterPlan(ctx, interrupt, ui, s, e, cp.Run)
	return clusterSummary(ui, len(cl.Machines), lines.finish(notCarriedOut(res)))
}

// installedAlready is the result of a machine install leaves alone: it is
// installed as desired, or only its binary differs (an upgrade's job), or
// it could not be reached to know.
func installedAlready(c plan.Change, obs state.MachineObservation) clusterResult {
	if obs.ID != "" && !obs.Reachable {
		return clusterResult{err: errors.New(obs.Error)}
	}
	if c.Action == plan.Upgrade {
		return clusterResult{note: "(installed; it runs another adora binary: adora cluster upgrade replaces it)"}
	}
	return clusterResult{note: "(unchanged)"}
}

// clusterInstaller is the executor's Installer for cluster install: the
// fleet's install, remembering the machines where nothing changed.
type clusterInstaller struct {
	ops *fleetOps

	mu        sync.Mutex
	unchanged map[string]bool
}

func (i *clusterInstaller) Install(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error {
	if after.DaemonMode == state.AdHoc {
		return i.ops.Install(ctx, m, after, bin)
	}
	res, err := i.ops.InstallReport(ctx, m, after, bin)
	if err == nil && !res.Changed() {
		i.mu.Lock()
		if i.unchanged == nil {
			i.unchanged = map[string]bool{}
		}
		i.unchanged[m.ID] = true
		i.mu.Unlock()
	}
	return err
}

func (i *clusterInstaller) Uninstall(ctx context.Context, m config.Machine) error {
	return i.ops.Uninstall(ctx, m)
}

func (i *clusterInstaller) note(id string) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.unchanged[id] {
		return "(unchanged)"
	}
	return ""
}

var _ apply.Installer = (*clusterInstaller)(nil)
