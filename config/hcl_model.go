package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// An HCL cluster:
//
//	variable "robots" { default = 3 }
//	coordinator { addr = "10.0.0.1" }
//	ssh { user = "robot" }
//	machine "bot" {
//	  count  = var.robots
//	  id     = format("bot-%02d", count.index + 1)
//	  host   = "10.0.1.${count.index + 11}"
//	  labels = { fleet = "warehouse" }
//	}
//	dataflow "app" { path = "dataflow.hcl" }
//
// An HCL dataflow has env = {...} and node "ID" { ... deploy { ... } }
// blocks. machine and node blocks take count or for_each. A cluster's
// dataflow block may hold env and node blocks itself instead of a path.

func hclFileStart(file string) Pos { return Pos{File: file, Line: 1, Col: 1} }

func decodeClusterHCL(src []byte, file string, opts Options) (*Cluster, Pos, Diagnostics) {
	d, body := parseHCL(src, file)
	if body == nil {
		return nil, Pos{}, d.diags
	}
	d.setup(body, opts)
	c := &Cluster{}
	var coordinator, ssh *hclsyntax.Block
	once := func(dst **hclsyntax.Block, what string) func(*hclsyntax.Block) {
		return func(b *hclsyntax.Block) {
			if *dst != nil {
				d.diags.hintf(d.pos(b.TypeRange), "first set at "+d.pos((*dst).TypeRange).String(), "%s is set twice", what)
				return
			}
			*dst = b
			d.noLabels(b)
		}
	}
	d.body(body, "cluster", nil, map[string]func(*hclsyntax.Block){
		"variable":    nil,
		"locals":      nil,
		"coordinator": once(&coordinator, "coordinator"),
		"ssh":         once(&ssh, "ssh"),
		"machine":     func(b *hclsyntax.Block) { c.Machines = append(c.Machines, d.machines(b)...) },
		"dataflow":    func(b *hclsyntax.Block) { c.Dataflows = append(c.Dataflows, d.dataflowRef(b)) },
	}, map[string]string{"node": "node blocks belong in a dataflow file; list it with dataflow \"NAME\" { path = ... }"})
	root := hclFileStart(file)
	if coordinator == nil {
		d.diags.hintf(root, `add coordinator { addr = "IP-OR-HOSTNAME" }`, "cluster: missing coordinator")
	} else {
		d.coordinator(coordinator, &c.Coordinator)
	}
	if ssh != nil {
		d.sshDefaults(ssh, &c.SSH)
	}
	return c, root, d.diags
}

func (d *hclDecoder) noLabels(b *hclsyntax.Block) {
	if len(b.Labels) > 0 {
		d.diags.errorf(d.pos(b.LabelRanges[0]), "a %s block takes no name", b.Type)
	}
}

// mapAttr is attr for maps written literally: set also gets the position of
// each key, so diagnostics can point at the entry.
func (d *hclDecoder) mapAttr(ctx *hcl.EvalContext, set func(v cty.Value, p Pos, keys map[string]Pos)) func(*hclsyntax.Attribute) {
	return func(a *hclsyntax.Attribute) {
		if v, ok := d.value(a.Expr, ctx); ok && !v.IsNull() {
			set(v, d.pos(a.Expr.Range()), d.itemPositions(a.Expr, ctx, false))
		}
	}
}

// itemPositions maps each key of a literal object expression to the
// position of its key (or of its value, when values is set). Keys that
// cannot be evaluated are left out.
func (d *hclDecoder) itemPositions(expr hclsyntax.Expression, ctx *hcl.EvalContext, values bool) map[string]Pos {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	out := make(map[string]Pos, len(obj.Items))
	for _, item := range obj.Items {
		k, diags := item.KeyExpr.Value(ctx)
		if diags.HasErrors() || !k.IsKnown() || k.IsNull() || k.Type() != cty.String {
			continue
		}
		r := item.KeyExpr.Range()
		if values {
			r = item.ValueExpr.Range()
		}
		out[k.AsString()] = d.pos(r)
	}
	return out
}

// attr evaluates an attribute and hands its value and position to set.
func (d *hclDecoder) attr(ctx *hcl.EvalContext, set func(v cty.Value, p Pos)) func(*hclsyntax.Attribute) {
	return func(a *hclsyntax.Attribute) {
		if v, ok := d.value(a.Expr, ctx); ok && !v.IsNull() {
			set(v, d.pos(a.Expr.Range()))
		}
	}
}

func (d *hclDecoder) str(ctx *hcl.EvalContext, what string, dst *string, check func(string) error) func(*hclsyntax.Attribute) {
	return d.attr(ctx, func(v cty.Value, p Pos) {
		s, ok := d.toStr(v, p, what)
		if !ok {
			return
		}
		if check != nil {
			if err := check(s); err != nil {
				d.diags.errorf(p, "%s: %v", what, err)
				return
			}
		}
		*dst = s
	})
}

func (d *hclDecoder) port(ctx *hcl.EvalContext, what string, dst *int) func(*hclsyntax.Attribute) {
	return d.attr(ctx, func(v cty.Value, p Pos) { *dst, _ = d.toInt(v, p, what, 1, 65535) })
}

func (d *hclDecoder) coordinator(b *hclsyntax.Block, co *Coordinator) {
	co.Pos = d.pos(b.TypeRange)
	d.body(b.Body, "coordinator", map[string]func(*hclsyntax.Attribute){
		"addr": d.attr(d.ctx, func(v cty.Value, p Pos) {
			if s, ok := d.toStr(v, p, "coordinator.addr"); ok {
				if err := validHost("coordinator.addr", s); err != nil {
					d.diags.errorf(p, "%v", err)
				}
				co.Addr = s
				co.Pos = p
			}
		}),
		"port": d.port(d.ctx, "coordinator.port", &co.Port),
	}, nil, nil)
	if co.Addr == "" {
		d.diags.hintf(co.Pos, "set addr to the IP address or host name machines use to reach the coordinator", "coordinator: missing addr")
	}
}

func (d *hclDecoder) sshDefaults(b *hclsyntax.Block, s *SSHDefaults) {
	d.body(b.Body, "ssh", map[string]func(*hclsyntax.Attribute){
		"user":          d.str(d.ctx, "ssh.user", &s.User, validUser),
		"port":          d.port(d.ctx, "ssh.port", &s.Port),
		"identity_file": d.str(d.ctx, "ssh.identity_file", &s.IdentityFile, validPath),
	}, nil, nil)
}

func (d *hclDecoder) label(b *hclsyntax.Block) (string, bool) {
	if len(b.Labels) != 1 {
		d.diags.hintf(d.pos(b.DefRange()), fmt.Sprintf(`write %s "ID" { ... }`, b.Type), "a %s block needs exactly one name", b.Type)
		return "", false
	}
	return b.Labels[0], true
}

func (d *hclDecoder) machines(b *hclsyntax.Block) []Machine {
	label, ok := d.label(b)
	if !ok {
		return nil
	}
	var out []Machine
	for _, inst := range d.expand(b, label) {
		out = append(out, d.machine(b, inst))
	}
	return out
}

func (d *hclDecoder) machine(b *hclsyntax.Block, inst instance) Machine {
	m := Machine{ID: inst.id, Pos: d.pos(b.DefRange())}
	ctx := inst.ctx
	var host bool
	d.body(b.Body, fmt.Sprintf("machine %q", inst.id), map[string]func(*hclsyntax.Attribute){
		"count":    nil,
		"for_each": nil,
		"id":       d.str(ctx, "machine id", &m.ID, nil),
		"host": func(a *hclsyntax.Attribute) {
			host = true
			d.str(ctx, "host", &m.Host, func(s string) error { return validHost("host", s) })(a)
		},
		"user":          d.str(ctx, "user", &m.User, validUser),
		"port":          d.port(ctx, "port", &m.Port),
		"identity_file": d.str(ctx, "identity_file", &m.IdentityFile, validPath),
		"labels": d.mapAttr(ctx, func(v cty.Value, p Pos, at map[string]Pos) {
			m.Labels = d.toStringMap(v, p, at, "labels", func(k string) error { return ValidID("label key", k) }, ValidLabelValue)
		}),
		"local": d.attr(ctx, func(v cty.Value, p Pos) { m.Local, _ = d.toBool(v, p, "local") }),
		"run_as": d.attr(ctx, func(v cty.Value, p Pos) {
			if s, ok := d.toStr(v, p, "run_as"); ok {
				m.RunAs = d.diags.runAs(s, p, fmt.Sprintf("machine %q", inst.id))
			}
		}),
	}, nil, nil)
	if err := ValidID("machine id", m.ID); err != nil {
		p := d.pos(b.LabelRanges[0])
		if a := b.Body.Attributes["id"]; a != nil {
			p = d.pos(a.Expr.Range())
		}
		d.diags.errorf(p, "%v", err)
	}
	if !host && m.Local {
		m.Host = LocalHost
	} else if !host {
		d.diags.hintf(m.Pos, `add host = "IP-OR-HOSTNAME"`, "machine %q host must not be empty", m.ID)
	}
	return m
}

func (d *hclDecoder) dataflowRef(b *hclsyntax.Block) DataflowRef {
	r := DataflowRef{Pos: d.pos(b.DefRange())}
	name, ok := d.label(b)
	if !ok {
		return r
	}
	if err := ValidID("dataflow name", name); err != nil {
		d.diags.errorf(d.pos(b.LabelRanges[0]), "%v", err)
	}
	r.Name = name
	d.body(b.Body, fmt.Sprintf("dataflow %q", name), map[string]func(*hclsyntax.Attribute){
		"path": d.str(d.ctx, "dataflow path", &r.Path, validPath),
		"env": d.mapAttr(d.ctx, func(v cty.Value, p Pos, at map[string]Pos) {
			r.inline().Env = d.toStringMap(v, p, at, "env", validEnvKey, validEnvValue)
		}),
	}, map[string]func(*hclsyntax.Block){
		"node": func(nb *hclsyntax.Block) { r.inline().Nodes = append(r.inline().Nodes, d.nodes(nb)...) },
	}, nil)
	d.diags = append(d.diags, finishRef(&r, d.file, b.Body.Attributes["path"] != nil)...)
	return r
}

// ---- dataflow ----

func decodeDataflowHCL(src []byte, file string, opts Options) (*Dataflow, Pos, Diagnostics) {
	d, body := parseHCL(src, file)
	if body == nil {
		return nil, Pos{}, d.diags
	}
	d.setup(body, opts)
	df := &Dataflow{}
	unsupported := map[string]string{
		"machine":     "machine blocks belong in the cluster file",
		"coordinator": "the coordinator belongs in the cluster file",
	}
	for k, v := range unsupportedDataflowKeys {
		if _, ok := unsupported[k]; !ok {
			unsupported[k] = v
		}
	}
	d.body(body, "dataflow", map[string]func(*hclsyntax.Attribute){
		"env": d.mapAttr(d.ctx, func(v cty.Value, p Pos, at map[string]Pos) {
			df.Env = d.toStringMap(v, p, at, "env", validEnvKey, validEnvValue)
		}),
	}, map[string]func(*hclsyntax.Block){
		"variable": nil,
		"locals":   nil,
		"node":     func(b *hclsyntax.Block) { df.Nodes = append(df.Nodes, d.nodes(b)...) },
	}, unsupported)
	return df, hclFileStart(file), d.diags
}

func (d *hclDecoder) nodes(b *hclsyntax.Block) []Node {
	label, ok := d.label(b)
	if !ok {
		return nil
	}
	var out []Node
	for _, inst := range d.expand(b, label) {
		out = append(out, d.node(b, inst))
	}
	return out
}

func (d *hclDecoder) node(b *hclsyntax.Block, inst instance) Node {
	n := Node{ID: inst.id, Pos: d.pos(b.DefRange())}
	ctx := inst.ctx
	if a := b.Body.Attributes["id"]; a != nil {
		d.str(ctx, "node id", &n.ID, nil)(a)
	}
	idPos := d.pos(b.LabelRanges[0])
	if a := b.Body.Attributes["id"]; a != nil {
		idPos = d.pos(a.Expr.Range())
	}
	if err := validNodeID(n.ID); err != nil {
		d.diags.errorf(idPos, "%v", err)
	}
	what := fmt.Sprintf("node %q", n.ID)
	restart := func(dst *time.Duration, name string) func(*hclsyntax.Attribute) {
		return d.attr(ctx, func(v cty.Value, p Pos) { *dst, _ = d.toDuration(v, p, what+": "+name) })
	}
	var deploy *hclsyntax.Block
	deployBlock := func(blk *hclsyntax.Block) {
		if deploy != nil {
			d.diags.errorf(d.pos(blk.TypeRange), "%s: deploy is set twice", what)
			return
		}
		deploy = blk
		d.noLabels(blk)
	}
	d.body(b.Body, what, map[string]func(*hclsyntax.Attribute){
		"count":       nil,
		"for_each":    nil,
		"id":          nil,
		"name":        d.str(ctx, what+": name", &n.Name, nil),
		"description": d.str(ctx, what+": description", &n.Description, nil),
		"path":        d.str(ctx, what+": path", &n.Path, validNodePath),
		"build":       d.str(ctx, what+": build", &n.Build, nil),
		"args":        d.attr(ctx, func(v cty.Value, p Pos) { n.Args = d.args(v, p, what) }),
		"env": d.mapAttr(ctx, func(v cty.Value, p Pos, at map[string]Pos) {
			n.Env = d.toStringMap(v, p, at, "env", validEnvKey, validEnvValue)
		}),
		"outputs": d.attr(ctx, func(v cty.Value, p Pos) { n.Outputs = d.outputs(v, p, what) }),
		"inputs":  func(a *hclsyntax.Attribute) { n.Inputs = d.inputs(a, ctx, what) },
		"restart_policy": d.attr(ctx, func(v cty.Value, p Pos) {
			if s, ok := d.toStr(v, p, what+": restart_policy"); ok {
				m, hint, err := parseRestartMode(s)
				if err != nil {
					d.diags.hintf(p, hint, "%s: %v", what, err)
				}
				n.Restart.Mode = m
			}
		}),
		"max_restarts": d.attr(ctx, func(v cty.Value, p Pos) {
			n.Restart.MaxRestarts, _ = d.toInt(v, p, what+": max_restarts", 0, 1<<31-1)
		}),
		"restart_delay":     restart(&n.Restart.RestartDelay, "restart_delay"),
		"max_restart_delay": restart(&n.Restart.MaxRestartDelay, "max_restart_delay"),
		"restart_window":    restart(&n.Restart.RestartWindow, "restart_window"),
	}, map[string]func(*hclsyntax.Block){
		"deploy":           deployBlock,
		"_unstable_deploy": deployBlock,
	}, unsupportedNodeKeys)
	if deploy != nil {
		n.Deploy = d.deploy(deploy, ctx, what)
	}
	if b.Body.Attributes["path"] == nil {
		d.diags.hintf(n.Pos, `add path = "EXECUTABLE"`, "%s requires a path", what)
	}
	return n
}

func (d *hclDecoder) args(v cty.Value, p Pos, what string) []string {
	if v.Type() == cty.String {
		out, err := splitArgs(v.AsString())
		if err != nil {
			d.diags.hintf(p, "or write args as a list", "%s: %v", what, err)
		}
		return out
	}
	return d.toStringList(v, p, what+": args")
}

func (d *hclDecoder) outputs(v cty.Value, p Pos, what string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, s := range d.toStringList(v, p, what+": outputs") {
		if err := validDataID("output id", s); err != nil {
			d.diags.errorf(p, "%s: %v", what, err)
			continue
		}
		if seen[s] {
			d.diags.errorf(p, "%s: output %q is listed twice", what, s)
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// inputs decodes inputs = { id = "node/output", id2 = { source = ..., ... } }.
// Positions point at each entry's value when the map is written literally.
func (d *hclDecoder) inputs(a *hclsyntax.Attribute, ctx *hcl.EvalContext, what string) []Input {
	v, ok := d.value(a.Expr, ctx)
	if !ok || v.IsNull() {
		return nil
	}
	p := d.pos(a.Expr.Range())
	ty := v.Type()
	if !ty.IsMapType() && !ty.IsObjectType() {
		d.diags.errorf(p, "%s: inputs must be a map of input id to source, not %s", what, ty.FriendlyName())
		return nil
	}
	itemPos := d.itemPositions(a.Expr, ctx, true)
	var out []Input
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		id := k.AsString()
		ip, ok := itemPos[id]
		if !ok {
			ip = p
		}
		if err := validDataID("input id", id); err != nil {
			d.diags.errorf(ip, "%s: %v", what, err)
			continue
		}
		if in, ok := d.input(id, val, ip, what); ok {
			out = append(out, in)
		}
	}
	return out
}

func (d *hclDecoder) input(id string, v cty.Value, p Pos, what string) (Input, bool) {
	in := Input{ID: id, Pos: p}
	what = fmt.Sprintf("%s: input %q", what, id)
	var src string
	switch {
	case v.IsNull():
		d.diags.hintf(p, "write NODE/OUTPUT", "%s: source must not be empty", what)
		return in, false
	case v.Type().IsObjectType() || v.Type().IsMapType():
		for it := v.ElementIterator(); it.Next(); {
			k, val := it.Element()
			if val.IsNull() {
				continue
			}
			switch key := k.AsString(); key {
			case "source":
				src, _ = d.toStr(val, p, what+": source")
			case "queue_size":
				in.QueueSize, _ = d.toInt(val, p, what+": queue_size", 1, MaxQueueSize)
			case "queue_policy":
				if s, ok := d.toStr(val, p, what+": queue_policy"); ok {
					pol, hint, err := parseQueuePolicy(s)
					if err != nil {
						d.diags.hintf(p, hint, "%s: %v", what, err)
					}
					in.QueuePolicy = pol
				}
			case "input_timeout":
				in.InputTimeout, _ = d.toDuration(val, p, what+": input_timeout")
			default:
				d.diags.hintf(p, suggest(key, []string{"input_timeout", "queue_policy", "queue_size", "source"}), "%s: unknown field %q", what, key)
			}
		}
		if src == "" {
			d.diags.hintf(p, `add source = "NODE/OUTPUT"`, "%s: missing source", what)
			return in, false
		}
	default:
		var ok bool
		if src, ok = d.toStr(v, p, what); !ok {
			return in, false
		}
	}
	s, hint, err := parseSource(src)
	if err != nil {
		d.diags.hintf(p, hint, "%s: %v", what, err)
		return in, false
	}
	in.Source = s
	return in, true
}

func (d *hclDecoder) deploy(b *hclsyntax.Block, ctx *hcl.EvalContext, what string) Deploy {
	dep := Deploy{Pos: d.pos(b.TypeRange)}
	what += ": deploy"
	var machinePos, labelsPos *Pos
	d.body(b.Body, what, map[string]func(*hclsyntax.Attribute){
		"machine": d.attr(ctx, func(v cty.Value, p Pos) {
			if s, ok := d.toStr(v, p, what+".machine"); ok {
				if err := ValidID("machine id", s); err != nil {
					d.diags.errorf(p, "%s: %v", what, err)
				}
				dep.Machine = s
				machinePos = &p
			}
		}),
		"labels": d.mapAttr(ctx, func(v cty.Value, p Pos, at map[string]Pos) {
			dep.Labels = d.toStringMap(v, p, at, "labels", func(k string) error { return ValidID("label key", k) }, ValidLabelValue)
			labelsPos = &p
		}),
		"distribute": d.attr(ctx, func(v cty.Value, p Pos) {
			if s, ok := d.toStr(v, p, what+".distribute"); ok {
				x, hint, err := parseDistribute(s)
				if err != nil {
					d.diags.hintf(p, hint, "%s: %v", what, err)
				}
				dep.Distribute = x
			}
		}),
		"working_dir": d.str(ctx, what+".working_dir", &dep.WorkingDir, validPath),
	}, nil, nil)
	switch {
	case machinePos != nil:
		dep.Pos = *machinePos
	case labelsPos != nil:
		dep.Pos = *labelsPos
	}
	return dep
}
