package command

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
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

Options:
  -binary FILE      the new adora binary (default: this executable)
  -version V        the version FILE reports (default: asked by running
                    "FILE version"; needed when FILE is for another
                    architecture)
  -timeout D        how long to wait for each daemon (default 30s)
  -rollback=false   leave a failed machine on the new binary (default: put
                    its previous binary back, kept as ` + remote.PrevBinaryPath + `,
                    and restart it)
`)
}

func (c *ClusterUpgradeCommand) Run(args []string) int {
	fs := clusterFlagSet(c.Meta.Ui, "cluster upgrade", c.Help)
	binary := fs.String("binary", "", "the new adora binary")
	want := fs.String("version", "", "the version the binary reports")
	timeout := fs.Duration("timeout", 30*time.Second, "wait for each daemon")
	rollback := fs.Bool("rollback", true, "put the previous binary back on a failed machine")
	if !clusterParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora cluster upgrade needs one argument: the cluster file")
		return 1
	}
	cl, ok := clusterLoad(c.Meta.Ui, fs.Arg(0))
	if !ok {
		return 1
	}
	fleet := clusterFleet(cl, "", clusterLogger())
	bin, err := fleet.BinaryFile(*binary)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	ctx, cancel := clusterSignalContext()
	defer cancel()
	if *want == "" {
		if *want, err = upgradeVersion(ctx, fleet, *binary, bin); err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
	}
	tok, _ := auth.Resolve("")
	opts := clusterCoordinatorOptions(cl, tok)
	if _, err := client.Health(ctx, opts); err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("cannot reach the coordinator at %s:%d to watch the rollout: %v", opts.Addr, opts.Port, err))
		return 1
	}
	u := clusterUpgrader{ui: c.Meta, fleet: fleet, bin: bin, version: *want, opts: opts, timeout: *timeout, rollback: *rollback}
	// With the control API (token), a reconnect is recognised by a
	// connection newer than the restart, so a registration left over from
	// the old process never counts; without it, by the version alone.
	if ctl, err := client.Dial(ctx, opts); err == nil {
		defer ctl.Close()
		u.ctl = ctl
	}
	for i, m := range cl.Machines {
		if err := u.machine(ctx, m); err != nil {
			rest := make([]string, 0, len(cl.Machines)-i-1)
			for _, r := range cl.Machines[i+1:] {
				rest = append(rest, r.ID)
			}
			msg := fmt.Sprintf("Rollout stopped at %s: %v", m.ID, err)
			if len(rest) > 0 {
				msg += fmt.Sprintf("\nNot upgraded (untouched): %s", strings.Join(rest, ", "))
			}
			c.Meta.Ui.Error(msg)
			c.Meta.Ui.Output(fmt.Sprintf("%d/%d succeeded.", i, len(cl.Machines)))
			return 1
		}
	}
	c.Meta.Ui.Output(fmt.Sprintf("%d/%d succeeded.", len(cl.Machines), len(cl.Machines)))
	return 0
}

type clusterUpgrader struct {
	ui       *Meta
	fleet    *remote.Fleet
	bin      remote.File
	version  string
	opts     client.Options
	ctl      *client.Client // nil: watch through /api/health
	timeout  time.Duration
	rollback bool
}

// machine upgrades one machine, printing the guide's step lines. When the
// daemon does not come back on the new binary, the previous binary is put
// back (unless -rollback=false) and the error says so.
func (u *clusterUpgrader) machine(ctx context.Context, m config.Machine) error {
	ui := u.ui.Ui
	ui.Output(fmt.Sprintf("Upgrading %s (%s)...", m.ID, u.fleet.Target(m)))
	mc, err := u.fleet.Dial(ctx, m)
	if err != nil {
		ui.Error("  SCP binary... FAILED")
		return err
	}
	defer mc.Close()
	prev := ""
	if have, err := clusterHealthDaemons(ctx, u.opts); err == nil {
		prev = have[m.ID].Version
	}
	if u.rollback {
		if err := remote.BackupBinary(ctx, mc); err != nil {
			ui.Error("  SCP binary... FAILED")
			return err
		}
	}
	changed, err := remote.PushBinary(ctx, mc, u.bin)
	if err != nil {
		ui.Error("  SCP binary... FAILED")
		return err
	}
	if changed {
		ui.Output("  SCP binary... OK")
	} else {
		ui.Output("  SCP binary... OK (unchanged)")
	}
	since := u.coordinatorNow(ctx)
	if !changed && prev == u.version {
		ui.Output("  Restart service... skipped (already running " + u.version + ")")
		since = time.Time{} // no restart: the current connection counts
	} else {
		if err := remote.RestartDaemon(ctx, mc, m.ID); err != nil {
			ui.Error("  Restart service... FAILED")
			return err
		}
		ui.Output("  Restart service... OK")
	}
	start := time.Now()
	if u.waitReconnect(ctx, m.ID, u.version, since) {
		ui.Output(fmt.Sprintf("  Waiting for reconnect... OK (%.1fs)", time.Since(start).Seconds()))
		return nil
	}
	ui.Error("  Waiting for reconnect... FAILED")
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err = fmt.Errorf("daemon did not reconnect with version %s within %s (see journalctl -u %s on the machine)", u.version, u.timeout, remote.UnitName(m.ID))
	if !u.rollback || !changed {
		return err
	}
	return fmt.Errorf("%w; %s", err, u.rollBack(ctx, mc, m.ID, prev))
}

// rollBack restores the previous binary of a failed machine and waits for
// its daemon; it returns what happened, for the error.
func (u *clusterUpgrader) rollBack(ctx context.Context, mc *remote.Machine, id, prev string) string {
	ui := u.ui.Ui
	since := u.coordinatorNow(ctx)
	if err := remote.RollbackBinary(ctx, mc, id); err != nil {
		ui.Error("  Roll back... FAILED")
		return "the rollback failed too: " + err.Error()
	}
	if prev == "" || !u.waitReconnect(ctx, id, prev, since) {
		ui.Error("  Roll back... FAILED (the previous binary is back, its daemon did not reconnect)")
		return "the previous binary is back but its daemon did not reconnect"
	}
	ui.Output(fmt.Sprintf("  Roll back... OK (%s again)", prev))
	return "rolled back to " + prev
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
