package command

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// StopCommand stops a running dataflow.
type StopCommand struct{ Meta *Meta }

func (c *StopCommand) Synopsis() string { return "Stop a running dataflow" }

func (c *StopCommand) Help() string {
	return `Usage: adora stop NAME|UUID [options]

  Stops a running dataflow on every daemon it runs on: each node gets a
  stop event, then SIGTERM after the grace duration, then SIGKILL after
  half of it again. Exit status 1 if any daemon could not stop its part
  (a daemon that is not connected stops it when it reconnects).

Options:

  --grace-duration D   Grace period before SIGTERM, e.g. 30s (default 10s)
  --force              Kill the nodes at once
` + coordFlagsHelp
}

func (c *StopCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("stop")
	cf.register(fs)
	grace := fs.Duration("grace-duration", 0, "")
	force := fs.Bool("force", false, "")
	fs.BoolVar(force, "f", false, "")
	if err := fs.Parse(reorderArgs(args, fs)); err != nil {
		c.Meta.Ui.Error(err.Error() + "\n\n" + c.Help())
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora stop needs the dataflow's name or uuid (see `adora list`)\n\n" + c.Help())
		return 1
	}
	if *grace < 0 {
		c.Meta.Ui.Error("--grace-duration must not be negative")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := cf.dial(ctx)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	defer cl.Close()
	rep, err := cl.Stop(ctx, fs.Arg(0), *grace, *force)
	if err != nil {
		c.Meta.Ui.Error("stop: " + err.Error())
		return 1
	}
	if rep.Error != "" {
		c.Meta.Ui.Error(fmt.Sprintf("dataflow `%s` (%s) stopped with problems: %s", rep.Name, rep.DataflowID, rep.Error))
		return 1
	}
	c.Meta.Ui.Output(fmt.Sprintf("dataflow `%s` (%s) stopped", rep.Name, rep.DataflowID))
	return 0
}
