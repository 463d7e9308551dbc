package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
)

// ClusterUpCommand starts the coordinator here and a daemon on every
// machine over SSH.
type ClusterUpCommand struct{ Meta *Meta }

func (c *ClusterUpCommand) Synopsis() string {
	return "Start the coordinator here and a daemon on every machine"
}

func (c *ClusterUpCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora cluster up [options] PATH

  Bring up the cluster of the cluster file PATH:
    1. start the coordinator on this machine, bound to coordinator.addr and
       coordinator.port, detached (log and pid in ADORA_HOME), unless one
       already answers there;
    2. on every machine, over SSH: copy this adora binary to
       ~/.adora/bin/adora, write the coordinator token to
       ~/.adora/daemon-<id>/daemon.env (mode 0600, never on a command line)
       and start "adora daemon --machine-id <id> ..." detached, unless a
       daemon of that machine already runs (ad hoc or systemd);
    3. wait until every started daemon is connected.
  Running it again is safe. Exits 1 when any machine failed or did not
  connect in time, naming it.

Options:
  -timeout D        how long to wait for the daemons (default 30s)
  -parallelism N    machines handled at once (default 10)
`)
}

func (c *ClusterUpCommand) Run(args []string) int {
	fs := clusterFlagSet(c.Meta.Ui, "cluster up", c.Help)
	var cf clusterFlags
	cf.register(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "wait for the daemons")
	cl, ok := clusterParseFile(c.Meta.Ui, fs, args)
	if !ok {
		return 1
	}
	ui := c.Meta.Ui
	// Created in ADORA_HOME/token when none exists yet, so that a
	// coordinator started later (which reuses that file) and the daemons
	// agree.
	tok, err := deployToken()
	if err != nil {
		ui.Error(fmt.Sprintf("coordinator token: %v", err))
		return 1
	}
	ctx, cancel := clusterSignalContext()
	defer cancel()
	opts := clusterCoordinatorOptions(cl, tok)
	if err := ensureClusterCoordinator(ctx, c.Meta, opts); err != nil {
		ui.Error(err.Error())
		return 1
	}
	fleet := clusterFleet(cl, tok, clusterLogger())
	bin, err := fleet.BinaryFile("")
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	exe, _ := os.Executable()
	for _, w := range adhocRunAsWarnings(fleet, cl.Machines) {
		ui.Warn(w)
	}
	failed := forEachClusterMachine(ctx, ui, cl.Machines, cf.parallelism,
		func(m config.Machine) string { return fmt.Sprintf("Starting daemon on %s (%s)", m.ID, fleet.Target(m)) },
		func(ctx context.Context, m config.Machine) clusterResult {
			return clusterStartDaemon(ctx, fleet, m, bin, exe)
		})
	var ids []string
	for _, m := range cl.Machines {
		if !containsID(failed, m.ID) {
			ids = append(ids, m.ID)
		}
	}
	code := 0
	if missing := waitClusterDaemons(ctx, opts, ids, "", *timeout); len(missing) > 0 {
		ui.Error(fmt.Sprintf("Timed out after %s waiting for %d daemon(s) to connect: %s", *timeout, len(missing), strings.Join(missing, ", ")))
		code = 1
	} else if len(failed) == 0 {
		ui.Output(fmt.Sprintf("All %d daemons connected.", len(ids)))
		warnVersionSkew(ctx, c.Meta, opts, ids)
	} else {
		ui.Output(fmt.Sprintf("%d/%d daemons connected.", len(ids), len(cl.Machines)))
	}
	if clusterFailed(ui, failed) {
		code = 1
	}
	return code
}

func clusterStartDaemon(ctx context.Context, fleet *remote.Fleet, m config.Machine, bin remote.File, exe string) clusterResult {
	mc, err := fleet.Dial(ctx, m)
	if err != nil {
		return clusterResult{err: err}
	}
	defer mc.Close()
	spec := fleet.Spec(m)
	if m.Local {
		spec.Binary = exe
	}
	res, err := remote.StartAdhocDaemon(ctx, mc, spec, bin)
	switch {
	case err != nil:
		return clusterResult{err: err}
	case res.Status == remote.AdhocAlreadyRunning:
		return clusterResult{note: fmt.Sprintf("(already running, pid %d)", res.PID)}
	case res.Status == remote.AdhocSystemd:
		return clusterResult{note: "(systemd service " + remote.UnitName(m.ID) + " is active)"}
	}
	return clusterResult{}
}

// adhocRunAsWarnings says, for each remote machine whose run_as is not
// its SSH user, that the ad hoc daemon cluster up starts runs as the SSH
// user: run_as is for the systemd daemon. (A local machine's run_as is a
// warning of the cluster file already.)
func adhocRunAsWarnings(fleet *remote.Fleet, machines []config.Machine) []string {
	var out []string
	for _, m := range machines {
		if m.Local || m.RunAs == "" {
			continue
		}
		if ssh := fleet.Target(m).User; ssh != m.RunAs {
			out = append(out, fmt.Sprintf("machine %s: run_as %s is for the systemd daemon (adora cluster install, adora apply); the daemon cluster up starts runs as the SSH user %s", m.ID, m.RunAs, ssh))
		}
	}
	return out
}

func containsID(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// clusterCoordinatorStartTimeout bounds the wait for a freshly started
// coordinator to answer.
const clusterCoordinatorStartTimeout = 10 * time.Second

// ensureClusterCoordinator starts "adora coordinator" detached on this machine
// unless one already answers at opts.
func ensureClusterCoordinator(ctx context.Context, m *Meta, opts client.Options) error {
	hostport := net.JoinHostPort(opts.Addr, strconv.Itoa(opts.Port))
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := client.Health(hctx, opts)
	cancel()
	if err == nil {
		m.Ui.Output(fmt.Sprintf("Coordinator already running at %s.", hostport))
		return nil
	}
	m.Ui.Output(fmt.Sprintf("Starting coordinator on %s...", hostport))
	pid, logPath, err := spawnClusterCoordinator(opts)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(clusterCoordinatorStartTimeout)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := client.Health(hctx, opts)
		cancel()
		if err == nil {
			return nil
		}
		if childExited(pid) {
			return fmt.Errorf("the coordinator exited during start-up; see %s", logPath)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the coordinator did not answer at %s within %s (last error: %v); see %s", hostport, clusterCoordinatorStartTimeout, err, logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// spawnClusterCoordinator starts "adora coordinator --auth" bound to
// opts.Addr the way "adora up" does (detached, its own session, log in
// ADORA_HOME/logs, pid in ADORA_HOME/up). Auth is on: the cluster spans a
// network; the token is ADORA_HOME/token, which the daemons receive.
func spawnClusterCoordinator(opts client.Options) (int, string, error) {
	home, err := paths.EnsureHome()
	if err != nil {
		return 0, "", err
	}
	args := []string{"coordinator", "--interface", opts.Addr, "--port", strconv.Itoa(opts.Port), "--auth", "--quiet"}
	pid, err := startDetached(home, "coordinator", args)
	return pid, logFile(home, "coordinator"), err
}

// childExited reaps pid if it is our child that has ended.
func childExited(pid int) bool {
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	return got == pid || errors.Is(err, syscall.ECHILD) && syscall.Kill(pid, 0) != nil
}

// warnVersionSkew warns about daemons that kept running an adora other
// than this CLI's (an earlier "cluster up" with another binary).
func warnVersionSkew(ctx context.Context, m *Meta, opts client.Options, ids []string) {
	have, err := clusterHealthDaemons(ctx, opts)
	if err != nil {
		return
	}
	for _, id := range ids {
		if d, ok := have[id]; ok && d.Version != clusterCLIVersion() {
			m.Ui.Warn(fmt.Sprintf("Warning: the daemon on %s runs adora %s, this CLI is %s: restart it with adora cluster down PATH, then up.", id, d.Version, clusterCLIVersion()))
		}
	}
}
