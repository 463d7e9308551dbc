package command

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"

	"github.com/adora-rs/adora/state"
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
  -state PATH   State file (default ./adora.state), or
                coordinator://[HOST[:PORT]]/WORKSPACE for a state the
                coordinator keeps (HOST and PORT default to the coordinator
                of -cluster or ./cluster.yml, else localhost:6013).
  -cluster FILE Cluster file naming the coordinator (see -state).
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
	if isCoordinatorState(f.statePath) {
		return c.coordinator(&f, id, force)
	}
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
	if !force && !c.confirm(fmt.Sprintf("Release the lock held by %s since %s for %q?", holder.Who, holder.Created.Format("2006-01-02 15:04:05 MST"), holder.Operation)) {
		return 1
	}
	if err := l.Unlock(context.Background(), id); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	c.Meta.Ui.Output("The state lock was released.")
	return 0
}

// coordinator releases the lock of a coordinator-held state; the
// coordinator refuses an ID that is not the held lock's.
func (c *ForceUnlockCommand) coordinator(f *deployFlags, id string, force bool) int {
	b, name, err := standaloneStateBackend(f)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	if !force && !c.confirm(fmt.Sprintf("Release the lock %s of the state %s?", id, name)) {
		return 1
	}
	switch err := b.Unlock(context.Background(), id); {
	case errors.Is(err, state.ErrNotLocked):
		c.Meta.Ui.Error(fmt.Sprintf("the state %s is not locked: nothing to release", name))
		return 1
	case err != nil:
		c.Meta.Ui.Error(fmt.Sprintf("release the lock of %s: %v", name, err))
		return 1
	}
	c.Meta.Ui.Output("The state lock was released.")
	return 0
}

// confirm asks question on the terminal and reports whether the answer
// was "yes"; it says why when it cannot ask or the answer was no.
func (c *ForceUnlockCommand) confirm(question string) bool {
	if !fdIsTerminal(os.Stdin) {
		c.Meta.Ui.Error("no terminal to confirm on: run with -force")
		return false
	}
	answer, err := c.Meta.Ui.Ask(question + "\n  Only 'yes' will be accepted.\n\n  Enter a value:")
	if err != nil || answer != "yes" {
		c.Meta.Ui.Output("Lock kept.")
		return false
	}
	return true
}
