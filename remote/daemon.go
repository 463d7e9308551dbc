package remote

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/adora-rs/adora/config"
)

// InstallResult says what InstallDaemon changed.
type InstallResult struct {
	BinaryChanged bool
	UnitChanged   bool
	EnvChanged    bool
	// Restarted is true when a running daemon was restarted to pick up a
	// change; false when it was started fresh or left alone.
	Restarted bool
}

// Changed reports whether anything on the machine changed.
func (r InstallResult) Changed() bool { return r.BinaryChanged || r.UnitChanged || r.EnvChanged }

// InstallDaemon installs s's daemon as the systemd service UnitName(id),
// running as s.RunAs: it checks that this user exists (changing nothing
// when it does not), then installs the binary at BinaryPath (checksum- and
// architecture-verified, atomic), the daemon's home DaemonHome(id) owned
// by s.RunAs, the environment file EnvPath(id) (root, 0600, carrying the
// token: systemd reads it before dropping privileges, so neither the
// daemon's user nor its nodes can read it back from disk), the unit file,
// then daemon-reload and enable --now. A daemon already running is
// restarted only when something changed. An ad hoc daemon of the same id
// (from "cluster up") is stopped first so that only one runs. Idempotent.
func InstallDaemon(ctx context.Context, m *Machine, s DaemonSpec, bin File) (InstallResult, error) {
	var res InstallResult
	if s.Binary != "" && s.Binary != BinaryPath {
		return res, fmt.Errorf("install daemon %s: the systemd daemon runs %s", s.MachineID, BinaryPath)
	}
	unit, err := RenderUnit(s)
	if err != nil {
		return res, err
	}
	env, err := RenderEnv(s, DaemonHome(s.MachineID))
	if err != nil {
		return res, err
	}
	if err := CheckRunAs(ctx, m, s.MachineID, s.RunAs); err != nil {
		return res, err
	}
	if err := CheckArch(ctx, m, bin); err != nil {
		return res, err
	}
	if _, err := m.Run(ctx, m.Sudo(daemonDirsCommand(s))); err != nil {
		return res, fmt.Errorf("install daemon %s: create directories: %w", s.MachineID, err)
	}
	if res.BinaryChanged, err = m.InstallFile(ctx, bin, BinaryPath); err != nil {
		return res, err
	}
	if res.EnvChanged, err = m.InstallFile(ctx, BytesFile(env, 0o600), EnvPath(s.MachineID)); err != nil {
		return res, err
	}
	if res.UnitChanged, err = m.InstallFile(ctx, BytesFile(unit, 0o644), UnitPath(s.MachineID)); err != nil {
		return res, err
	}
	if _, err := StopAdhocDaemon(ctx, m, s.MachineID); err != nil {
		return res, err
	}
	name := UnitName(s.MachineID)
	cmd := "systemctl daemon-reload && systemctl enable --now " + Quote(name)
	if res.Changed() {
		// restart is start for a stopped unit.
		cmd = "systemctl daemon-reload && systemctl enable " + Quote(name) + " && systemctl restart " + Quote(name)
		res.Restarted = true
	}
	if _, err := m.Run(ctx, m.Sudo(cmd)); err != nil {
		return res, fmt.Errorf("install daemon %s: start %s: %w", s.MachineID, name, err)
	}
	return res, nil
}

// MissingUserError is a run_as user that has no account on the machine.
type MissingUserError struct {
	Machine, User string
}

func (e *MissingUserError) Error() string {
	return fmt.Sprintf("machine %s: user %s given by run_as does not exist; create it or set run_as", e.Machine, e.User)
}

// CheckRunAs fails with a *MissingUserError when user has no account on m
// (id -u USER). It changes nothing on the machine.
func CheckRunAs(ctx context.Context, m *Machine, machineID, user string) error {
	if err := config.ValidUserName(user); err != nil {
		return fmt.Errorf("run_as of machine %s: %w", machineID, err)
	}
	out, err := m.Run(ctx, Command("id", "-u", user))
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 1 {
		// id's answer for "no such user".
		return &MissingUserError{Machine: machineID, User: user}
	}
	if err != nil {
		return fmt.Errorf("machine %s: look up run_as user %s: %w", machineID, user, err)
	}
	if _, err := strconv.ParseUint(strings.TrimSpace(out), 10, 32); err != nil {
		return fmt.Errorf("machine %s: look up run_as user %s: unexpected output of id -u: %q", machineID, user, firstLine(out))
	}
	return nil
}

// daemonDirsCommand creates the directories of s's daemon and gives the
// daemon's home, with whatever an earlier installation left there, to
// s.RunAs and its primary group (chown -R does not follow symbolic links).
func daemonDirsCommand(s DaemonSpec) string {
	home := DaemonHome(s.MachineID)
	return Command("install", "-d", "-m", "0755", EnvDir, DaemonHomeDir, home, "/usr/local/bin") +
		" && " + Command("chown", "-R", "-h", s.RunAs+":", home)
}

// UninstallDaemon stops, disables and removes machine id's systemd daemon
// (unit and environment file), then reloads systemd. The shared binary and
// the daemon's home directory are kept. Idempotent.
func UninstallDaemon(ctx context.Context, m *Machine, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	name := UnitName(id)
	cmd := "systemctl disable --now " + Quote(name) + " >/dev/null 2>&1 || true; " +
		"rm -f " + Quote(UnitPath(id)) + " " + Quote(EnvPath(id)) + " && systemctl daemon-reload && systemctl reset-failed " + Quote(name) + " >/dev/null 2>&1 || true; " +
		"! systemctl is-active --quiet " + Quote(name)
	if _, err := m.Run(ctx, m.Sudo(cmd)); err != nil {
		return fmt.Errorf("uninstall daemon %s: %w", id, err)
	}
	return nil
}

// PushBinary installs bin as BinaryPath after checking that it is an
// executable for the machine's architecture (temp path, checksum, atomic
// rename). It reports whether the binary changed.
func PushBinary(ctx context.Context, m *Machine, bin File) (bool, error) {
	if err := CheckArch(ctx, m, bin); err != nil {
		return false, err
	}
	if _, err := m.Run(ctx, m.Sudo("install -d -m 0755 /usr/local/bin")); err != nil {
		return false, fmt.Errorf("push binary to %s: %w", m.Target.ID, err)
	}
	return m.InstallFile(ctx, bin, BinaryPath)
}

// RestartDaemon restarts machine id's systemd daemon.
func RestartDaemon(ctx context.Context, m *Machine, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	cmd := "[ -e " + Quote(UnitPath(id)) + " ] || exit 99; systemctl restart " + Quote(UnitName(id))
	_, err := m.Run(ctx, m.Sudo(cmd))
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 99 {
		return fmt.Errorf("%s is not installed on %s: install the systemd daemon first (adora cluster install)", UnitName(id), m.Target.ID)
	}
	if err != nil {
		return fmt.Errorf("restart %s on %s: %w", UnitName(id), m.Target.ID, err)
	}
	return nil
}

// StopDaemon stops machine id's systemd daemon if it is installed (it stays
// enabled and starts again at boot).
func StopDaemon(ctx context.Context, m *Machine, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	cmd := "if [ -e " + Quote(UnitPath(id)) + " ]; then systemctl stop " + Quote(UnitName(id)) + "; fi"
	if _, err := m.Run(ctx, m.Sudo(cmd)); err != nil {
		return fmt.Errorf("stop %s on %s: %w", UnitName(id), m.Target.ID, err)
	}
	return nil
}

// UpgradeBinary is PushBinary followed by RestartDaemon: the rolling
// upgrade step of one machine, without the wait for the reconnect.
func UpgradeBinary(ctx context.Context, m *Machine, id string, bin File) error {
	if _, err := PushBinary(ctx, m, bin); err != nil {
		return err
	}
	return RestartDaemon(ctx, m, id)
}

func validID(id string) error {
	return DaemonSpec{MachineID: id, CoordinatorAddr: "x", CoordinatorPort: 1}.Validate()
}

// home returns the session user's home directory on the machine.
func (m *Machine) home(ctx context.Context) (string, error) {
	out, err := m.Run(ctx, `printf '%s' "$HOME"`)
	if err != nil {
		return "", fmt.Errorf("home directory on %s: %w", m.Target.ID, err)
	}
	h := strings.TrimSpace(out)
	if !strings.HasPrefix(h, "/") {
		return "", fmt.Errorf("home directory on %s: unexpected %q", m.Target.ID, firstLine(h))
	}
	return h, nil
}

// parsePID reads "word PID" lines such as "started 123".
func parsePID(out, word string) (int, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == word {
			if p, err := strconv.Atoi(f[1]); err == nil && p > 0 {
				return p, true
			}
		}
	}
	return 0, false
}

// PrevBinaryPath keeps the binary an upgrade replaced, for a rollback.
const PrevBinaryPath = BinaryPath + ".prev"

// BackupBinary copies BinaryPath to PrevBinaryPath (temp copy, then
// rename) so that RollbackBinary can restore it. It does nothing when no
// binary is installed yet.
func BackupBinary(ctx context.Context, m *Machine) error {
	tmp := PrevBinaryPath + ".adora-tmp"
	cmd := "if [ -e " + BinaryPath + " ]; then cp -p " + BinaryPath + " " + tmp + " && sync " + tmp + " && mv -f " + tmp + " " + PrevBinaryPath + "; fi"
	if _, err := m.Run(ctx, m.Sudo(cmd)); err != nil {
		return fmt.Errorf("keep the previous binary on %s: %w", m.Target.ID, err)
	}
	return nil
}

// RollbackBinary puts PrevBinaryPath back as BinaryPath (atomic rename)
// and restarts machine id's daemon.
func RollbackBinary(ctx context.Context, m *Machine, id string) error {
	cmd := "[ -e " + PrevBinaryPath + " ] || exit 99; mv -f " + PrevBinaryPath + " " + BinaryPath
	_, err := m.Run(ctx, m.Sudo(cmd))
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 99 {
		return fmt.Errorf("roll back %s: no previous binary kept", m.Target.ID)
	}
	if err != nil {
		return fmt.Errorf("roll back %s: %w", m.Target.ID, err)
	}
	return RestartDaemon(ctx, m, id)
}
