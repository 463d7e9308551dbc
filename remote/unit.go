package remote

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/adora-rs/adora/config"
)

// Paths on the machines. The binary is shared by every daemon of a
// machine; the rest is per machine id.
const (
	BinaryPath    = "/usr/local/bin/adora"
	UnitDir       = "/etc/systemd/system"
	EnvDir        = "/etc/adora"
	DaemonHomeDir = "/var/lib/adora"
)

// UnitName is the systemd service of machine id's daemon.
func UnitName(id string) string { return "adora-daemon-" + id + ".service" }

// UnitPath is where UnitName(id) is installed.
func UnitPath(id string) string { return UnitDir + "/" + UnitName(id) }

// EnvPath is the EnvironmentFile of machine id's daemon (mode 0600, root).
func EnvPath(id string) string { return EnvDir + "/daemon-" + id + ".env" }

// DaemonHome is the working directory and ADORA_HOME of machine id's
// systemd daemon.
func DaemonHome(id string) string { return DaemonHomeDir + "/" + id }

// DaemonSpec is what a daemon needs to join the cluster.
type DaemonSpec struct {
	MachineID       string
	CoordinatorAddr string
	CoordinatorPort int
	Labels          map[string]string
	// Token is the coordinator's auth token ("" = auth off). Secret: it
	// goes only into the environment file.
	Token string
	// Binary is the absolute path of adora on the machine (default
	// BinaryPath).
	Binary string
	// RunAs is the user the systemd daemon and the nodes it spawns run as
	// (config.ValidUserName); "root" runs them as root. RenderUnit needs
	// it: there is no silent default to root. Fleet.Spec resolves it from
	// the machine's run_as, else its SSH user.
	RunAs string
}

// RootUser is the RunAs that keeps the daemon running as root.
const RootUser = "root"

// Validate checks every value that ends up in a unit file or a command.
func (s DaemonSpec) Validate() error {
	if err := config.ValidID("machine id", s.MachineID); err != nil {
		return err
	}
	if err := ValidHost("coordinator address", s.CoordinatorAddr); err != nil {
		return err
	}
	if s.CoordinatorPort <= 0 || s.CoordinatorPort > 65535 {
		return fmt.Errorf("coordinator port %d is out of range 1-65535", s.CoordinatorPort)
	}
	for k, v := range s.Labels {
		if err := config.ValidID("label key", k); err != nil {
			return err
		}
		if err := config.ValidLabelValue(v); err != nil {
			return fmt.Errorf("label %s: %w", k, err)
		}
	}
	for _, r := range s.Token {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("auth token contains a character outside [A-Za-z0-9._-]")
		}
	}
	if s.Binary != "" && !strings.HasPrefix(s.Binary, "/") {
		return fmt.Errorf("daemon binary %q must be an absolute path", s.Binary)
	}
	if s.RunAs != "" {
		if err := config.ValidUserName(s.RunAs); err != nil {
			return fmt.Errorf("run_as of machine %s: %w (set run_as in the cluster file; it defaults to the SSH user)", s.MachineID, err)
		}
	}
	return nil
}

func (s DaemonSpec) binary() string {
	if s.Binary == "" {
		return BinaryPath
	}
	return s.Binary
}

// DaemonArgs are the daemon's command-line arguments after the binary, in
// the order the guide shows: daemon --machine-id ID --coordinator-addr
// ADDR --coordinator-port PORT [--labels k=v,...] --quiet. Labels are
// sorted by key. The token is never among them.
func (s DaemonSpec) DaemonArgs() []string {
	args := []string{"daemon", "--machine-id", s.MachineID,
		"--coordinator-addr", s.CoordinatorAddr,
		"--coordinator-port", strconv.Itoa(s.CoordinatorPort)}
	if l := FormatLabelFlag(s.Labels); l != "" {
		args = append(args, "--labels", l)
	}
	return append(args, "--quiet")
}

// FormatLabelFlag renders labels as k1=v1,k2=v2 sorted by key.
func FormatLabelFlag(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// RenderUnit returns the systemd unit of s's daemon: the guide's unit with
// User=s.RunAs (none for root), an absolute ExecStart, a WorkingDirectory,
// an EnvironmentFile carrying the token (systemd reads it as root, before
// it drops privileges), KillMode=mixed (see below) and Restart=always (a
// daemon stopped by "cluster down" exits 0; it must come back by itself
// once the coordinator is back, and at boot). It is a pure function of s.
func RenderUnit(s DaemonSpec) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("render unit: %w", err)
	}
	if s.RunAs == "" {
		return nil, fmt.Errorf("render unit of machine %s: no run-as user (set run_as, or run_as: root to run the daemon as root)", s.MachineID)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Managed by adora (cluster install / apply); local edits are replaced.\n")
	fmt.Fprintf(&b, "[Unit]\n")
	fmt.Fprintf(&b, "Description=Adora Daemon (%s)\n", s.MachineID)
	fmt.Fprintf(&b, "After=network-online.target\n")
	fmt.Fprintf(&b, "Wants=network-online.target\n")
	fmt.Fprintf(&b, "StartLimitIntervalSec=0\n\n")
	fmt.Fprintf(&b, "[Service]\n")
	fmt.Fprintf(&b, "Type=simple\n")
	if s.RunAs != RootUser {
		// The user's primary group and its supplementary groups (video,
		// dialout, ...) come with it.
		fmt.Fprintf(&b, "User=%s\n", s.RunAs)
	}
	fmt.Fprintf(&b, "ExecStart=%s %s\n", s.binary(), strings.Join(s.DaemonArgs(), " "))
	fmt.Fprintf(&b, "WorkingDirectory=%s\n", DaemonHome(s.MachineID))
	fmt.Fprintf(&b, "EnvironmentFile=%s\n", EnvPath(s.MachineID))
	fmt.Fprintf(&b, "Restart=always\n")
	fmt.Fprintf(&b, "RestartSec=5\n")
	// On stop (cluster restart, upgrade, reboot), SIGTERM goes to the
	// daemon alone: it stops its nodes and closes its connection without
	// reporting their dataflows finished, so the coordinator re-spawns
	// them once the daemon is back. Killing the whole control group at
	// once would let the daemon see its nodes die first and report that.
	// What is left after TimeoutStopSec is killed.
	fmt.Fprintf(&b, "KillMode=mixed\n")
	fmt.Fprintf(&b, "TimeoutStopSec=30\n\n")
	fmt.Fprintf(&b, "[Install]\n")
	fmt.Fprintf(&b, "WantedBy=multi-user.target\n")
	return []byte(b.String()), nil
}

// RenderEnv returns the daemon's EnvironmentFile: ADORA_HOME and, when
// auth is on, ADORA_AUTH_TOKEN. It holds a secret: install it 0600.
func RenderEnv(s DaemonSpec, home string) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("render environment: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Managed by adora; holds the coordinator token: keep mode 0600.\n")
	// Quoted for sh, which sources the ad hoc daemon's copy; plain paths
	// (every systemd daemon's home) stay unquoted for systemd.
	fmt.Fprintf(&b, "ADORA_HOME=%s\n", Quote(home))
	if s.Token != "" {
		fmt.Fprintf(&b, "ADORA_AUTH_TOKEN=%s\n", s.Token)
	}
	return []byte(b.String()), nil
}

// ContentHash is the hex sha256 of rendered content, as recorded in state
// and compared with what ObserveMachine reports.
func ContentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
