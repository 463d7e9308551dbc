package command

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/posener/complete"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/placement"
)

// GraphCommand prints a dataflow as a Mermaid or Graphviz graph.
type GraphCommand struct{ Meta *Meta }

func (c *GraphCommand) Synopsis() string { return "Print a dataflow as a Mermaid or DOT graph" }

func (c *GraphCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora graph [options] DATAFLOW

  DATAFLOW is a dataflow file, or with -cluster the name of a dataflow the
  cluster file lists (including dataflows written inline in it).

  Prints the dataflow as a graph: one box per node, one arrow per input,
  labelled with the output (and the input id when it differs), and a circle
  per built-in timer.

  With -cluster, nodes are grouped by the machine placement assigns them to
  (machine > labels > first machine), so the graph shows what runs where;
  arrows between machines (messages that cross the network) are dashed.

Options:

  -cluster FILE    Group nodes by machine of this cluster file.
  -format FORMAT   mermaid (default), dot, or json (format_version 1:
                   machines with their nodes, timers, edges).
  -var NAME=VALUE  Set an HCL variable; repeatable.
`)
}

func (c *GraphCommand) Run(args []string) int {
	vars := cfgVars{}
	var clusterFile, format string
	fs := flag.NewFlagSet("graph", flag.ContinueOnError)
	fs.SetOutput(&cfgErrWriter{ui: c.Meta.Ui})
	fs.StringVar(&clusterFile, "cluster", "", "cluster file")
	fs.StringVar(&format, "format", "mermaid", "mermaid or dot")
	fs.Var(vars, "var", "HCL variable NAME=VALUE")
	fs.Usage = func() { c.Meta.Ui.Error(c.Help()) }
	files, err := cfgParseArgs(fs, args)
	if err != nil {
		return 1
	}
	if len(files) != 1 {
		c.Meta.Ui.Error("adora graph: want exactly one DATAFLOW file\n\n" + c.Help())
		return 1
	}
	if format != "mermaid" && format != "dot" && format != "json" {
		c.Meta.Ui.Error(fmt.Sprintf("adora graph: unknown -format %q; use mermaid, dot or json", format))
		return 1
	}
	g, ok := c.load(files[0], clusterFile, config.Options{Vars: vars})
	if !ok {
		return 1
	}
	switch format {
	case "dot":
		c.Meta.Ui.Output(g.dot())
	case "json":
		b, err := json.MarshalIndent(g.json(), "", "  ")
		if err != nil {
			c.Meta.Ui.Error(fmt.Sprintf("adora graph: %v", err))
			return 1
		}
		c.Meta.Ui.Output(string(b))
	default:
		c.Meta.Ui.Output(g.mermaid())
	}
	return 0
}

func (c *GraphCommand) load(file, clusterFile string, opts config.Options) (*dataflowGraph, bool) {
	if clusterFile == "" {
		df, diags := config.LoadDataflowOptions(file, opts)
		cfgPrintDiagnostics(c.Meta, diags)
		if diags.HasErrors() {
			return nil, false
		}
		return newDataflowGraph(graphName(file), df, nil), true
	}
	if _, err := os.Stat(file); os.IsNotExist(err) {
		return c.loadByName(file, clusterFile, opts)
	}
	opts.AllowUndeclaredVars = true
	opts.Declared = make(map[string]bool)
	cl, diags := config.LoadClusterOptions(clusterFile, opts)
	df, ds := config.LoadDataflowOptions(file, opts)
	diags = append(diags, ds...)
	for _, n := range opts.UndeclaredVars() {
		diags = append(diags, config.Diagnostic{Summary: fmt.Sprintf("-var %s: neither file declares variable %q", n, n)})
	}
	if cl != nil && df != nil && !diags.HasErrors() {
		diags = append(diags, config.CheckPlacement(cl, df)...)
	}
	cfgPrintDiagnostics(c.Meta, diags)
	if diags.HasErrors() {
		return nil, false
	}
	decisions, err := placement.Place(df.Nodes, placement.DaemonsFromCluster(cl))
	if err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("adora graph: placement: %v", err))
		return nil, false
	}
	return newDataflowGraph(graphName(file), df, decisions), true
}

// loadByName graphs a dataflow the cluster file lists (by path or inline).
func (c *GraphCommand) loadByName(name, clusterFile string, opts config.Options) (*dataflowGraph, bool) {
	cl, dfs, diags := config.LoadProjectOptions(clusterFile, opts)
	cfgPrintDiagnostics(c.Meta, diags)
	if diags.HasErrors() || cl == nil {
		return nil, false
	}
	df := dfs[name]
	if df == nil {
		c.Meta.Ui.Error(fmt.Sprintf("adora graph: %s is neither a file nor a dataflow of %s (dataflows: %s)",
			name, clusterFile, strings.Join(config.DataflowNames(dfs), ", ")))
		return nil, false
	}
	decisions, err := placement.Place(df.Nodes, placement.DaemonsFromCluster(cl))
	if err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("adora graph: placement: %v", err))
		return nil, false
	}
	return newDataflowGraph(name, df, decisions), true
}

func graphName(file string) string {
	base := filepath.Base(file)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// dataflowGraph is a dataflow prepared for rendering: nodes grouped by
// machine (one group "" without a cluster), timers and edges, all in a
// deterministic order.
type dataflowGraph struct {
	name   string
	groups []graphGroup
	timers []string // timer outputs such as "timer/millis/100", sorted
	edges  []graphEdge
}

type graphGroup struct {
	machine string
	nodes   []string
}

type graphEdge struct {
	from, to, label string
	output, input   string // for the JSON form
	timer           bool
	// cross: the nodes run on different machines, so messages cross the
	// network (drawn dashed).
	cross bool
}

func newDataflowGraph(name string, df *config.Dataflow, decisions []placement.Decision) *dataflowGraph {
	g := &dataflowGraph{name: name}
	machineOf := make(map[string]string, len(decisions))
	for _, d := range decisions {
		machineOf[d.Node] = d.MachineID
	}
	byMachine := make(map[string]*graphGroup)
	var order []string
	timers := make(map[string]bool)
	for _, n := range df.Nodes {
		m := machineOf[n.ID]
		grp := byMachine[m]
		if grp == nil {
			grp = &graphGroup{machine: m}
			byMachine[m] = grp
			order = append(order, m)
		}
		grp.nodes = append(grp.nodes, n.ID)
		for _, in := range n.Inputs {
			label := in.Source.Output
			if in.ID != in.Source.Output {
				label += " → " + in.ID
			}
			if in.Source.IsTimer() {
				timers[in.Source.Output] = true
				g.edges = append(g.edges, graphEdge{from: in.Source.Output, to: n.ID, label: in.ID, timer: true,
					output: in.Source.String(), input: in.ID})
				continue
			}
			from, to := machineOf[in.Source.Node], machineOf[n.ID]
			g.edges = append(g.edges, graphEdge{from: in.Source.Node, to: n.ID, label: label, cross: from != to,
				output: in.Source.Output, input: in.ID})
		}
	}
	sort.Strings(order)
	for _, m := range order {
		g.groups = append(g.groups, *byMachine[m])
	}
	for t := range timers {
		g.timers = append(g.timers, t)
	}
	sort.Strings(g.timers)
	return g
}

// mermaid renders g as a Mermaid flowchart. Mermaid ids are generated (n0,
// t0, m0) so node names never clash with Mermaid keywords.
func (g *dataflowGraph) mermaid() string {
	var b strings.Builder
	ids := make(map[string]string)
	fmt.Fprintf(&b, "%%%% dataflow %s\nflowchart LR\n", g.name)
	for i, t := range g.timers {
		id := fmt.Sprintf("t%d", i)
		ids["timer:"+t] = id
		fmt.Fprintf(&b, "  %s((%q))\n", id, mermaidText(t))
	}
	n := 0
	for i, grp := range g.groups {
		indent := "  "
		if grp.machine != "" {
			fmt.Fprintf(&b, "  subgraph m%d[%q]\n", i, mermaidText(grp.machine))
			indent = "    "
		}
		for _, node := range grp.nodes {
			id := fmt.Sprintf("n%d", n)
			n++
			ids[node] = id
			fmt.Fprintf(&b, "%s%s[%q]\n", indent, id, mermaidText(node))
		}
		if grp.machine != "" {
			b.WriteString("  end\n")
		}
	}
	for _, e := range g.edges {
		from := ids[e.from]
		if e.timer {
			from = ids["timer:"+e.from]
		}
		arrow := "-->"
		if e.cross {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s|%q| %s\n", from, arrow, mermaidText(e.label), ids[e.to])
	}
	return strings.TrimRight(b.String(), "\n")
}

// mermaidText makes s safe inside a quoted Mermaid label.
func mermaidText(s string) string {
	return strings.ReplaceAll(s, `"`, "#quot;")
}

// dot renders g in Graphviz DOT, one cluster subgraph per machine.
func (g *dataflowGraph) dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n  rankdir=LR;\n  node [shape=box];\n", dotID(g.name))
	for _, t := range g.timers {
		fmt.Fprintf(&b, "  %s [shape=circle, label=%s];\n", dotID("adora/"+t), dotID(t))
	}
	for i, grp := range g.groups {
		indent := "  "
		if grp.machine != "" {
			fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", i, dotID(grp.machine))
			indent = "    "
		}
		for _, node := range grp.nodes {
			fmt.Fprintf(&b, "%s%s;\n", indent, dotID(node))
		}
		if grp.machine != "" {
			b.WriteString("  }\n")
		}
	}
	for _, e := range g.edges {
		from := e.from
		if e.timer {
			from = "adora/" + e.from
		}
		style := ""
		if e.cross {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%s%s];\n", dotID(from), dotID(e.to), dotID(e.label), style)
	}
	b.WriteString("}")
	return b.String()
}

// graphJSON is the -format json output. Bump FormatVersion on incompatible
// changes.
type graphJSON struct {
	FormatVersion int             `json:"format_version"`
	Dataflow      string          `json:"dataflow"`
	Machines      []graphJSONHost `json:"machines"` // machine "" holds nodes without a placement
	Timers        []string        `json:"timers"`
	Edges         []graphJSONEdge `json:"edges"`
}

type graphJSONHost struct {
	Machine string   `json:"machine"`
	Nodes   []string `json:"nodes"`
}

type graphJSONEdge struct {
	From         string `json:"from"` // node id, or "adora" for a timer (output timer/millis/100)
	Output       string `json:"output"`
	To           string `json:"to"`
	Input        string `json:"input"`
	Timer        bool   `json:"timer,omitempty"`
	CrossMachine bool   `json:"cross_machine,omitempty"`
}

func (g *dataflowGraph) json() graphJSON {
	out := graphJSON{FormatVersion: 1, Dataflow: g.name, Machines: []graphJSONHost{}, Timers: []string{}, Edges: []graphJSONEdge{}}
	for _, grp := range g.groups {
		out.Machines = append(out.Machines, graphJSONHost{Machine: grp.machine, Nodes: grp.nodes})
	}
	for _, t := range g.timers {
		out.Timers = append(out.Timers, "adora/"+t)
	}
	for _, e := range g.edges {
		from, output := e.from, e.output
		if e.timer {
			from, output = config.TimerNode, e.from
		}
		out.Edges = append(out.Edges, graphJSONEdge{From: from, Output: output, To: e.to, Input: e.input, Timer: e.timer, CrossMachine: e.cross})
	}
	return out
}

// dotID quotes s as a DOT string.
func dotID(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// AutocompleteArgs completes dataflow files.
func (c *GraphCommand) AutocompleteArgs() complete.Predictor { return cfgFilePredictor }

// AutocompleteFlags lists graph's flags.
func (c *GraphCommand) AutocompleteFlags() complete.Flags {
	return complete.Flags{
		"-cluster": cfgFilePredictor,
		"-format":  complete.PredictSet("mermaid", "dot", "json"),
		"-var":     complete.PredictAnything,
	}
}
