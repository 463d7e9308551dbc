package command

import (
	"context"
	"fmt"
	"strings"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/remote"
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

Options:
  -binary FILE      adora binary to install (default: this executable)
  -parallelism N    machines handled at once (default 10)
`)
}

func (c *ClusterInstallCommand) Run(args []string) int {
	fs := clusterFlagSet(c.Meta.Ui, "cluster install", c.Help)
	var cf clusterFlags
	cf.register(fs)
	binary := fs.String("binary", "", "adora binary to install")
	if !clusterParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora cluster install needs one argument: the cluster file")
		return 1
	}
	cl, ok := clusterLoad(c.Meta.Ui, fs.Arg(0))
	if !ok {
		return 1
	}
	tok, err := clusterToken()
	if err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("coordinator token: %v", err))
		return 1
	}
	fleet := clusterFleet(cl, tok, clusterLogger())
	bin, err := fleet.BinaryFile(*binary)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	ctx, cancel := clusterSignalContext()
	defer cancel()
	failed := forEachClusterMachine(ctx, c.Meta.Ui, cl.Machines, cf.parallelism,
		func(m config.Machine) string {
			return fmt.Sprintf("Installing %s on %s", strings.TrimSuffix(remote.UnitName(m.ID), ".service"), fleet.Target(m))
		},
		func(ctx context.Context, m config.Machine) clusterResult {
			mc, err := fleet.Dial(ctx, m)
			if err != nil {
				return clusterResult{err: err}
			}
			defer mc.Close()
			res, err := remote.InstallDaemon(ctx, mc, fleet.Spec(m), bin)
			if err == nil && !res.Changed() {
				return clusterResult{note: "(unchanged)"}
			}
			return clusterResult{err: err}
		})
	return clusterSummary(c.Meta.Ui, len(cl.Machines), failed)
}
