package config

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TimerNode is the pseudo node that built-in timer inputs come from:
// "adora/timer/millis/100" is Source{Node: "adora", Output: "timer/millis/100"}.
const TimerNode = "adora"

// LoadDataflow reads and decodes a dataflow file: HCL when path ends in
// .hcl, YAML otherwise. See ParseDataflow.
func LoadDataflow(path string) (*Dataflow, Diagnostics) {
	return LoadDataflowOptions(path, Options{})
}

// LoadDataflowOptions is LoadDataflow with Options (HCL variables).
func LoadDataflowOptions(path string, opts Options) (*Dataflow, Diagnostics) {
	src, diags := readFile(path)
	if diags.HasErrors() {
		return nil, diags
	}
	return ParseDataflowOptions(src, path, opts)
}

// ParseDataflow decodes a dataflow from src; filename is used in positions
// and picks the syntax (".hcl": HCL, anything else: YAML). Defaults are
// applied (queue size 10, drop_oldest, restart never, distribute local),
// inputs are sorted by id and every input is checked against the nodes and
// outputs it names.
//
// The result is nil only when src cannot be parsed at all; otherwise the
// caller must check HasErrors before using it.
func ParseDataflow(src []byte, filename string) (*Dataflow, Diagnostics) {
	return ParseDataflowOptions(src, filename, Options{})
}

// ParseDataflowOptions is ParseDataflow with Options (HCL variables).
func ParseDataflowOptions(src []byte, filename string, opts Options) (*Dataflow, Diagnostics) {
	var df *Dataflow
	var diags Diagnostics
	var root Pos
	if IsHCL(filename) {
		df, root, diags = decodeDataflowHCL(src, filename, opts)
	} else {
		df, root, diags = decodeDataflowYAML(src, filename)
	}
	if df == nil {
		return nil, diags
	}
	df.Source = filename
	diags = append(diags, finishDataflow(df, root)...)
	return df, diags.capped()
}

// Node returns the node with id, or nil.
func (df *Dataflow) Node(id string) *Node {
	for i := range df.Nodes {
		if df.Nodes[i].ID == id {
			return &df.Nodes[i]
		}
	}
	return nil
}

// NodeEnv is the environment of node n: the dataflow's env merged with the
// node's, node keys winning. The result is a new map (nil when empty).
func (df *Dataflow) NodeEnv(n *Node) map[string]string {
	if len(df.Env) == 0 && len(n.Env) == 0 {
		return nil
	}
	out := make(map[string]string, len(df.Env)+len(n.Env))
	for k, v := range df.Env {
		out[k] = v
	}
	for k, v := range n.Env {
		out[k] = v
	}
	return out
}

// unsupportedNodeKeys are upstream node keys adora does not implement, with
// what to do instead.
var unsupportedNodeKeys = map[string]string{
	"operator":             "operators are not supported by adora; run the code as a node with path:",
	"operators":            "operators are not supported by adora; run the code as a node with path:",
	"module":               "modules are not supported by adora; list the nodes in the dataflow",
	"params":               "modules are not supported by adora; list the nodes in the dataflow",
	"ros2":                 "ROS 2 bridges are not supported by adora",
	"custom":               "the legacy custom: form is not supported; use path:, args: and env:",
	"output_types":         "type annotations are not supported by adora; remove them",
	"input_types":          "type annotations are not supported by adora; remove them",
	"output_metadata":      "type annotations are not supported by adora; remove them",
	"output_framing":       "output framing is not supported by adora; remove it",
	"pattern":              "service/action patterns are not supported by adora; remove it",
	"git":                  "git sources are not supported by adora; use build: to fetch code",
	"branch":               "git sources are not supported by adora; use build: to fetch code",
	"tag":                  "git sources are not supported by adora; use build: to fetch code",
	"rev":                  "git sources are not supported by adora; use build: to fetch code",
	"send_stdout_as":       "log routing is not supported by adora; remove it",
	"send_logs_as":         "log routing is not supported by adora; remove it",
	"min_log_level":        "log settings are not supported by adora; remove it",
	"max_log_size":         "log settings are not supported by adora; remove it",
	"max_rotated_files":    "log settings are not supported by adora; remove it",
	"health_check_timeout": "node health checks are not supported by adora; use input_timeout on inputs",
	"cpu_affinity":         "cpu_affinity is not supported by adora; remove it",
}

// unsupportedDataflowKeys are upstream root keys adora does not implement.
var unsupportedDataflowKeys = map[string]string{
	"health_check_interval": "remove it; adora checks input timeouts on its own schedule",
	"strict_types":          "type annotations are not supported by adora; remove it",
	"type_rules":            "type annotations are not supported by adora; remove it",
	"_unstable_debug":       "remove it",
	"communication":         "adora picks the transport itself; remove it",
	"_unstable_deploy":      "set _unstable_deploy on each node",
	"machines":              "this is a cluster key; pass the cluster file with -cluster or as a cluster file",
	"coordinator":           "this is a cluster key; pass the cluster file with -cluster or as a cluster file",
}

// validNodePath checks a node's path: set, without control characters.
func validNodePath(s string) error {
	if s == "" {
		return fmt.Errorf("path must not be empty")
	}
	return validPath(s)
}

// validNodeID is ValidID, and TimerNode is reserved for built-in sources.
func validNodeID(s string) error {
	if s == TimerNode {
		return fmt.Errorf("node id %q is reserved for built-in inputs such as adora/timer/millis/100", s)
	}
	return ValidID("node id", s)
}

// parseSource parses an input source "node/output" or a built-in
// "adora/timer/UNIT/VALUE". The error is the diagnostic summary; hint what
// to do.
func parseSource(s string) (src Source, hint string, err error) {
	node, output, ok := strings.Cut(s, "/")
	if !ok || node == "" || output == "" {
		return Source{}, `write NODE/OUTPUT or adora/timer/millis/N`, fmt.Errorf("input source %q must have the form NODE/OUTPUT", s)
	}
	if node == "dora" && strings.HasPrefix(output, "timer/") {
		return Source{}, fmt.Sprintf("did you mean %q?", "adora/"+output), fmt.Errorf("unknown input source %q", s)
	}
	if node != TimerNode {
		if err := ValidID("source node id", node); err != nil {
			return Source{}, "", fmt.Errorf("input source %q: %w", s, err)
		}
		if err := validDataID("source output id", output); err != nil {
			return Source{}, "", fmt.Errorf("input source %q: %w", s, err)
		}
		return Source{Node: node, Output: output}, "", nil
	}
	rest, ok := strings.CutPrefix(output, "timer/")
	if !ok {
		return Source{}, "the built-in source is adora/timer/UNIT/VALUE", fmt.Errorf("unknown adora input %q", s)
	}
	d, hint, err := parseTimer(rest)
	if err != nil {
		return Source{}, hint, fmt.Errorf("timer %q: %w", s, err)
	}
	return Source{Node: TimerNode, Output: output, Timer: d}, "", nil
}

// decimalRE is a plain decimal number such as 30, 2.5 or 1e-3.
var decimalRE = regexp.MustCompile(`^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)

func parseTimer(spec string) (time.Duration, string, error) {
	const hint = "write millis/100, secs/5 or hz/30"
	unit, value, ok := strings.Cut(spec, "/")
	if !ok || value == "" {
		return 0, hint, fmt.Errorf("timer input must specify unit and value")
	}
	switch unit {
	case "millis", "secs":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n <= 0 || value[0] < '0' || value[0] > '9' {
			return 0, "", fmt.Errorf("%s must be a positive integer (got %q)", unit, value)
		}
		scale := time.Millisecond
		if unit == "secs" {
			scale = time.Second
		}
		if n > math.MaxInt64/int64(scale) {
			return 0, "", fmt.Errorf("%s/%s is too long", unit, value)
		}
		return time.Duration(n) * scale, "", nil
	case "hz":
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || !decimalRE.MatchString(value) || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
			return 0, "", fmt.Errorf("hz must be a positive finite number (got %q)", value)
		}
		d := time.Duration(float64(time.Second) / f)
		if d <= 0 || float64(time.Second)/f >= math.MaxInt64 {
			return 0, "", fmt.Errorf("hz/%s is out of range", value)
		}
		return d, "", nil
	}
	return 0, suggest(unit, []string{"millis", "secs", "hz"}), fmt.Errorf("timer unit must be millis, secs or hz (got %q)", unit)
}

// splitArgs splits a command line the way a POSIX shell would, without
// expansions: whitespace separates words, single quotes are literal, double
// quotes allow \" \\ \$ and \` escapes, and a backslash outside quotes
// escapes the next character.
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 >= len(s) {
				return nil, fmt.Errorf("args end with a lone backslash")
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote in args")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, fmt.Errorf("unterminated double quote in args")
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

func validEnvKey(k string) error {
	if k == "" {
		return fmt.Errorf("an environment variable name must not be empty")
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("environment variable name %q must be letters, digits and '_', not starting with a digit", k)
		}
	}
	return nil
}

func validEnvValue(v string) error {
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("environment value contains a NUL byte")
	}
	return nil
}

// finishDataflow applies defaults and checks what spans several nodes:
// duplicate ids and the wiring of every input.
func finishDataflow(df *Dataflow, root Pos) Diagnostics {
	var diags Diagnostics
	if len(df.Nodes) == 0 {
		diags.hintf(root, "add nodes: with at least one node", "dataflow has no nodes")
	}
	if len(df.Env) == 0 {
		df.Env = nil
	}
	byID := make(map[string]*Node, len(df.Nodes))
	var ids []string
	for i := range df.Nodes {
		n := &df.Nodes[i]
		finishNode(n, &diags)
		if n.ID == "" {
			continue
		}
		if prev, dup := byID[n.ID]; dup {
			diags.hintf(n.Pos, "first defined at "+prev.Pos.String(), "duplicate node id %q", n.ID)
			continue
		}
		byID[n.ID] = n
		ids = append(ids, n.ID)
	}
	for i := range df.Nodes {
		n := &df.Nodes[i]
		for _, in := range n.Inputs {
			checkInput(n, in, byID, ids, &diags)
		}
	}
	return diags
}

func finishNode(n *Node, diags *Diagnostics) {
	if len(n.Args) == 0 {
		n.Args = nil
	}
	if len(n.Env) == 0 {
		n.Env = nil
	}
	if len(n.Outputs) == 0 {
		n.Outputs = nil
	}
	if len(n.Inputs) == 0 {
		n.Inputs = nil
	}
	if len(n.Deploy.Labels) == 0 {
		n.Deploy.Labels = nil
	}
	for i := range n.Inputs {
		if n.Inputs[i].QueueSize == 0 {
			n.Inputs[i].QueueSize = DefaultQueueSize
		}
		if n.Inputs[i].QueuePolicy == "" {
			n.Inputs[i].QueuePolicy = DropOldest
		}
	}
	sort.SliceStable(n.Inputs, func(a, b int) bool { return n.Inputs[a].ID < n.Inputs[b].ID })
	if n.Restart.Mode == "" {
		n.Restart.Mode = RestartNever
		r := n.Restart
		if r.MaxRestarts != 0 || r.RestartDelay != 0 || r.MaxRestartDelay != 0 || r.RestartWindow != 0 {
			diags.warnf(n.Pos, "node %q: restart limits have no effect without restart_policy: on-failure or always", n.ID)
		}
	}
	if n.Restart.MaxRestartDelay != 0 && n.Restart.MaxRestartDelay < n.Restart.RestartDelay {
		diags.warnf(n.Pos, "node %q: max_restart_delay %s is shorter than restart_delay %s", n.ID, n.Restart.MaxRestartDelay, n.Restart.RestartDelay)
	}
	if n.Deploy.Distribute == "" {
		n.Deploy.Distribute = DistributeLocal
	}
}

func checkInput(n *Node, in Input, byID map[string]*Node, ids []string, diags *Diagnostics) {
	if in.Source.IsTimer() || in.Source.Node == "" {
		return
	}
	src := byID[in.Source.Node]
	if src == nil {
		diags.hintf(in.Pos, suggest(in.Source.Node, ids), "input %q of node %q: source node %q does not exist", in.ID, n.ID, in.Source.Node)
		return
	}
	for _, o := range src.Outputs {
		if o == in.Source.Output {
			return
		}
	}
	hint := suggest(in.Source.Output, src.Outputs)
	if hint == "" {
		hint = fmt.Sprintf("add %q to the outputs of node %q", in.Source.Output, src.ID)
	}
	diags.hintf(in.Pos, hint, "input %q of node %q: node %q has no output %q", in.ID, n.ID, src.ID, in.Source.Output)
}
