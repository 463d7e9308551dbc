// Package command is adora's composition root: one file per CLI command,
// and the only package that writes to the terminal.
package command

import (
	"fmt"
	"os"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/internal/version"
)

// Meta is what every command shares: where it writes.
type Meta struct {
	Ui cli.Ui
}

// Commands returns the command table. Each later command file adds its
// entries here.
func Commands(m *Meta) map[string]cli.CommandFactory {
	return map[string]cli.CommandFactory{
		"apply":             func() (cli.Command, error) { return &ApplyCommand{Meta: m}, nil },
		"build":             func() (cli.Command, error) { return &BuildCommand{Meta: m}, nil },
		"cluster down":      func() (cli.Command, error) { return &ClusterDownCommand{Meta: m}, nil },
		"cluster install":   func() (cli.Command, error) { return &ClusterInstallCommand{Meta: m}, nil },
		"cluster restart":   func() (cli.Command, error) { return &RestartCommand{Meta: m, Cluster: true}, nil },
		"cluster status":    func() (cli.Command, error) { return &ClusterStatusCommand{Meta: m}, nil },
		"cluster uninstall": func() (cli.Command, error) { return &ClusterUninstallCommand{Meta: m}, nil },
		"cluster up":        func() (cli.Command, error) { return &ClusterUpCommand{Meta: m}, nil },
		"cluster upgrade":   func() (cli.Command, error) { return &ClusterUpgradeCommand{Meta: m}, nil },
		"cluster":           func() (cli.Command, error) { return &ClusterCommand{Meta: m}, nil },
		"coordinator":       func() (cli.Command, error) { return &CoordinatorCommand{Meta: m}, nil },
		"daemon":            func() (cli.Command, error) { return &DaemonCommand{Meta: m}, nil },
		"destroy":           func() (cli.Command, error) { return &DestroyCommand{Meta: m}, nil },
		"down":              func() (cli.Command, error) { return &DownCommand{Meta: m}, nil },
		"force-unlock":      func() (cli.Command, error) { return &ForceUnlockCommand{Meta: m}, nil },
		"graph":             func() (cli.Command, error) { return &GraphCommand{Meta: m}, nil },
		"list":              func() (cli.Command, error) { return &ListCommand{Meta: m}, nil },
		"logs":              func() (cli.Command, error) { return &LogsCommand{Meta: m}, nil },
		"plan":              func() (cli.Command, error) { return &PlanCommand{Meta: m}, nil },
		"refresh":           func() (cli.Command, error) { return &RefreshCommand{Meta: m}, nil },
		"restart":           func() (cli.Command, error) { return &RestartCommand{Meta: m}, nil },
		"run":               func() (cli.Command, error) { return &RunCommand{Meta: m}, nil },
		"show":              func() (cli.Command, error) { return &ShowCommand{Meta: m}, nil },
		"start":             func() (cli.Command, error) { return &StartCommand{Meta: m}, nil },
		"state list":        func() (cli.Command, error) { return &StateListCommand{Meta: m}, nil },
		"state push":        func() (cli.Command, error) { return &StatePushCommand{Meta: m}, nil },
		"state show":        func() (cli.Command, error) { return &StateShowCommand{Meta: m}, nil },
		"state":             func() (cli.Command, error) { return &StateCommand{Meta: m}, nil },
		"stop":              func() (cli.Command, error) { return &StopCommand{Meta: m}, nil },
		"top":               func() (cli.Command, error) { return &TopCommand{Meta: m}, nil },
		"up":                func() (cli.Command, error) { return &UpCommand{Meta: m}, nil },
		"validate":          func() (cli.Command, error) { return &ValidateCommand{Meta: m}, nil },
		"version":           func() (cli.Command, error) { return &VersionCommand{Meta: m}, nil },
		// commands: keep sorted; one entry per command file
	}
}

// Run runs the CLI with args and returns the process exit code.
func Run(args []string) int {
	m := &Meta{Ui: &cli.BasicUi{Reader: os.Stdin, Writer: os.Stdout, ErrorWriter: os.Stderr}}
	c := &cli.CLI{
		Name:                       "adora",
		Version:                    version.Version,
		Args:                       args,
		Commands:                   Commands(m),
		Autocomplete:               true,
		AutocompleteNoDefaultFlags: false,
		HelpWriter:                 os.Stdout,
		ErrorWriter:                os.Stderr,
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "adora: %v\n", err)
		return 1
	}
	return code
}
