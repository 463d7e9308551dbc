package command

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
)

// ClusterDownCommand tears the cluster down.
type ClusterDownCommand struct{ Meta *Meta }

func (c *ClusterDownCommand) Synopsis() string {
	return "Destroy all dataflows and daemons and stop the coordinator"
}

func (c *ClusterDownCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora cluster down [options] [PATH]

  Ask the coordinator to stop every dataflow and make every connected
  daemon exit, then the coordinator itself. With the cluster file PATH, the
  coordinator address comes from it and, over SSH, every machine's ad hoc
  daemon is stopped and its systemd service (if installed) is stopped too
  (it stays enabled and starts again at boot). Exits 1 when the coordinator
  could not be reached (without PATH) or a machine failed.

Options:
  -coordinator-addr ADDR   coordinator address (default: PATH's, else localhost)
  -coordinator-port PORT   coordinator port (default: PATH's, else 6013)
  -parallelism N           machines handled at once (default 10)
`)
}

func (c *ClusterDownCommand) Run(args []string) int {
	fs := clusterFlagSet(c.Meta.Ui, "cluster down", c.Help)
	var cf clusterFlags
	cf.register(fs)
	addr := fs.String("coordinator-addr", "", "coordinator address")
	port := fs.Int("coordinator-port", 0, "coordinator port")
	if !clusterParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() > 1 {
		c.Meta.Ui.Error("adora cluster down takes at most one argument: the cluster file")
		return 1
	}
	ui := c.Meta.Ui
	var cl *config.Cluster
	if fs.NArg() == 1 {
		var ok bool
		if cl, ok = clusterLoad(ui, fs.Arg(0)); !ok {
			return 1
		}
	}
	tok, err := auth.Resolve("")
	if err != nil {
		ui.Error(fmt.Sprintf("coordinator token: %v", err))
		return 1
	}
	opts := client.Options{Addr: "localhost", Port: 6013, Token: tok}
	if cl != nil {
		opts = clusterCoordinatorOptions(cl, tok)
	}
	if *addr != "" {
		opts.Addr = *addr
	}
	if *port != 0 {
		opts.Port = *port
	}
	ctx, cancel := clusterSignalContext()
	defer cancel()
	code := 0
	if err := clusterDestroy(ctx, opts); err != nil {
		ui.Error(err.Error())
		if cl == nil {
			return 1
		}
		code = 1
	} else {
		ui.Output("Coordinator and daemons destroyed.")
	}
	if cl == nil {
		return code
	}
	fleet := clusterFleet(cl, "", clusterLogger())
	failed := forEachClusterMachine(ctx, ui, cl.Machines, cf.parallelism,
		func(m config.Machine) string { return fmt.Sprintf("Stopping daemon on %s (%s)", m.ID, fleet.Target(m)) },
		func(ctx context.Context, m config.Machine) clusterResult {
			mc, err := fleet.Dial(ctx, m)
			if err != nil {
				return clusterResult{err: err}
			}
			defer mc.Close()
			if _, err := remote.StopAdhocDaemon(ctx, mc, m.ID); err != nil {
				return clusterResult{err: err}
			}
			return clusterResult{err: remote.StopDaemon(ctx, mc, m.ID)}
		})
	if clusterFailed(ui, failed) {
		code = 1
	}
	return code
}

// clusterDestroyTimeout bounds the whole Destroy request.
const clusterDestroyTimeout = time.Minute

// clusterDestroy sends Destroy and then makes sure a coordinator that "cluster
// up" started here (pid file in ADORA_HOME) is gone.
func clusterDestroy(ctx context.Context, opts client.Options) error {
	hostport := net.JoinHostPort(opts.Addr, strconv.Itoa(opts.Port))
	// Stopping the dataflows takes up to their grace period (10 s by
	// default), then each daemon has up to 10 s to answer.
	dctx, cancel := context.WithTimeout(ctx, clusterDestroyTimeout)
	defer cancel()
	cl, err := client.Dial(dctx, opts)
	if err != nil {
		return fmt.Errorf("destroy the cluster at %s: %w", hostport, err)
	}
	err = cl.Destroy(dctx)
	cl.Close()
	if err != nil {
		return fmt.Errorf("destroy the cluster at %s: %w", hostport, err)
	}
	stopClusterCoordinator()
	return nil
}

// stopClusterCoordinator waits up to 5 s for a coordinator started here by
// "cluster up" or "adora up" (pid file in ADORA_HOME/up) to exit after
// Destroy, then sends it SIGTERM. It only signals an adora process.
func stopClusterCoordinator() {
	home, err := paths.Home()
	if err != nil {
		return
	}
	b, err := os.ReadFile(pidFile(home, "coordinator"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	for i := 0; i < 50 && isAdora(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if isAdora(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}
