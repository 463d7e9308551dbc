package remote

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// AdhocStatus is what StartAdhocDaemon found or did.
type AdhocStatus string

const (
	AdhocStarted        AdhocStatus = "started"
	AdhocAlreadyRunning AdhocStatus = "running" // our pid file names a live daemon
	AdhocSystemd        AdhocStatus = "systemd" // the systemd service is active
)

// AdhocResult reports the ad hoc daemon of one machine.
type AdhocResult struct {
	Status AdhocStatus
	PID    int    // 0 for AdhocSystemd
	Dir    string // the daemon's directory (pid file, log, environment)
}

// AdhocDir is the directory of machine id's ad hoc daemon under home.
func AdhocDir(home, id string) string { return path.Join(home, ".adora", "daemon-"+id) }

// StartAdhocDaemon starts s's daemon the "cluster up" way: detached
// (setsid nohup), working directory and log in AdhocDir, the token in an
// environment file there (0600, sourced by the shell, never on the command
// line), the pid in daemon.pid. It runs as the session user whatever
// s.RunAs says. bin is uploaded to ~/.adora/bin/adora when
// s.Binary is empty. Idempotent: when the pid file names a live adora
// process, or the systemd service of the machine is active, nothing is
// started.
func StartAdhocDaemon(ctx context.Context, m *Machine, s DaemonSpec, bin File) (AdhocResult, error) {
	var res AdhocResult
	// The ad hoc daemon runs as the session user; run_as is for the
	// systemd daemon.
	s.RunAs = ""
	if err := s.Validate(); err != nil {
		return res, err
	}
	home, err := m.home(ctx)
	if err != nil {
		return res, err
	}
	dir := AdhocDir(home, s.MachineID)
	res.Dir = dir
	if _, err := m.Run(ctx, Command("mkdir", "-p", dir, path.Join(home, ".adora", "bin"))+" && chmod 700 "+Quote(dir)); err != nil {
		return res, fmt.Errorf("start daemon %s: create %s: %w", s.MachineID, dir, err)
	}
	if s.Binary == "" {
		if err := CheckArch(ctx, m, bin); err != nil {
			return res, err
		}
		s.Binary = path.Join(home, ".adora", "bin", "adora")
		if _, err := m.InstallFile(ctx, bin, s.Binary); err != nil {
			return res, fmt.Errorf("start daemon %s: %w", s.MachineID, err)
		}
	}
	env, err := RenderEnv(s, dir)
	if err != nil {
		return res, err
	}
	if _, err := m.InstallFile(ctx, BytesFile(env, 0o600), path.Join(dir, "daemon.env")); err != nil {
		return res, fmt.Errorf("start daemon %s: %w", s.MachineID, err)
	}
	out, err := m.Run(ctx, adhocStartScript(dir, s))
	if err != nil {
		return res, fmt.Errorf("start daemon %s: %w", s.MachineID, err)
	}
	return parseAdhocStart(out, res)
}

// adhocStartScript starts the daemon unless one is already there. Every
// interpolated value is validated (s.Validate) and quoted.
func adhocStartScript(dir string, s DaemonSpec) string {
	q := Quote(dir)
	args := append([]string{s.binary()}, s.DaemonArgs()...)
	return strings.Join([]string{
		"set -e",
		"if systemctl is-active --quiet " + Quote(UnitName(s.MachineID)) + " 2>/dev/null; then echo systemd; exit 0; fi",
		"if [ -f " + q + "/daemon.pid ]; then p=$(cat " + q + "/daemon.pid); " +
			"if kill -0 \"$p\" 2>/dev/null && grep -q adora /proc/\"$p\"/cmdline 2>/dev/null; then echo \"running $p\"; exit 0; fi; fi",
		"cd " + q,
		"set -a; . ./daemon.env; set +a",
		"setsid nohup " + Command(args...) + " >>daemon.log 2>&1 </dev/null &",
		"echo $! >daemon.pid",
		"echo \"started $!\"",
	}, "\n")
}

func parseAdhocStart(out string, res AdhocResult) (AdhocResult, error) {
	if strings.TrimSpace(out) == "systemd" {
		res.Status = AdhocSystemd
		return res, nil
	}
	if p, ok := parsePID(out, "running"); ok {
		res.Status, res.PID = AdhocAlreadyRunning, p
		return res, nil
	}
	if p, ok := parsePID(out, "started"); ok {
		res.Status, res.PID = AdhocStarted, p
		return res, nil
	}
	return res, fmt.Errorf("start daemon: unexpected answer %q", firstLine(out))
}

// StopAdhocDaemon stops machine id's ad hoc daemon if its pid file names a
// live adora process: SIGTERM, up to 10 s, then SIGKILL to its process
// group. It reports whether a daemon was stopped. Idempotent.
func StopAdhocDaemon(ctx context.Context, m *Machine, id string) (bool, error) {
	if err := validID(id); err != nil {
		return false, err
	}
	home, err := m.home(ctx)
	if err != nil {
		return false, err
	}
	f := Quote(path.Join(AdhocDir(home, id), "daemon.pid"))
	script := strings.Join([]string{
		"[ -f " + f + " ] || { echo none; exit 0; }",
		"p=$(cat " + f + ")",
		"if kill -0 \"$p\" 2>/dev/null && grep -q adora /proc/\"$p\"/cmdline 2>/dev/null; then",
		"  kill -TERM \"$p\"; i=0",
		"  while kill -0 \"$p\" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
		"  if kill -0 \"$p\" 2>/dev/null; then kill -KILL -- -\"$p\" 2>/dev/null || kill -KILL \"$p\"; fi",
		"  echo stopped",
		"else echo none; fi",
		"rm -f " + f,
	}, "\n")
	out, err := m.Run(ctx, script)
	if err != nil {
		return false, fmt.Errorf("stop daemon %s: %w", id, err)
	}
	return strings.Contains(out, "stopped"), nil
}
