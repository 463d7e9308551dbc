// Command sender is the benchmark's sending node (see package benchmark).
package main

import (
	"fmt"
	"os"

	"github.com/adora-rs/adora/examples/benchmark"
	node "github.com/adora-rs/adora/nodes"
)

func main() {
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
	defer n.Close()
	if err := benchmark.RunSender(n, benchmark.DefaultShape); err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
}
