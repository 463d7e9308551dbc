package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/adora-rs/adora/runtime/client"
)

// StopCommand stops a running dataflow.
type StopCommand struct{ Meta *Meta }

func (c *StopCommand) Synopsis() string { return "Stop a running dataflow" }

func (c *StopCommand) Help() string {
	return `Usage: adora stop [NAME|UUID] [options]

  Stops a running dataflow (the only one when none is named) on every
  daemon it runs on: each node gets a stop event, then SIGTERM after the
  grace duration, then SIGKILL after half of it again. Exit status 1 if any daemon could not stop its part
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
	if fs.NArg() > 1 {
		c.Meta.Ui.Error("adora stop takes one dataflow name or uuid\n\n" + c.Help())
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
	ref := fs.Arg(0)
	if ref == "" {
		if ref, err = onlyActive(ctx, cl); err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
	}
	rep, err := cl.Stop(ctx, ref, *grace, *force)
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

// onlyActive names the one active dataflow, or says why there is none.
func onlyActive(ctx context.Context, cl *client.Client) (string, error) {
	flows, err := cl.List(ctx, false)
	if err != nil {
		return "", err
	}
	switch len(flows) {
	case 0:
		return "", errors.New("no dataflow is running")
	case 1:
		return flows[0].ID, nil
	}
	names := make([]string, len(flows))
	for i, f := range flows {
		names[i] = f.Name
	}
	return "", fmt.Errorf("%d dataflows are running (%s); name the one to stop", len(flows), strings.Join(names, ", "))
}
