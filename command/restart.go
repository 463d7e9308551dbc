package command

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/adora-rs/adora/config"
)

// RestartCommand restarts a dataflow from its stored descriptor. It backs
// both `adora restart` and `adora cluster restart`.
type RestartCommand struct {
	Meta    *Meta
	Cluster bool // registered as "cluster restart"
}

func (c *RestartCommand) name() string {
	if c.Cluster {
		return "cluster restart"
	}
	return "restart"
}

func (c *RestartCommand) Synopsis() string { return "Restart a dataflow from its stored descriptor" }

func (c *RestartCommand) Help() string {
	usage := "adora restart NAME|UUID [options]"
	extra := ""
	if c.Cluster {
		usage = "adora cluster restart [CLUSTER_FILE] NAME|UUID [options]"
		extra = `
  With CLUSTER_FILE, the coordinator address and port come from it (flags
  still win).
`
	}
	return "Usage: " + usage + `

  Stops a dataflow (by name or uuid) and starts it again from the
  descriptor the coordinator stored, under a new uuid, with the same name
  and working directory. No YAML file is needed.
` + extra + `
Options:

  --grace-duration D   Grace period for the stop (default 10s)
  --force              Kill the old nodes at once
` + coordFlagsHelp
}

func (c *RestartCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet(c.name())
	cf.register(fs)
	grace := fs.Duration("grace-duration", 0, "")
	force := fs.Bool("force", false, "")
	if err := fs.Parse(reorderArgs(args, fs)); err != nil {
		c.Meta.Ui.Error(err.Error() + "\n\n" + c.Help())
		return 1
	}
	ref := fs.Arg(0)
	switch {
	case fs.NArg() == 2 && c.Cluster:
		if err := c.fromCluster(fs.Arg(0), &cf, flagWasSet(fs, "coordinator-addr"), flagWasSet(fs, "coordinator-port")); err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
		ref = fs.Arg(1)
	case fs.NArg() != 1:
		c.Meta.Ui.Error(fmt.Sprintf("adora %s needs the dataflow's name or uuid\n\n%s", c.name(), c.Help()))
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
	c.Meta.Ui.Output(fmt.Sprintf("Restarting dataflow `%s`", ref))
	rep, err := cl.Restart(ctx, ref, *grace, *force)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	c.Meta.Ui.Output(fmt.Sprintf("dataflow restarted: %s -> %s", rep.OldID, rep.NewID))
	return 0
}

// fromCluster takes the coordinator address and port from a cluster file
// unless they were given as flags.
func (c *RestartCommand) fromCluster(path string, cf *coordFlags, addrSet, portSet bool) error {
	cl, diags := config.LoadCluster(path)
	if diags.HasErrors() || cl == nil {
		return diags.Err()
	}
	if !addrSet && cl.Coordinator.Addr != "" {
		cf.addr = cl.Coordinator.Addr
	}
	if !portSet && cl.Coordinator.Port != 0 {
		cf.port = cl.Coordinator.Port
	}
	return nil
}

// flagWasSet reports whether flag name was given on the command line.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
