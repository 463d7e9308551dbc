package command

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// StateCommand groups the state subcommands.
type StateCommand struct{ Meta *Meta }

func (c *StateCommand) Synopsis() string { return "Inspect the recorded state" }

func (c *StateCommand) Help() string {
	return `Usage: adora state <subcommand> [options]

  Reads the state adora recorded of what it deployed.

Subcommands:

  list         List every resource address in the state.
  show ADDR    Show one resource (machine.ID, dataflow.NAME or
               dataflow.NAME.node.ID) as JSON.
  push FILE    Store a state file in the backend -state selects (to move
               a state into the coordinator, or to store the
               adora.state.errored an apply left).

Options:

  -state PATH  State file (default ./adora.state), or
               coordinator://[HOST[:PORT]]/WORKSPACE (see adora plan).
`
}

func (c *StateCommand) Run([]string) int { return cli.RunResultHelp }

// StateListCommand lists the state's addresses.
type StateListCommand struct{ Meta *Meta }

func (c *StateListCommand) Synopsis() string { return "List the resources in the state" }
func (c *StateListCommand) Help() string {
	return "Usage: adora state list [-state PATH|coordinator://[HOST[:PORT]]/WORKSPACE] [ADDR_PREFIX...]\n\n  Lists every resource address in the state, sorted; with prefixes, only\n  those addresses at or below them."
}

func (c *StateListCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "state list", c.Help, false)
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	st, code := readState(c.Meta.Ui, &f)
	if st == nil {
		return code
	}
	for _, addr := range st.Addresses() {
		if fs.NArg() == 0 || hasAddrPrefix(addr, fs.Args()) {
			c.Meta.Ui.Output(addr)
		}
	}
	return 0
}

func hasAddrPrefix(addr string, prefixes []string) bool {
	for _, p := range prefixes {
		if addr == p || strings.HasPrefix(addr, p+".") {
			return true
		}
	}
	return false
}

// StateShowCommand prints one resource of the state.
type StateShowCommand struct{ Meta *Meta }

func (c *StateShowCommand) Synopsis() string { return "Show one resource of the state" }
func (c *StateShowCommand) Help() string {
	return "Usage: adora state show [-state PATH|coordinator://[HOST[:PORT]]/WORKSPACE] ADDR\n\n  Shows the recorded resource at ADDR (machine.ID, dataflow.NAME or\n  dataflow.NAME.node.ID) as JSON."
}

func (c *StateShowCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "state show", c.Help, false)
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora state show takes exactly one address, e.g. machine.bot-01")
		return 1
	}
	st, code := readState(c.Meta.Ui, &f)
	if st == nil {
		return code
	}
	v, err := stateResource(st, fs.Arg(0))
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	data, _ := json.MarshalIndent(v, "", "  ")
	c.Meta.Ui.Output(string(data))
	return 0
}

// stateResource finds the record at addr.
func stateResource(st *state.State, addr string) (any, error) {
	kind, rest, _ := strings.Cut(addr, ".")
	switch kind {
	case "machine":
		if m, ok := st.Machines[rest]; ok {
			return m, nil
		}
	case "dataflow":
		name, node, isNode := strings.Cut(rest, ".node.")
		d, ok := st.Dataflows[name]
		if ok && !isNode {
			return d, nil
		}
		if ok {
			if m, ok := d.Placements[node]; ok {
				return map[string]string{"dataflow": name, "node": node, "machine": m}, nil
			}
		}
	default:
		return nil, fmt.Errorf("address %q is not machine.ID, dataflow.NAME or dataflow.NAME.node.ID", addr)
	}
	return nil, fmt.Errorf("no resource %s in the state (adora state list shows what there is)", addr)
}

// uiOutput is the part of cli.Ui the state readers use.
type uiOutput interface {
	Output(string)
	Error(string)
}

// readState reads the state -state names (default ./adora.state, or
// coordinator://[HOST[:PORT]]/WORKSPACE); it prints why and returns a nil
// state and the exit code when there is none.
func readState(ui uiOutput, f *deployFlags) (*state.State, int) {
	b, name, err := standaloneStateBackend(f)
	if err != nil {
		ui.Error(err.Error())
		return nil, 1
	}
	st, err := b.Read(context.Background())
	if err != nil {
		ui.Error(err.Error())
		return nil, 1
	}
	if st == nil {
		ui.Output(fmt.Sprintf("No state at %s: nothing has been applied yet.", name))
		return nil, 0
	}
	return st, 0
}

func stateJSON(st *state.State) (string, error) {
	data, err := statefile.Encode(st)
	return strings.TrimRight(string(data), "\n"), err
}
