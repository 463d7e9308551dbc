package command

// DestroyCommand removes everything the state records.
type DestroyCommand struct{ Meta *Meta }

func (c *DestroyCommand) Synopsis() string {
	return "Stop every dataflow and uninstall every daemon adora deployed"
}

func (c *DestroyCommand) Help() string {
	return `Usage: adora destroy [options]

  Plans the removal of everything the state records (dataflows stopped
  first, then daemons uninstalled), shows it, and carries it out after you
  type "yes".

Options:

  -auto-approve   Do not ask for confirmation (required without a terminal).
  -cluster, -state, -var, -refresh, -lock-timeout, -no-color: as for
                  adora plan.
`
}

func (c *DestroyCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "destroy", c.Help, false)
	var autoApprove bool
	fs.BoolVar(&autoApprove, "auto-approve", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	return runApply(c.Meta.Ui, &f, fs.Args(), autoApprove, true)
}
