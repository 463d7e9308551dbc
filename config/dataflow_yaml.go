package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

func decodeDataflowYAML(src []byte, file string) (*Dataflow, Pos, Diagnostics) {
	d := &yamlDecoder{file: file}
	root := d.parseYAML(src)
	if root == nil {
		return nil, Pos{}, d.diags
	}
	df := &Dataflow{}
	keys := d.mapping(root, "dataflow", []field{
		{"nodes", func(_, v *yaml.Node) { df.Nodes = d.nodes(v) }},
		{"env", func(_, v *yaml.Node) { df.Env = d.env(v) }},
	}, unsupportedDataflowKeys)
	rootPos := d.pos(resolve(root))
	if keys != nil && keys["nodes"] == nil {
		d.diags.hintf(rootPos, "add nodes: with at least one node", "dataflow: missing nodes")
	}
	return df, rootPos, d.diags
}

func (d *yamlDecoder) env(v *yaml.Node) map[string]string {
	return d.stringMap(v, "env", validEnvKey, validEnvValue)
}

func (d *yamlDecoder) nodes(n *yaml.Node) []Node {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, "nodes", "a list")
		return nil
	}
	out := make([]Node, 0, len(n.Content))
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			d.typeError(item, "a node", "a mapping")
			continue
		}
		out = append(out, d.node(item))
	}
	return out
}

func (d *yamlDecoder) node(n *yaml.Node) Node {
	nd := Node{Pos: d.pos(n)}
	// The id is read first so every later diagnostic can name the node.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "id" {
			v := resolve(n.Content[i+1])
			if s, ok := d.str(v, "node id"); ok && s != "" {
				if err := validNodeID(s); err != nil {
					d.diags.errorf(d.pos(v), "%v", err)
				}
				nd.ID = s
			}
			break
		}
	}
	what := "node"
	if nd.ID != "" {
		what = fmt.Sprintf("node %q", nd.ID)
	}
	keys := d.mapping(n, what, []field{
		{"id", nil},
		{"name", func(_, v *yaml.Node) { nd.Name, _ = d.str(v, what+": name") }},
		{"description", func(_, v *yaml.Node) { nd.Description, _ = d.str(v, what+": description") }},
		{"path", func(_, v *yaml.Node) { nd.Path = d.nodePath(v, what) }},
		{"args", func(_, v *yaml.Node) { nd.Args = d.args(v, what) }},
		{"env", func(_, v *yaml.Node) { nd.Env = d.env(v) }},
		{"build", func(_, v *yaml.Node) { nd.Build, _ = d.str(v, what+": build") }},
		{"inputs", func(_, v *yaml.Node) { nd.Inputs = d.inputs(v, what) }},
		{"outputs", func(_, v *yaml.Node) { nd.Outputs = d.outputs(v, what) }},
		{"restart_policy", func(_, v *yaml.Node) { nd.Restart.Mode = d.restartMode(v, what) }},
		{"max_restarts", func(_, v *yaml.Node) { nd.Restart.MaxRestarts, _ = d.integer(v, what+": max_restarts", 0, 1<<31-1) }},
		{"restart_delay", func(_, v *yaml.Node) { nd.Restart.RestartDelay, _ = d.duration(v, what+": restart_delay") }},
		{"max_restart_delay", func(_, v *yaml.Node) { nd.Restart.MaxRestartDelay, _ = d.duration(v, what+": max_restart_delay") }},
		{"restart_window", func(_, v *yaml.Node) { nd.Restart.RestartWindow, _ = d.duration(v, what+": restart_window") }},
		{"_unstable_deploy", func(_, v *yaml.Node) { nd.Deploy = d.deploy(v, what) }},
	}, unsupportedNodeKeys)
	if keys == nil {
		return nd
	}
	if nd.ID == "" {
		p := nd.Pos
		if k := keys["id"]; k != nil {
			p = d.pos(k)
		}
		d.diags.hintf(p, "add id: NAME", "node id must not be empty")
	}
	if keys["path"] == nil && !anyKey(keys, unsupportedNodeKeys) {
		d.diags.hintf(nd.Pos, "add path: with the executable to run", "%s requires a path", what)
	}
	return nd
}

// nodePath decodes a node's path, which must be set.
func (d *yamlDecoder) nodePath(v *yaml.Node, what string) string {
	v = resolve(v)
	s, ok := d.str(v, what+": path")
	if !ok && !isNull(v) {
		return ""
	}
	if err := validNodePath(s); err != nil {
		hint := ""
		if s == "" {
			hint = "set it to the executable to run"
		}
		d.diags.hintf(d.pos(v), hint, "%s: %v", what, err)
		return ""
	}
	return s
}

func anyKey(keys map[string]*yaml.Node, set map[string]string) bool {
	for k := range keys {
		if _, ok := set[k]; ok {
			return true
		}
	}
	return false
}

func (d *yamlDecoder) args(v *yaml.Node, what string) []string {
	v = resolve(v)
	if v.Kind == yaml.SequenceNode {
		out, _ := d.stringList(v, what+": args")
		return out
	}
	s, ok := d.str(v, what+": args")
	if !ok {
		return nil
	}
	out, err := splitArgs(s)
	if err != nil {
		d.diags.hintf(d.pos(v), "or write args as a list", "%s: %v", what, err)
	}
	return out
}

func (d *yamlDecoder) outputs(v *yaml.Node, what string) []string {
	list, nodes := d.stringList(v, what+": outputs")
	seen := make(map[string]bool)
	var out []string
	for i, s := range list {
		if err := validDataID("output id", s); err != nil {
			d.diags.errorf(d.pos(nodes[i]), "%s: %v", what, err)
			continue
		}
		if seen[s] {
			d.diags.errorf(d.pos(nodes[i]), "%s: output %q is listed twice", what, s)
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

func (d *yamlDecoder) restartMode(v *yaml.Node, what string) RestartMode {
	s, ok := d.str(v, what+": restart_policy")
	if !ok {
		return ""
	}
	m, hint, err := parseRestartMode(s)
	if err != nil {
		d.diags.hintf(d.pos(v), hint, "%s: %v", what, err)
	}
	return m
}

func parseRestartMode(s string) (RestartMode, string, error) {
	modes := []string{string(RestartNever), string(RestartOnFailure), string(RestartAlways)}
	for _, m := range modes {
		if s == m {
			return RestartMode(s), "", nil
		}
	}
	hint := suggest(s, modes)
	if hint == "" {
		hint = "use never, on-failure or always"
	}
	return "", hint, fmt.Errorf("unknown restart_policy %q", s)
}

func parseQueuePolicy(s string) (QueuePolicy, string, error) {
	policies := []string{string(DropOldest), string(Backpressure)}
	for _, p := range policies {
		if s == p {
			return QueuePolicy(s), "", nil
		}
	}
	hint := suggest(s, policies)
	if hint == "" {
		hint = "use drop_oldest or backpressure"
	}
	return "", hint, fmt.Errorf("unknown queue_policy %q", s)
}

func parseDistribute(s string) (Distribute, string, error) {
	all := []string{string(DistributeLocal), string(DistributeSCP), string(DistributeHTTP)}
	for _, x := range all {
		if s == x {
			return Distribute(s), "", nil
		}
	}
	hint := suggest(s, all)
	if hint == "" {
		hint = "use local, scp or http"
	}
	return "", hint, fmt.Errorf("unknown distribute %q", s)
}

// MaxQueueSize bounds queue_size so a typo cannot reserve huge queues.
const MaxQueueSize = 1 << 20

func (d *yamlDecoder) inputs(v *yaml.Node, what string) []Input {
	v = resolve(v)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		d.typeError(v, what+": inputs", "a mapping of input id to source")
		return nil
	}
	var out []Input
	seen := make(map[string]bool)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := resolve(v.Content[i]), resolve(v.Content[i+1])
		id, ok := d.str(k, what+": input id")
		if !ok {
			continue
		}
		if err := validDataID("input id", id); err != nil {
			d.diags.errorf(d.pos(k), "%s: %v", what, err)
			continue
		}
		if seen[id] {
			d.diags.errorf(d.pos(k), "%s: input %q is set twice", what, id)
			continue
		}
		seen[id] = true
		if in, ok := d.input(id, val, what); ok {
			out = append(out, in)
		}
	}
	return out
}

func (d *yamlDecoder) input(id string, v *yaml.Node, what string) (Input, bool) {
	in := Input{ID: id, Pos: d.pos(v)}
	what = fmt.Sprintf("%s: input %q", what, id)
	var srcNode *yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		srcNode = v
	case yaml.MappingNode:
		d.mapping(v, what, []field{
			{"source", func(_, val *yaml.Node) { srcNode = resolve(val) }},
			{"queue_size", func(_, val *yaml.Node) { in.QueueSize, _ = d.integer(val, what+": queue_size", 1, MaxQueueSize) }},
			{"queue_policy", func(_, val *yaml.Node) {
				if s, ok := d.str(val, what+": queue_policy"); ok {
					p, hint, err := parseQueuePolicy(s)
					if err != nil {
						d.diags.hintf(d.pos(val), hint, "%s: %v", what, err)
					}
					in.QueuePolicy = p
				}
			}},
			{"input_timeout", func(_, val *yaml.Node) { in.InputTimeout, _ = d.duration(val, what+": input_timeout") }},
		}, nil)
		if srcNode == nil {
			d.diags.hintf(in.Pos, "add source: NODE/OUTPUT", "%s: missing source", what)
			return in, false
		}
	default:
		d.typeError(v, what, "a source such as camera/frames or a mapping with source:")
		return in, false
	}
	s, ok := d.str(srcNode, what+": source")
	if !ok {
		if isNull(srcNode) {
			d.diags.hintf(d.pos(srcNode), "write NODE/OUTPUT", "%s: source must not be empty", what)
		}
		return in, false
	}
	in.Pos = d.pos(srcNode)
	src, hint, err := parseSource(s)
	if err != nil {
		d.diags.hintf(in.Pos, hint, "%s: %v", what, err)
		return in, false
	}
	in.Source = src
	return in, true
}

func (d *yamlDecoder) deploy(v *yaml.Node, what string) Deploy {
	v = resolve(v)
	dep := Deploy{Pos: d.pos(v)}
	if isNull(v) {
		return dep
	}
	what += ": _unstable_deploy"
	var machinePos, labelsPos *Pos
	d.mapping(v, what, []field{
		{"machine", func(_, val *yaml.Node) {
			if s, ok := d.str(val, what+".machine"); ok {
				if err := ValidID("machine id", s); err != nil {
					d.diags.errorf(d.pos(val), "%s: %v", what, err)
				}
				dep.Machine = s
				p := d.pos(resolve(val))
				machinePos = &p
			}
		}},
		{"labels", func(key, val *yaml.Node) {
			dep.Labels = d.stringMap(val, what+".labels", func(k string) error { return ValidID("label key", k) }, ValidLabelValue)
			p := d.pos(key)
			labelsPos = &p
		}},
		{"distribute", func(_, val *yaml.Node) {
			if s, ok := d.str(val, what+".distribute"); ok {
				x, hint, err := parseDistribute(s)
				if err != nil {
					d.diags.hintf(d.pos(val), hint, "%s: %v", what, err)
				}
				dep.Distribute = x
			}
		}},
		{"working_dir", func(_, val *yaml.Node) { dep.WorkingDir = d.path(val, what+".working_dir") }},
	}, nil)
	switch {
	case machinePos != nil:
		dep.Pos = *machinePos
	case labelsPos != nil:
		dep.Pos = *labelsPos
	}
	return dep
}
