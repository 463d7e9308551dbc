package command

import (
	"fmt"
	"strings"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/remote"
)

// ClusterUninstallCommand removes the daemons' systemd services.
type ClusterUninstallCommand struct{ Meta *Meta }

func (c *ClusterUninstallCommand) Synopsis() string {
	return "Remove the daemon's systemd service from every machine"
}

func (c *ClusterUninstallCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora cluster uninstall [options] PATH

  For every machine of the cluster file PATH, over SSH (sudo -n): stop and
  disable adora-daemon-<id>, remove its unit and environment files and
  reload systemd; an ad hoc daemon started by "cluster up" is stopped too.
  The adora binary and /var/lib/adora/<id> (logs, node files) are kept.
  Exits 1 when any machine failed.

  This is adora apply restricted to the uninstall changes of the machines
  of PATH (recorded in the state or not); the state (adora.state next to
  PATH, locked meanwhile) forgets each machine as soon as it is removed.

Options:
  -parallelism N    machines handled at once (default 10)
  -state PATH       state file (default adora.state next to PATH)
  -lock-timeout D   wait up to D for the state lock (default 0: fail)
`)
}

func (c *ClusterUninstallCommand) Run(args []string) int {
	ui := &cli.ConcurrentUi{Ui: c.Meta.Ui}
	fs := clusterFlagSet(ui, "cluster uninstall", c.Help)
	var cf clusterFlags
	cf.register(fs)
	var df deployFlags
	registerClusterState(fs, &df)
	r, ok := openClusterFleet(ui, fs, args, &df)
	if !ok {
		return 1
	}
	defer r.close()
	cl, ctx, interrupt, s := r.cl, r.ctx, r.interrupt, r.s
	// Every machine of the file is uninstalled: nothing to observe first.
	cp, err := computeClusterPlan(opUninstall, s.prior, nil, fleetDesired(s, plan.Binary{}, 1, nil, nil))
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	lines := newClusterLines(ui, cl.Machines, func(m config.Machine) string {
		return fmt.Sprintf("Uninstalling %s from %s", strings.TrimSuffix(remote.UnitName(m.ID), ".service"), s.ops.Target(m))
	})
	e := fleetExecutor(s, lines.event)
	e.Upgrader, e.Waiter, e.Deployer = nil, nil, nil
	e.Parallelism = cf.parallelism
	res := applyClusterPlan(ctx, interrupt, ui, s, e, cp.Run)
	return clusterSummary(ui, len(cl.Machines), lines.finish(notCarriedOut(res)))
}
