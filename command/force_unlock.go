package command

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"

	"github.com/adora-rs/adora/state/statefile"
)

// ForceUnlockCommand removes a stuck state lock.
type ForceUnlockCommand struct{ Meta *Meta }

func (c *ForceUnlockCommand) Synopsis() string { return "Release a stuck state lock" }

func (c *ForceUnlockCommand) Help() string {
	return `Usage: adora force-unlock [options] LOCK_ID

  Removes the state lock with LOCK_ID, left behind by an operation that was
  killed. The ID is printed by the command that found the state locked. Only
  use it when that operation is no longer running.

Options:

  -force        Do not ask for confirmation.
  -state PATH   State file (default ./adora.state).
`
}

func (c *ForceUnlockCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "force-unlock", c.Help, false)
	var force bool
	fs.BoolVar(&force, "force", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora force-unlock takes exactly one lock ID")
		return 1
	}
	id := fs.Arg(0)
	path := f.statePath
	if path == "" {
		path = statefile.DefaultName
	}
	l := statefile.New(path)
	holder, err := l.Holder()
	if errors.Is(err, iofs.ErrNotExist) {
		c.Meta.Ui.Error(fmt.Sprintf("the state %s is not locked: nothing to release", path))
		return 1
	}
	if err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("read the lock of %s: %v", path, err))
		return 1
	}
	if holder.ID != id {
		c.Meta.Ui.Error(fmt.Sprintf("lock ID %s does not match the held lock (ID %s, held by %s for %q)", id, holder.ID, holder.Who, holder.Operation))
		return 1
	}
	if !force {
		if !fdIsTerminal(os.Stdin) {
			c.Meta.Ui.Error("no terminal to confirm on: run with -force")
			return 1
		}
		answer, err := c.Meta.Ui.Ask(fmt.Sprintf("Release the lock held by %s since %s for %q?\n  Only 'yes' will be accepted.\n\n  Enter a value:", holder.Who, holder.Created.Format("2006-01-02 15:04:05 MST"), holder.Operation))
		if err != nil || answer != "yes" {
			c.Meta.Ui.Output("Lock kept.")
			return 1
		}
	}
	if err := l.Unlock(context.Background(), id); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	c.Meta.Ui.Output("The state lock was released.")
	return 0
}
