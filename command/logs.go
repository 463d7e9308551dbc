package command

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/adora-rs/adora/runtime/proto"
)

// LogsCommand prints a dataflow's node logs.
type LogsCommand struct{ Meta *Meta }

func (c *LogsCommand) Synopsis() string { return "Show the logs of a dataflow or one of its nodes" }

func (c *LogsCommand) Help() string {
	return `Usage: adora logs DATAFLOW [NODE] [options]

  Prints the logs of a dataflow (name or uuid), or of one node, gathered
  from the daemons that run it. Lines from several nodes are prefixed with
  the node id.

Options:

  --follow, -f   Keep printing new lines until the dataflow ends or Ctrl-C
  --tail N       Only the last N lines of history (default: all)
` + coordFlagsHelp
}

func (c *LogsCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("logs")
	cf.register(fs)
	follow := fs.Bool("follow", false, "")
	fs.BoolVar(follow, "f", false, "")
	tail := fs.Int("tail", 0, "")
	if err := fs.Parse(reorderArgs(args, fs)); err != nil {
		c.Meta.Ui.Error(err.Error() + "\n\n" + c.Help())
		return 1
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		c.Meta.Ui.Error("adora logs needs a dataflow and optionally a node\n\n" + c.Help())
		return 1
	}
	if *tail < 0 {
		c.Meta.Ui.Error("--tail must not be negative")
		return 1
	}
	df, node := fs.Arg(0), fs.Arg(1)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := cf.dial(ctx)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	defer cl.Close()
	print := func(l proto.LogLine) { c.Meta.Ui.Output(formatLine(l, node == "")) }
	if !*follow {
		lines, err := cl.Logs(ctx, df, node, *tail)
		if err != nil {
			c.Meta.Ui.Error("logs: " + err.Error())
			return 1
		}
		for _, l := range lines {
			print(l)
		}
		return 0
	}
	end, err := cl.FollowLogs(ctx, df, node, *tail, print)
	if errors.Is(err, context.Canceled) {
		return 0 // Ctrl-C
	}
	if err != nil {
		c.Meta.Ui.Error("logs: " + err.Error())
		return 1
	}
	msg := "dataflow " + string(end.Status)
	if end.Error != "" {
		msg += ": " + end.Error
	}
	c.Meta.Ui.Info(msg)
	return 0
}
