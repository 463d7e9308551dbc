package remote

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// Fleet performs the machine operations of one cluster. It implements the
// interfaces the apply executor declares (Install, Uninstall, Upgrade,
// ObserveMachine), so "adora apply" and the "adora cluster" commands
// change machines through the same code. Each call opens its own session;
// a Fleet is safe for concurrent use.
type Fleet struct {
	Cluster *config.Cluster
	Dialer  *Dialer
	// Token is the coordinator's auth token written to each daemon's
	// environment file ("" = auth off).
	Token string
	// Binary is the local adora binary installed on machines when a call
	// does not name one (default: this executable).
	Binary string
	Logger *slog.Logger
}

// Spec is the DaemonSpec of machine m in the fleet's cluster. Its RunAs
// is m's run_as, else m's SSH user (Target: the machine's user, the
// cluster's ssh.user, then the current user).
func (f *Fleet) Spec(m config.Machine) DaemonSpec {
	port := f.Cluster.Coordinator.Port
	if port == 0 {
		port = config.DefaultCoordinatorPort
	}
	return DaemonSpec{MachineID: m.ID, CoordinatorAddr: f.Cluster.Coordinator.Addr,
		CoordinatorPort: port, Labels: m.Labels, Token: f.Token, RunAs: RunAsOf(f.Cluster, m)}
}

// RunAsOf is the user machine m's systemd daemon runs as: its run_as, else
// its SSH user as TargetOf resolves it.
func RunAsOf(c *config.Cluster, m config.Machine) string {
	if m.RunAs != "" {
		return m.RunAs
	}
	return TargetOf(c, m).User
}

// Target resolves m with the cluster's ssh defaults.
func (f *Fleet) Target(m config.Machine) Target { return TargetOf(f.Cluster, m) }

// Dial opens a session to m; the caller closes it.
func (f *Fleet) Dial(ctx context.Context, m config.Machine) (*Machine, error) {
	return f.Dialer.Dial(ctx, f.Target(m))
}

// BinaryFile opens the adora binary to install: path, else f.Binary, else
// this executable.
func (f *Fleet) BinaryFile(path string) (File, error) {
	if path == "" {
		path = f.Binary
	}
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return File{}, fmt.Errorf("locate the adora binary: %w", err)
		}
		path = exe
	}
	bf, err := LocalFile(path, 0o755)
	if err != nil {
		return File{}, fmt.Errorf("adora binary: %w", err)
	}
	return bf, nil
}

func (f *Fleet) with(ctx context.Context, m config.Machine, fn func(*Machine) error) error {
	mc, err := f.Dial(ctx, m)
	if err != nil {
		return err
	}
	defer mc.Close()
	return fn(mc)
}

// Install installs or reconfigures m's systemd daemon (InstallDaemon)
// with the binary bin.Path (checked against bin.SHA256 when set).
func (f *Fleet) Install(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error {
	_, err := f.InstallReport(ctx, m, after, bin)
	return err
}

// InstallReport is Install that also says what changed on the machine
// (nothing, for a daemon already installed as desired).
func (f *Fleet) InstallReport(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) (InstallResult, error) {
	bf, err := f.planBinary(bin)
	if err != nil {
		return InstallResult{}, err
	}
	spec := f.Spec(m)
	if after.Labels != nil {
		spec.Labels = after.Labels
	}
	var res InstallResult
	err = f.with(ctx, m, func(mc *Machine) error {
		var err error
		res, err = InstallDaemon(ctx, mc, spec, bf)
		return err
	})
	return res, err
}

// Uninstall removes m's systemd daemon and stops an ad hoc one.
func (f *Fleet) Uninstall(ctx context.Context, m config.Machine) error {
	return f.with(ctx, m, func(mc *Machine) error {
		if _, err := StopAdhocDaemon(ctx, mc, m.ID); err != nil {
			return err
		}
		return UninstallDaemon(ctx, mc, m.ID)
	})
}

// Upgrade replaces m's binary and restarts its daemon (UpgradeBinary); the
// caller waits for the daemon to come back with the new version.
func (f *Fleet) Upgrade(ctx context.Context, m config.Machine, after state.Machine, bin plan.Binary) error {
	bf, err := f.planBinary(bin)
	if err != nil {
		return err
	}
	return f.with(ctx, m, func(mc *Machine) error { return UpgradeBinary(ctx, mc, m.ID, bf) })
}

func (f *Fleet) planBinary(bin plan.Binary) (File, error) {
	bf, err := f.BinaryFile(bin.Path)
	if err != nil {
		return File{}, err
	}
	if bin.SHA256 != "" && !strings.EqualFold(bin.SHA256, bf.SHA256) {
		return File{}, fmt.Errorf("adora binary %s changed since the plan was made (sha256 %s, plan has %s): run adora plan again", bin.Path, bf.SHA256, bin.SHA256)
	}
	return bf, nil
}

// ObserveMachine looks at m over SSH (or locally). An unreachable machine
// is a fact (Reachable false, Error set), not an error; the error is for
// ctx ending.
func (f *Fleet) ObserveMachine(ctx context.Context, m config.Machine) (state.MachineObservation, error) {
	obs := state.MachineObservation{ID: m.ID}
	err := f.with(ctx, m, func(mc *Machine) error {
		o, err := ObserveMachine(ctx, mc, m.ID)
		if err != nil {
			return err
		}
		obs.Reachable = true
		obs.UnitPresent, obs.UnitActive, obs.UnitEnabled = o.UnitPresent, o.Active(), o.Enabled()
		obs.UnitHash, obs.BinarySHA256 = o.UnitSHA256, o.BinarySHA256
		obs.BinaryVersion = ParseVersion(o.BinaryVer)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return obs, ctx.Err()
		}
		obs.Error = err.Error()
	}
	return obs, nil
}

// ParseVersion extracts X from "adora X (protocol N, os/arch)", the output
// of "adora version"; "" when the line has another shape.
func ParseVersion(line string) string {
	f := strings.Fields(line)
	if len(f) >= 2 && f[0] == "adora" {
		return f[1]
	}
	return ""
}
