package command

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// ListCommand lists dataflows.
type ListCommand struct{ Meta *Meta }

func (c *ListCommand) Synopsis() string { return "List running dataflows" }

func (c *ListCommand) Help() string {
	return `Usage: adora list [options]

  Lists the dataflows the coordinator runs (pending, running, recovering,
  stopping), with where their nodes run.

Options:

  --all     Include finished dataflows the coordinator remembers
  --json    Print JSON (the coordinator's DataflowInfo records)
` + coordFlagsHelp
}

func (c *ListCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("list")
	cf.register(fs)
	all := fs.Bool("all", false, "")
	asJSON := fs.Bool("json", false, "")
	return queryCoordinator(c.Meta.Ui, fs, &cf, args, c.Help, func(ctx context.Context, cl *client.Client) int {
		flows, err := cl.List(ctx, *all)
		if err != nil {
			c.Meta.Ui.Error("list: " + err.Error())
			return 1
		}
		if *asJSON {
			b, _ := json.MarshalIndent(map[string]any{"dataflows": flows}, "", "  ")
			c.Meta.Ui.Output(string(b))
			return 0
		}
		if len(flows) == 0 {
			c.Meta.Ui.Output("No dataflows running.")
			return 0
		}
		c.Meta.Ui.Output(renderList(flows, time.Now()))
		return 0
	})
}

// queryCoordinator is the frame of the commands that take no argument and
// ask the coordinator once (list, cluster status): it parses args into fs
// (cf registered there), connects within a 30 s bound for the whole
// command and runs query with the client; its result is the exit code.
func queryCoordinator(ui cli.Ui, fs *flag.FlagSet, cf *coordFlags, args []string, help func() string, query func(context.Context, *client.Client) int) int {
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		ui.Error(parseProblem(err, fs) + "\n\n" + help())
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := cf.dial(ctx)
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	defer cl.Close()
	return query(ctx, cl)
}

func parseProblem(err error, fs *flag.FlagSet) string {
	if err != nil {
		return err.Error()
	}
	return "unexpected arguments: " + strings.Join(fs.Args(), " ")
}

// renderList renders dataflows as a table.
func renderList(flows []proto.DataflowInfo, now time.Time) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "UUID\tNAME\tSTATUS\tNODES\tMACHINES\tAGE")
	for _, f := range flows {
		machines := map[string]bool{}
		for _, p := range f.Placements {
			m := p.MachineID
			if m == "" {
				m = shortID(p.DaemonID)
			}
			machines[m] = true
		}
		var ms []string
		for m := range machines {
			ms = append(ms, m)
		}
		sort.Strings(ms)
		if len(ms) == 0 {
			ms = []string{"-"}
		}
		status := string(f.Status)
		failed := 0
		for _, n := range f.Nodes {
			if n.Status == proto.NodeFailed {
				failed++
			}
		}
		if failed > 0 && f.Status.Active() {
			status += fmt.Sprintf(" (%d node(s) failed)", failed)
		}
		if f.RestartedAs != "" {
			status += " (restarted as " + shortID(f.RestartedAs) + ")"
		}
		if f.Error != "" && !f.Status.Active() {
			status += " (" + truncateText(f.Error, 60) + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", f.ID, f.Name, status, len(f.Placements), strings.Join(ms, ","), ago(now, f.CreatedAt))
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ago renders how long before now t was, e.g. "2s ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
