package remote

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Observation is what ObserveMachine saw of one machine's daemon.
type Observation struct {
	MachineID    string `json:"machine_id"`
	Arch         string `json:"arch"`           // uname -m
	UnitPresent  bool   `json:"unit_present"`   // the unit file exists
	UnitActive   string `json:"unit_active"`    // systemctl is-active: active, inactive, failed, ...
	UnitEnabled  string `json:"unit_enabled"`   // systemctl is-enabled: enabled, disabled, ...
	UnitSHA256   string `json:"unit_sha256"`    // of the unit file ("" if absent)
	EnvSHA256    string `json:"env_sha256"`     // of the environment file ("" if absent)
	BinarySHA256 string `json:"binary_sha256"`  // of BinaryPath ("" if absent)
	BinaryVer    string `json:"binary_version"` // first line of "adora version" ("" if absent)
	AdhocPID     int    `json:"adhoc_pid"`      // live ad hoc daemon (0 if none)
}

// Active reports whether the systemd daemon is running.
func (o Observation) Active() bool { return o.UnitActive == "active" }

// Enabled reports whether the systemd daemon starts at boot.
func (o Observation) Enabled() bool { return o.UnitEnabled == "enabled" }

// ObserveMachine reads the state of machine id's daemon in one round trip:
// unit present, active and enabled, unit/environment/binary checksums, the
// binary's version, the architecture and a live ad hoc daemon. It changes
// nothing.
func ObserveMachine(ctx context.Context, m *Machine, id string) (Observation, error) {
	if err := validID(id); err != nil {
		return Observation{}, err
	}
	home, err := m.home(ctx)
	if err != nil {
		return Observation{}, err
	}
	out, err := m.Run(ctx, m.Sudo(observeScript(id, home)))
	if err != nil {
		return Observation{}, fmt.Errorf("observe %s: %w", id, err)
	}
	o, err := ParseObservation(out)
	if err != nil {
		return Observation{}, fmt.Errorf("observe %s: %w", id, err)
	}
	o.MachineID = id
	return o, nil
}

func observeScript(id, home string) string {
	unit, env := Quote(UnitPath(id)), Quote(EnvPath(id))
	name := Quote(UnitName(id))
	pid := Quote(AdhocDir(home, id) + "/daemon.pid")
	sum := func(key, p string) string {
		return "if [ -e " + p + " ]; then echo " + key + "=$(sha256sum " + p + " | cut -d' ' -f1); fi"
	}
	return strings.Join([]string{
		"echo arch=$(uname -m)",
		"[ -e " + unit + " ] && echo unit_present=1",
		"echo unit_active=$(systemctl is-active " + name + " 2>/dev/null)",
		"echo unit_enabled=$(systemctl is-enabled " + name + " 2>/dev/null)",
		sum("unit_sha256", unit),
		sum("env_sha256", env),
		sum("binary_sha256", BinaryPath),
		"[ -x " + BinaryPath + " ] && echo binary_version=$(" + BinaryPath + " version 2>/dev/null | head -n1)",
		"if [ -f " + pid + " ]; then p=$(cat " + pid + "); " +
			"if kill -0 \"$p\" 2>/dev/null && grep -q adora /proc/\"$p\"/cmdline 2>/dev/null; then echo adhoc_pid=$p; fi; fi",
		"true",
	}, "\n")
}

// ParseObservation reads the key=value lines of the observe script.
// Unknown keys are ignored so newer scripts can add facts.
func ParseObservation(out string) (Observation, error) {
	var o Observation
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "arch":
			o.Arch = v
		case "unit_present":
			o.UnitPresent = v == "1"
		case "unit_active":
			o.UnitActive = v
		case "unit_enabled":
			o.UnitEnabled = v
		case "unit_sha256", "env_sha256", "binary_sha256":
			if v != "" {
				d, err := parseSHA256Sum(v)
				if err != nil {
					return o, fmt.Errorf("%s: %w", k, err)
				}
				v = d
			}
			switch k {
			case "unit_sha256":
				o.UnitSHA256 = v
			case "env_sha256":
				o.EnvSHA256 = v
			default:
				o.BinarySHA256 = v
			}
		case "binary_version":
			o.BinaryVer = v
		case "adhoc_pid":
			p, err := strconv.Atoi(v)
			if err != nil || p <= 0 {
				return o, fmt.Errorf("adhoc_pid: bad pid %q", v)
			}
			o.AdhocPID = p
		}
	}
	if o.Arch == "" {
		return o, fmt.Errorf("no architecture in the answer %q", firstLine(out))
	}
	return o, nil
}
