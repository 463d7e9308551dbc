package config

import (
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
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
	for _, n := range sortedKeys(o.Vars) {
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
	return c, diags
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

// ---- YAML ----

func decodeClusterYAML(src []byte, file string) (*Cluster, Pos, Diagnostics) {
	d := &yamlDecoder{file: file}
	root := d.parseYAML(src)
	if root == nil {
		return nil, Pos{}, d.diags
	}
	c := &Cluster{}
	keys := d.mapping(root, "cluster", []field{
		{"coordinator", func(_, v *yaml.Node) { d.coordinator(v, &c.Coordinator) }},
		{"ssh", func(_, v *yaml.Node) { d.sshDefaults(v, &c.SSH) }},
		{"machines", func(_, v *yaml.Node) { c.Machines = d.machines(v) }},
		{"dataflows", func(_, v *yaml.Node) { c.Dataflows = d.dataflowRefs(v) }},
	}, map[string]string{"nodes": "this is a dataflow key; pass dataflow files separately or list them under dataflows:"})
	rootPos := d.pos(resolve(root))
	if keys != nil && keys["coordinator"] == nil {
		d.diags.hintf(rootPos, "add coordinator: {addr: IP-OR-HOSTNAME}", "cluster: missing coordinator")
	}
	return c, rootPos, d.diags
}

func (d *yamlDecoder) coordinator(n *yaml.Node, co *Coordinator) {
	co.Pos = d.pos(resolve(n))
	blockPos := co.Pos
	keys := d.mapping(n, "coordinator", []field{
		{"addr", func(_, v *yaml.Node) {
			if s, ok := d.str(v, "coordinator.addr"); ok {
				if err := validHost("coordinator.addr", s); err != nil {
					d.diags.errorf(d.pos(v), "%v", err)
				}
				co.Addr = s
				co.Pos = d.pos(resolve(v))
			}
		}},
		{"port", func(_, v *yaml.Node) {
			co.Port, _ = d.integer(v, "coordinator.port", 1, 65535)
		}},
	}, nil)
	if keys != nil && co.Addr == "" {
		d.diags.hintf(blockPos, "set addr to the IP address or host name machines use to reach the coordinator", "coordinator: missing addr")
	}
}

func (d *yamlDecoder) sshDefaults(n *yaml.Node, s *SSHDefaults) {
	d.mapping(n, "ssh", []field{
		{"user", func(_, v *yaml.Node) { s.User = d.sshUser(v, "ssh.user") }},
		{"port", func(_, v *yaml.Node) { s.Port, _ = d.integer(v, "ssh.port", 1, 65535) }},
		{"identity_file", func(_, v *yaml.Node) { s.IdentityFile = d.path(v, "ssh.identity_file") }},
	}, nil)
}

func (d *yamlDecoder) sshUser(v *yaml.Node, what string) string {
	s, ok := d.str(v, what)
	if !ok || s == "" {
		return ""
	}
	if err := validUser(s); err != nil {
		d.diags.errorf(d.pos(v), "%s: %v", what, err)
		return ""
	}
	return s
}

// path decodes a file path; it must not contain control characters.
func (d *yamlDecoder) path(v *yaml.Node, what string) string {
	s, ok := d.str(v, what)
	if !ok {
		return ""
	}
	if err := validPath(s); err != nil {
		d.diags.errorf(d.pos(v), "%s: %v", what, err)
		return ""
	}
	return s
}

func validPath(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("path %q contains a control character", s)
		}
	}
	return nil
}

func (d *yamlDecoder) machines(n *yaml.Node) []Machine {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, "machines", "a list")
		return nil
	}
	out := make([]Machine, 0, len(n.Content))
	for _, item := range n.Content {
		out = append(out, d.machine(resolve(item)))
	}
	return out
}

func (d *yamlDecoder) machine(n *yaml.Node) Machine {
	m := Machine{Pos: d.pos(n)}
	keys := d.mapping(n, "machine", []field{
		{"id", func(_, v *yaml.Node) {
			if s, ok := d.str(v, "machine id"); ok && s != "" {
				if err := ValidID("machine id", s); err != nil {
					d.diags.errorf(d.pos(v), "%v", err)
				}
				m.ID = s
			}
		}},
		{"host", func(_, v *yaml.Node) {
			if isNull(resolve(v)) {
				d.diags.hintf(d.pos(resolve(v)), "set it to an IP address or host name", "machine %q: host must not be empty", m.ID)
			}
			if s, ok := d.str(v, "host"); ok {
				if err := validHost("host", s); err != nil {
					d.diags.errorf(d.pos(v), "machine %q: %v", m.ID, err)
				}
				m.Host = s
			}
		}},
		{"user", func(_, v *yaml.Node) { m.User = d.sshUser(v, "user") }},
		{"port", func(_, v *yaml.Node) { m.Port, _ = d.integer(v, "port", 1, 65535) }},
		{"identity_file", func(_, v *yaml.Node) { m.IdentityFile = d.path(v, "identity_file") }},
		{"labels", func(_, v *yaml.Node) { m.Labels = d.labels(v) }},
		{"local", func(_, v *yaml.Node) { m.Local, _ = d.boolean(v, "local") }},
	}, nil)
	if keys == nil {
		return m
	}
	if m.ID == "" {
		p := m.Pos
		if k := keys["id"]; k != nil {
			p = d.pos(k)
		}
		d.diags.hintf(p, "add id: NAME", "machine id must not be empty")
	}
	switch {
	case keys["host"] != nil:
		// checked where it is set
	case m.Local:
		m.Host = LocalHost
	default:
		name := m.ID
		if name == "" {
			name = "?"
		}
		d.diags.hintf(m.Pos, "add host: IP-OR-HOSTNAME", "machine %q host must not be empty", name)
	}
	return m
}

func (d *yamlDecoder) labels(v *yaml.Node) map[string]string {
	return d.stringMap(v, "labels", func(k string) error { return ValidID("label key", k) }, ValidLabelValue)
}

func (d *yamlDecoder) dataflowRefs(n *yaml.Node) []DataflowRef {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, "dataflows", "a list")
		return nil
	}
	var out []DataflowRef
	for _, item := range n.Content {
		item = resolve(item)
		r := DataflowRef{Pos: d.pos(item)}
		if item.Kind == yaml.ScalarNode && !isNull(item) {
			r.Path = d.path(item, "dataflow path")
			r.Name = nameFromPath(r.Path)
			if err := ValidID("dataflow name", r.Name); err != nil {
				d.diags.hintf(r.Pos, "give it a name: {name: NAME, path: "+r.Path+"}", "%v", err)
			}
			out = append(out, r)
			continue
		}
		keys := d.mapping(item, "dataflow", []field{
			{"name", func(_, v *yaml.Node) {
				if s, ok := d.str(v, "dataflow name"); ok {
					if err := ValidID("dataflow name", s); err != nil {
						d.diags.errorf(d.pos(v), "%v", err)
					}
					r.Name = s
				}
			}},
			{"path", func(_, v *yaml.Node) { r.Path = d.path(v, "dataflow path") }},
		}, nil)
		if keys == nil {
			continue
		}
		if r.Name == "" && keys["name"] == nil {
			d.diags.hintf(r.Pos, "add name: NAME", "dataflow: missing name")
		}
		if r.Path == "" {
			d.diags.hintf(r.Pos, "add path: FILE", "dataflow %q: missing path", r.Name)
		}
		out = append(out, r)
	}
	return out
}

// nameFromPath is a file's base name without its extension.
func nameFromPath(p string) string {
	base := filepath.Base(p)
	return strings.TrimSuffix(base, filepath.Ext(base))
}
