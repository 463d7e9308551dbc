package command

import (
	"fmt"
	"runtime"

	"github.com/adora-rs/adora/internal/version"
)

// VersionCommand prints the adora version.
type VersionCommand struct{ Meta *Meta }

func (c *VersionCommand) Help() string {
	return "Usage: adora version\n\n  Prints the adora version, protocol version and platform."
}
func (c *VersionCommand) Synopsis() string { return "Print the adora version" }
func (c *VersionCommand) Run(args []string) int {
	if len(args) > 0 {
		c.Meta.Ui.Error("adora version takes no arguments")
		return 1
	}
	c.Meta.Ui.Output(fmt.Sprintf("adora %s (protocol %d, %s/%s)", version.Version, version.ProtocolVersion, runtime.GOOS, runtime.GOARCH))
	return 0
}
