package command

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// StatePushCommand stores a state file in the selected backend.
type StatePushCommand struct{ Meta *Meta }

func (c *StatePushCommand) Synopsis() string { return "Store a state file in the state backend" }

func (c *StatePushCommand) Help() string {
	return `Usage: adora state push [options] FILE

  Stores the state in FILE as the state -state selects, under its lock:
  to move a local state into the coordinator (-state
  coordinator:///WORKSPACE), or to store the adora.state.errored an apply
  left when it could not write the state.

  The push is refused when the stored state has another lineage (another
  deployment) or a higher serial than FILE (FILE is older than what is
  stored); -force pushes anyway (the coordinator still refuses another
  lineage in a workspace: push it to a new workspace).

Options:

  -force          Push over another lineage or a newer serial.
  -state PATH     State file (default ./adora.state), or
                  coordinator://[HOST[:PORT]]/WORKSPACE (see adora plan).
  -lock-timeout D Wait up to D for the state lock (default 0: fail).
`
}

func (c *StatePushCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "state push", c.Help, false)
	var force bool
	fs.BoolVar(&force, "force", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora state push takes exactly one state file")
		return 1
	}
	if err := c.push(&f, fs.Arg(0), force); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	return 0
}

func (c *StatePushCommand) push(f *deployFlags, file string, force bool) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("state push: %w", err)
	}
	st, err := statefile.Decode(data)
	if err != nil {
		return fmt.Errorf("state push: %s: %w", file, err)
	}
	b, name, err := standaloneStateBackend(f)
	if err != nil {
		return err
	}
	ctx := context.Background()
	lock := state.NewLockInfo("state push", version.Version, time.Now())
	if err := state.LockWait(ctx, b, lock, f.lockTimeout); err != nil {
		return stateErr(f.statePath, err)
	}
	defer b.Unlock(context.Background(), lock.ID)
	stored, err := b.Read(ctx)
	if err != nil {
		return stateErr(f.statePath, err)
	}
	if stored != nil && !force {
		if stored.Lineage != st.Lineage {
			return fmt.Errorf("state push: %s holds another deployment (lineage %s, %s in %s); pushing would replace it: use -force if that is what you want", name, stored.Lineage, st.Lineage, file)
		}
		if stored.Serial > st.Serial {
			return fmt.Errorf("state push: %s is newer (serial %d) than %s (serial %d); use -force to push the older state", name, stored.Serial, file, st.Serial)
		}
	}
	if err := b.Write(ctx, st); err != nil {
		return fmt.Errorf("state push to %s: %w", name, err)
	}
	c.Meta.Ui.Output(fmt.Sprintf("Pushed %s to %s (lineage %s, serial %d).", file, name, st.Lineage, st.Serial))
	return nil
}
