package command

import (
	"context"
	"fmt"
	"strings"

	"github.com/adora-rs/adora/config"
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

Options:
  -parallelism N    machines handled at once (default 10)
`)
}

func (c *ClusterUninstallCommand) Run(args []string) int {
	fs := clusterFlagSet(c.Meta.Ui, "cluster uninstall", c.Help)
	var cf clusterFlags
	cf.register(fs)
	if !clusterParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora cluster uninstall needs one argument: the cluster file")
		return 1
	}
	cl, ok := clusterLoad(c.Meta.Ui, fs.Arg(0))
	if !ok {
		return 1
	}
	fleet := clusterFleet(cl, "", clusterLogger())
	ctx, cancel := clusterSignalContext()
	defer cancel()
	failed := forEachClusterMachine(ctx, c.Meta.Ui, cl.Machines, cf.parallelism,
		func(m config.Machine) string {
			return fmt.Sprintf("Uninstalling %s from %s", strings.TrimSuffix(remote.UnitName(m.ID), ".service"), fleet.Target(m))
		},
		func(ctx context.Context, m config.Machine) clusterResult {
			return clusterResult{err: fleet.Uninstall(ctx, m)}
		})
	return clusterSummary(c.Meta.Ui, len(cl.Machines), failed)
}
