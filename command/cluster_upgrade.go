package command

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/state"
)

// ClusterUpgradeCommand replaces the adora binary machine by machine.
type ClusterUpgradeCommand struct{ Meta *Meta }

func (c *ClusterUpgradeCommand) Synopsis() string {
	return "Rolling upgrade of the adora binary, one machine at a time"
}

func (c *ClusterUpgradeCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora cluster upgrade [options] PATH

  Upgrade the daemons of the cluster file PATH one machine at a time: copy
  the binary to a temporary path, verify its checksum and that it is an
  executable for the machine's architecture, rename it over
  ` + remote.BinaryPath + `, restart adora-daemon-<id>, and wait until the
  daemon is connected to the coordinator again reporting the new version
  (polling every 500 ms). The rollout stops at the first machine that fails,
  which gets its previous binary back; the machines after it are left
  untouched. Exits 1 when a machine failed. Daemons must be installed with
  "adora cluster install".

  This is adora apply restricted to the upgrade changes of the machines of
  PATH: the machines are observed first; those already on the binary are
  neither copied to nor restarted; the rollout goes in the plan's order
  (by machine id), one machine per wave; the state (adora.state next to
  PATH, locked meanwhile) records each machine once its daemon is back.

Options:
  -binary FILE      the new adora binary (default: this executable)
  -version V        the version FILE reports (default: asked by running
                    "FILE version"; needed when FILE is for another
                    architecture)
  -timeout D        how long to wait for each daemon (default 30s)
  -rollback=false   leave a failed machine on the new binary (default: put
                    its previous binary back, kept as ` + remote.PrevBinaryPath + `,
                    and restart it)
  -state PATH       state file (default adora.state next to PATH)
  -lock-timeout D   wait up to D for the state lock (default 0: fail)
`)
}

func (c *ClusterUpgradeCommand) Run(args []string) int {
	ui := &cli.ConcurrentUi{Ui: c.Meta.Ui}
	fs := clusterFlagSet(ui, "cluster upgrade", c.Help)
	var df deployFlags
	registerClusterState(fs, &df)
	binary := fs.String("binary", "", "the new adora binary")
	want := fs.String("version", "", "the version the binary reports")
	timeout := fs.Duration("timeout", 30*time.Second, "wait for each daemon")
	rollback := fs.Bool("rollback", true, "put the previous binary back on a failed machine")
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
	opts := s.ops.coord
	if _, err := client.Health(ctx, opts); err != nil {
		ui.Error(fmt.Sprintf("cannot reach the coordinator at %s:%d to watch the rollout: %v", opts.Addr, opts.Port, err))
		return 1
	}
	observed, err := s.observe(ctx)
	if err != nil {
		ui.Error(fmt.Sprintf("observe the machines: %v", err))
		return 1
	}
	cp, err := computeClusterPlan(opUpgrade, s.prior, observed, fleetDesired(s, bin, 1, nil, nil))
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	if err := upgradable(cp, cl, observed); err != nil {
		ui.Error(err.Error())
		return 1
	}
	lines := &upgradeLines{ui: ui, target: func(id string) string { return s.ops.Target(*cl.Machine(id)).String() }}
	already := 0
	for _, m := range sortedMachines(cl) {
		if !inRun(cp.Run, m.ID) {
			lines.unchanged(m.ID, cp.fullChange(m.ID), bin.Version)
			already++
		}
	}
	u := &clusterUpgrader{lines: lines, ops: s.ops, opts: opts, timeout: *timeout, rollback: *rollback}
	// With the control API (token), a reconnect is recognised by a
	// connection newer than the restart, so a registration left over from
	// the old process never counts; without it, by the version alone.
	if ctl, err := client.Dial(ctx, opts); err == nil {
		defer ctl.Close()
		u.ctl = ctl
	}
	e := fleetExecutor(s, lines.event)
	e.Installer, e.Upgrader, e.Waiter, e.Deployer = nil, u, u, nil
	res := applyClusterPlan(ctx, interrupt, ui, s, e, cp.Run)
	return lines.summary(already+res.Done, len(cl.Machines), res)
}

// upgradable refuses an upgrade of machines whose daemon is not installed
// (or that could not be looked at to know), before anything changes.
func upgradable(cp clusterPlans, cl *config.Cluster, observed *state.Observed) error {
	var problems []string
	for _, m := range cl.Machines {
		if cp.fullChange(m.ID).Action != plan.Install {
			continue
		}
		why := "adora-daemon-" + m.ID + " is not installed"
		if obs := observed.Machines[m.ID]; !obs.Reachable {
			why = "unreachable, so whether adora-daemon-" + m.ID + " is installed is unknown: " + obs.Error
		}
		problems = append(problems, m.ID+": "+why)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("cannot upgrade; nothing was changed:\n  %s\nInstall the daemons first (adora cluster install), or bring the machines back", strings.Join(problems, "\n  "))
}

// sortedMachines is c's machines in address order, the order of the
// rollout.
func sortedMachines(c *config.Cluster) []config.Machine {
	ms := slices.Clone(c.Machines)
	slices.SortFunc(ms, func(a, b config.Machine) int { return strings.Compare(a.ID, b.ID) })
	return ms
}

// clusterUpgrader is the executor's Upgrader and DaemonWaiter for cluster
// upgrade: the guide's steps, each printed (SCP binary, Restart service,
// Waiting for reconnect), the previous binary kept and put back when the
// daemon does not come back.
type clusterUpgrader struct {
	lines    *upgradeLines
	ops      *fleetOps
	opts     client.Options
	ctl      *client.Client // nil: watch through /api/health
	timeout  time.Duration
	rollback bool

	mu      sync.Mutex
	started map[string]upgradeStart // by machine id, from Upgrade to WaitDaemon
}

// upgradeStart is what WaitDaemon needs of a machine's upgrade.
type upgradeStart struct {
	m       config.Machine
	prev    string    // version connected before the restart
	since   time.Time // coordinator clock at the restart (zero: no restart)
	changed bool      // the binary was replaced
}

// Upgrade copies the binary and restarts the daemon.
func (u *clusterUpgrader) Upgrade(ctx context.Context, m config.Machine, after state.Machine, b plan.Binary) error {
	bin, err := u.ops.BinaryFile(b.Path)
	if err == nil && b.SHA256 != "" && bin.SHA256 != b.SHA256 {
		err = fmt.Errorf("adora binary %s changed since the plan was made (sha256 %s, plan has %s)", b.Path, bin.SHA256, b.SHA256)
	}
	if err != nil {
		u.lines.step("SCP binary", "FAILED", true)
		return err
	}
	mc, err := u.ops.Dial(ctx, m)
	if err != nil {
		u.lines.step("SCP binary", "FAILED", true)
		return err
	}
	defer mc.Close()
	st := upgradeStart{m: m}
	if have, err := clusterHealthDaemons(ctx, u.opts); err == nil {
		st.prev = have[m.ID].Version
	}
	if u.rollback {
		if err := remote.BackupBinary(ctx, mc); err != nil {
			u.lines.step("SCP binary", "FAILED", true)
			return err
		}
	}
	if st.changed, err = remote.PushBinary(ctx, mc, bin); err != nil {
		u.lines.step("SCP binary", "FAILED", true)
		return err
	}
	if st.changed {
		u.lines.step("SCP binary", "OK", false)
	} else {
		u.lines.step("SCP binary", "OK (unchanged)", false)
	}
	st.since = u.coordinatorNow(ctx)
	if !st.changed && st.prev == after.BinaryVersion {
		u.lines.step("Restart service", "skipped (already running "+after.BinaryVersion+")", false)
		st.since = time.Time{} // no restart: the current connection counts
	} else {
		if err := remote.RestartDaemon(ctx, mc, m.ID); err != nil {
			u.lines.step("Restart service", "FAILED", true)
			return err
		}
		u.lines.step("Restart service", "OK", false)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.started == nil {
		u.started = map[string]upgradeStart{}
	}
	u.started[m.ID] = st
	return nil
}

// WaitDaemon waits for the daemon's reconnect with version; when it does
// not come, the previous binary is put back (unless -rollback=false) and
// the error says so.
func (u *clusterUpgrader) WaitDaemon(ctx context.Context, id, version string) error {
	u.mu.Lock()
	st, ok := u.started[id]
	u.mu.Unlock()
	if !ok {
		return fmt.Errorf("machine %s was not upgraded", id)
	}
	start := time.Now()
	if u.waitReconnect(ctx, id, version, st.since) {
		u.lines.step("Waiting for reconnect", fmt.Sprintf("OK (%.1fs)", time.Since(start).Seconds()), false)
		return nil
	}
	u.lines.step("Waiting for reconnect", "FAILED", true)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err := fmt.Errorf("daemon did not reconnect with version %s within %s (see journalctl -u %s on the machine)", version, u.timeout, remote.UnitName(id))
	if !u.rollback || !st.changed {
		return err
	}
	return fmt.Errorf("%w; %s", err, u.rollBack(ctx, st))
}

// rollBack restores the previous binary of a failed machine and waits for
// its daemon; it returns what happened, for the error.
func (u *clusterUpgrader) rollBack(ctx context.Context, st upgradeStart) string {
	mc, err := u.ops.Dial(ctx, st.m)
	if err != nil {
		u.lines.step("Roll back", "FAILED", true)
		return "the rollback failed too: " + err.Error()
	}
	defer mc.Close()
	id := st.m.ID
	since := u.coordinatorNow(ctx)
	if err := remote.RollbackBinary(ctx, mc, id); err != nil {
		u.lines.step("Roll back", "FAILED", true)
		return "the rollback failed too: " + err.Error()
	}
	if st.prev == "" || !u.waitReconnect(ctx, id, st.prev, since) {
		u.lines.step("Roll back", "FAILED (the previous binary is back, its daemon did not reconnect)", true)
		return "the previous binary is back but its daemon did not reconnect"
	}
	u.lines.step("Roll back", "OK ("+st.prev+" again)", false)
	return "rolled back to " + st.prev
}

// coordinatorNow is the coordinator's clock (zero without the control API).
func (u *clusterUpgrader) coordinatorNow(ctx context.Context) time.Time {
	if u.ctl == nil {
		return time.Time{}
	}
	rep, err := u.ctl.Daemons(ctx)
	if err != nil {
		return time.Time{}
	}
	return rep.Now
}

// waitReconnect polls every 500 ms until machine id's daemon is connected
// with version (and, when since is set, connected after since).
func (u *clusterUpgrader) waitReconnect(ctx context.Context, id, version string, since time.Time) bool {
	if u.ctl == nil || since.IsZero() {
		return len(waitClusterDaemons(ctx, u.opts, []string{id}, version, u.timeout)) == 0
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	t := time.NewTicker(clusterPollInterval)
	defer t.Stop()
	for {
		if rep, err := u.ctl.Daemons(ctx); err == nil {
			for _, d := range rep.Daemons {
				if d.MachineID == id && d.Connected && d.Version == version && d.ConnectedAt.After(since) {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// upgradeVersion runs "BIN version" to learn the version daemons will
// report. It refuses binaries for another architecture (use -version).
func upgradeVersion(ctx context.Context, fleet *remote.Fleet, path string, bin remote.File) (string, error) {
	arch, err := remote.FileArch(bin)
	if err != nil {
		return "", fmt.Errorf("adora binary: %w", err)
	}
	if !remote.ArchMatches(arch, unameOfGOARCH(runtime.GOARCH)) {
		return "", fmt.Errorf("the binary is built for %s and cannot run here to report its version: pass -version", arch)
	}
	if path == "" {
		path = fleet.Binary
	}
	if path == "" {
		return clusterCLIVersion(), nil
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, path, "version").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("ask %s for its version: %v (pass -version to skip)", path, err)
	}
	v := remote.ParseVersion(strings.TrimSpace(string(out)))
	if v == "" {
		return "", fmt.Errorf("%s version printed %q, not \"adora VERSION ...\" (pass -version)", path, strings.TrimSpace(string(out)))
	}
	return v, nil
}

func unameOfGOARCH(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i386"
	case "arm":
		return "armv7l"
	default:
		return goarch
	}
}
