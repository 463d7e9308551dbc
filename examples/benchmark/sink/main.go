// Command sink is the benchmark's receiving node: it prints latency and
// throughput per payload size, and appends CSV rows to $BENCH_CSV if set.
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
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	defer n.Close()
	rs := benchmark.RunSink(n)
	benchmark.Print(os.Stdout, "adora", rs)
	if err := benchmark.WriteCSV(os.Getenv("BENCH_CSV"), "adora", rs); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}
