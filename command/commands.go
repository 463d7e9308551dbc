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
		"daemon":  func() (cli.Command, error) { return &DaemonCommand{Meta: m}, nil },
		"down":    func() (cli.Command, error) { return &DownCommand{Meta: m}, nil },
		"run":     func() (cli.Command, error) { return &RunCommand{Meta: m}, nil },
		"up":      func() (cli.Command, error) { return &UpCommand{Meta: m}, nil },
		"version": func() (cli.Command, error) { return &VersionCommand{Meta: m}, nil },
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
