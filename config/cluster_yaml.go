package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

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
	what := "machine"
	if id := scalarKey(n, "id"); id != "" {
		what = fmt.Sprintf("machine %q", id)
	}
	keys := d.mapping(n, what, []field{
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
				d.diags.hintf(d.pos(resolve(v)), "set it to an IP address or host name", "%s: host must not be empty", what)
			}
			if s, ok := d.str(v, what+": host"); ok {
				if err := validHost("host", s); err != nil {
					d.diags.errorf(d.pos(v), "%s: %v", what, err)
				}
				m.Host = s
			}
		}},
		{"user", func(_, v *yaml.Node) { m.User = d.sshUser(v, what) }},
		{"port", func(_, v *yaml.Node) { m.Port, _ = d.integer(v, what+": port", 1, 65535) }},
		{"identity_file", func(_, v *yaml.Node) { m.IdentityFile = d.path(v, what+": identity_file") }},
		{"labels", func(_, v *yaml.Node) {
			m.Labels = d.stringMap(v, what+": labels", func(k string) error { return ValidID("label key", k) }, ValidLabelValue)
		}},
		{"local", func(_, v *yaml.Node) { m.Local, _ = d.boolean(v, what+": local") }},
		{"run_as", func(_, v *yaml.Node) { m.RunAs = d.runAs(v, what) }},
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

// scalarKey returns the value of key in mapping n when it is a scalar, or "".
func scalarKey(n *yaml.Node, key string) string {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			if v := resolve(n.Content[i+1]); v.Kind == yaml.ScalarNode && !isNull(v) {
				return v.Value
			}
			return ""
		}
	}
	return ""
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
			{"nodes", func(_, v *yaml.Node) { r.inline().Nodes = d.nodes(v) }},
			{"env", func(_, v *yaml.Node) { r.inline().Env = d.env(v) }},
		}, nil)
		if keys == nil {
			continue
		}
		if r.Name == "" {
			d.diags.hintf(r.Pos, "add name: NAME", "dataflow: missing name")
		}
		d.diags = append(d.diags, finishRef(&r, d.file, keys["path"] != nil)...)
		out = append(out, r)
	}
	return out
}

// inline returns the inline dataflow of r, creating it.
func (r *DataflowRef) inline() *Dataflow {
	if r.Dataflow == nil {
		r.Dataflow = &Dataflow{}
	}
	return r.Dataflow
}

// finishRef checks a dataflows entry: a path or an inline dataflow, not
// both, and finishes the inline dataflow.
func finishRef(r *DataflowRef, file string, hasPath bool) Diagnostics {
	var diags Diagnostics
	switch {
	case r.Dataflow != nil && hasPath:
		diags.hintf(r.Pos, "keep path, or move the nodes to that file", "dataflow %q: set path or nodes, not both", r.Name)
		r.Dataflow = nil
	case r.Dataflow != nil:
		r.Dataflow.Source = file
		diags = append(diags, finishDataflow(r.Dataflow, r.Pos)...)
	case r.Path == "":
		diags.hintf(r.Pos, "add path: FILE, or the nodes inline", "dataflow %q: missing path", r.Name)
	}
	return diags
}

// nameFromPath is a file's base name without its extension.
func nameFromPath(p string) string {
	base := filepath.Base(p)
	return strings.TrimSuffix(base, filepath.Ext(base))
}
