package command

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/adora-rs/adora/plan/planfile"
)

// ShowCommand renders a saved plan or the state.
type ShowCommand struct{ Meta *Meta }

func (c *ShowCommand) Synopsis() string { return "Show a saved plan or the recorded state" }

func (c *ShowCommand) Help() string {
	return `Usage: adora show [options] [PLANFILE]

  Renders a plan saved with adora plan -out, for people (default), as JSON
  (-json, format in docs/plans.md) or as Markdown for a pull-request comment
  (-markdown, always under GitHub's 65,536 characters). A stale plan is still
  shown, with a warning saying what changed. Without PLANFILE, shows the
  recorded state.

Options:

  -json        JSON output.
  -markdown    Markdown output.
  -no-color    No colours.
  -state PATH  State file (default ./adora.state), or
               coordinator://[HOST[:PORT]]/WORKSPACE (see adora plan).
`
}

func (c *ShowCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "show", c.Help, false)
	fs.BoolVar(&f.json, "json", false, "")
	fs.BoolVar(&f.markdown, "markdown", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if f.json && f.markdown {
		c.Meta.Ui.Error("give -json or -markdown, not both")
		return 1
	}
	switch fs.NArg() {
	case 0:
		return showState(c.Meta.Ui, &f)
	case 1:
	default:
		c.Meta.Ui.Error("adora show takes at most one plan file")
		return 1
	}
	p, err := planfile.Read(fs.Arg(0))
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	clusterPath := ""
	if p.Cluster != nil {
		clusterPath = p.Cluster.Source
	}
	if b, err := openStateBackend(f.statePath, clusterPath, p.Cluster); err == nil {
		if st, err := b.Read(context.Background()); err == nil {
			if err := planfile.Check(p, st, nil, ""); err != nil && !f.json && !f.markdown {
				c.Meta.Ui.Warn("Warning: " + err.Error() + "\n")
			}
		}
	}
	if err := f.print(c.Meta.Ui, p); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	return 0
}

// showState prints the state: a summary per resource, or the JSON file.
func showState(ui uiOutput, f *deployFlags) int {
	asJSON := f.json
	st, code := readState(ui, f)
	if st == nil {
		return code
	}
	if asJSON {
		data, err := stateJSON(st)
		if err != nil {
			ui.Error(err.Error())
			return 1
		}
		ui.Output(data)
		return 0
	}
	ui.Output(fmt.Sprintf("State lineage %s, serial %d, written by adora %s", st.Lineage, st.Serial, st.AdoraVersion))
	ui.Output(fmt.Sprintf("Coordinator: %s:%d", st.Coordinator.Addr, st.Coordinator.Port))
	ids := make([]string, 0, len(st.Machines))
	for id := range st.Machines {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := st.Machines[id]
		ui.Output(fmt.Sprintf("machine.%s: %s, %s daemon, adora %s (sha256 %.12s)", id, m.Host, m.DaemonMode, m.BinaryVersion, m.BinarySHA256))
	}
	names := make([]string, 0, len(st.Dataflows))
	for n := range st.Dataflows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := st.Dataflows[n]
		var nodes []string
		for node, m := range d.Placements {
			nodes = append(nodes, node+"@"+m)
		}
		sort.Strings(nodes)
		ui.Output(fmt.Sprintf("dataflow.%s: uuid %s, nodes %s", n, d.UUID, strings.Join(nodes, ", ")))
	}
	return 0
}
