package config

import (
	"maps"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
)

// Options tune how a file is decoded. The zero value is the default.
type Options struct {
	// Vars overrides HCL `variable` defaults, like terraform's -var NAME=VALUE.
	// A value is converted to the variable's declared type, if any. YAML
	// files ignore Vars. A name no variable block of the file declares is an
	// error, unless AllowUndeclaredVars is set.
	Vars map[string]string

	// AllowUndeclaredVars accepts Vars a file does not declare: for loading
	// several files with one set of -var flags. Use Declared and
	// UndeclaredVars to report names no file declares.
	AllowUndeclaredVars bool

	// Declared, when not nil, collects the names of the variables declared
	// by the HCL files decoded with these Options.
	Declared map[string]bool
}

// UndeclaredVars returns the names of Vars missing from Declared, sorted.
func (o Options) UndeclaredVars() []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(o.Vars)) {
		if !o.Declared[n] {
			out = append(out, n)
		}
	}
	return out
}

// LoadCluster reads and decodes a cluster file: HCL when path ends in .hcl,
// YAML otherwise. See ParseCluster.
func LoadCluster(path string) (*Cluster, Diagnostics) {
	return LoadClusterOptions(path, Options{})
}

// LoadClusterOptions is LoadCluster with Options (HCL variables).
func LoadClusterOptions(path string, opts Options) (*Cluster, Diagnostics) {
	src, diags := readFile(path)
	if diags.HasErrors() {
		return nil, diags
	}
	return ParseClusterOptions(src, path, opts)
}

// ParseCluster decodes a cluster from src. filename is used in positions and
// picks the syntax (".hcl": HCL, anything else: YAML). Defaults are applied:
// coordinator port 6013, SSH user = the ssh defaults or the current user,
// SSH port = the ssh defaults or 22, identity file = the ssh defaults.
//
// The result is nil only when src cannot be parsed at all; otherwise it is
// the decoded cluster, possibly partial, and the caller must check
// HasErrors on the diagnostics before using it.
func ParseCluster(src []byte, filename string) (*Cluster, Diagnostics) {
	return ParseClusterOptions(src, filename, Options{})
}

// ParseClusterOptions is ParseCluster with Options (HCL variables).
func ParseClusterOptions(src []byte, filename string, opts Options) (*Cluster, Diagnostics) {
	var c *Cluster
	var diags Diagnostics
	var root Pos
	if IsHCL(filename) {
		c, root, diags = decodeClusterHCL(src, filename, opts)
	} else {
		c, root, diags = decodeClusterYAML(src, filename)
	}
	if c == nil {
		return nil, diags
	}
	c.Source = filename
	diags = append(diags, finishCluster(c, root)...)
	return c, diags.capped()
}

// IsHCL reports whether a file name selects the HCL syntax.
func IsHCL(filename string) bool {
	return strings.EqualFold(filepath.Ext(filename), ".hcl")
}

// LocalHost is the host of a local machine that does not set one.
const LocalHost = "127.0.0.1"

// DefaultCluster is the cluster used when there is no cluster file: this
// machine alone, with the coordinator on 127.0.0.1:6013 and one machine
// "local" managed without SSH.
func DefaultCluster() *Cluster {
	c := &Cluster{
		Coordinator: Coordinator{Addr: "127.0.0.1", Port: DefaultCoordinatorPort},
		Machines:    []Machine{{ID: "local", Host: "127.0.0.1", Local: true}},
	}
	finishCluster(c, Pos{})
	return c
}

// Machine returns the machine with id, or nil.
func (c *Cluster) Machine(id string) *Machine {
	for i := range c.Machines {
		if c.Machines[i].ID == id {
			return &c.Machines[i]
		}
	}
	return nil
}

// MachineIDs returns the machine ids in file order.
func (c *Cluster) MachineIDs() []string {
	ids := make([]string, len(c.Machines))
	for i, m := range c.Machines {
		ids[i] = m.ID
	}
	return ids
}

// currentUser is the default SSH user. A variable so tests can pin it.
var currentUser = func() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// MaxFileSize bounds configuration files; anything larger is a mistake.
const MaxFileSize = 16 << 20

func readFile(path string) ([]byte, Diagnostics) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > MaxFileSize {
		var diags Diagnostics
		diags.errorf(Pos{File: path}, "file is %d bytes; configuration files are limited to %d", fi.Size(), MaxFileSize)
		return nil, diags
	} else if err == nil && fi.IsDir() {
		var diags Diagnostics
		diags.hintf(Pos{File: path}, "pass a cluster or dataflow file", "is a directory")
		return nil, diags
	}
	src, err := os.ReadFile(path)
	if err != nil {
		var diags Diagnostics
		if os.IsNotExist(err) {
			diags.hintf(Pos{File: path}, "check the path", "file not found")
		} else {
			diags.errorf(Pos{File: path}, "cannot read file: %v", err)
		}
		return nil, diags
	}
	return src, nil
}

// finishCluster applies defaults and checks what spans several machines.
func finishCluster(c *Cluster, root Pos) Diagnostics {
	var diags Diagnostics
	if c.Coordinator.Port == 0 {
		c.Coordinator.Port = DefaultCoordinatorPort
	}
	if c.SSH.User == "" {
		c.SSH.User = currentUser()
	}
	if c.SSH.Port == 0 {
		c.SSH.Port = DefaultSSHPort
	}
	if len(c.Machines) == 0 {
		hint := "add a machines: list with at least one machine"
		if IsHCL(root.File) {
			hint = `add a machine "ID" { host = "..." } block`
		}
		diags.hintf(root, hint, "cluster config must define at least one machine")
	}
	seen := make(map[string]Pos)
	var local []string
	for i := range c.Machines {
		m := &c.Machines[i]
		if m.User == "" {
			m.User = c.SSH.User
		}
		if m.Port == 0 {
			m.Port = c.SSH.Port
		}
		if m.IdentityFile == "" {
			m.IdentityFile = c.SSH.IdentityFile
		}
		if len(m.Labels) == 0 {
			m.Labels = nil
		}
		if m.Local && m.RunAs != "" {
			diags.warnf(m.Pos, "machine %q: run_as has no effect on the local machine: its daemon runs as the user running adora", m.ID)
		}
		if !m.Local && m.RunAs == "" && m.User != "" && ValidUserName(m.User) != nil {
			diags.warnf(m.Pos, "machine %q: its daemon would run as the SSH user %q, which is not a plain user name: set run_as", m.ID, m.User)
		}
		if m.Local {
			local = append(local, m.ID)
			if len(local) == 2 {
				diags.hintf(m.Pos, "mark only the machine adora runs on", "machines %q and %q are both local", local[0], local[1])
			}
		}
		if m.ID == "" {
			continue
		}
		if prev, dup := seen[m.ID]; dup {
			diags.hintf(m.Pos, "first defined at "+prev.String(), "duplicate machine id %q", m.ID)
			continue
		}
		seen[m.ID] = m.Pos
	}
	diags = append(diags, checkCoordinatorReach(c)...)
	names := make(map[string]Pos)
	for _, r := range c.Dataflows {
		if r.Name == "" {
			continue
		}
		if prev, dup := names[r.Name]; dup {
			diags.hintf(r.Pos, "first defined at "+prev.String(), "duplicate dataflow name %q", r.Name)
			continue
		}
		names[r.Name] = r.Pos
	}
	if len(c.Dataflows) == 0 {
		c.Dataflows = nil
	}
	return diags
}

// checkCoordinatorReach warns when daemons will not be able to dial
// coordinator.addr: an unspecified address, or loopback with remote machines.
func checkCoordinatorReach(c *Cluster) Diagnostics {
	var diags Diagnostics
	addr := c.Coordinator.Addr
	ip, err := netip.ParseAddr(addr)
	if err == nil && ip.IsUnspecified() {
		diags.warnf(c.Coordinator.Pos, "coordinator.addr %s is not an address daemons can dial; use this machine's IP address or host name", addr)
		return diags
	}
	if !isLoopback(addr) {
		return diags
	}
	for _, m := range c.Machines {
		if !m.Local && m.Host != "" && !isLoopback(m.Host) {
			diags.warnf(c.Coordinator.Pos, "coordinator.addr %s is a loopback address, but machine %q (%s) cannot reach it; use an address of this machine that %s can reach", addr, m.ID, m.Host, m.ID)
			break
		}
	}
	return diags
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
