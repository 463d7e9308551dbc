// Command adora deploys and runs dataflows on fleets of machines.
package main

import (
	"os"

	"github.com/adora-rs/adora/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
