// Command sender is the first node of the pipeline example: on every tick
// of its timer input it sends the next number (decimal text) on output
// "numbers"; after COUNT numbers (default 50) it closes the output and
// exits, which ends the pipeline.
package main

import (
	"fmt"
	"os"
	"strconv"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
}

func run() error {
	count := 50
	if v, err := strconv.Atoi(os.Getenv("COUNT")); err == nil {
		count = v
	}
	n, err := node.Init()
	if err != nil {
		return err
	}
	defer n.Close()
	seq := 0
	for ev := range n.Events() {
		switch ev.Type {
		case node.Input:
			if seq == count {
				continue
			}
			meta := node.Metadata{TypeInfo: "text/decimal", Parameters: map[string]any{"seq": seq}}
			if err := n.SendOutput("numbers", []byte(strconv.Itoa(seq)), meta); err != nil {
				return err
			}
			seq++
			if seq == count {
				fmt.Printf("sender: sent %d numbers\n", count)
				return n.CloseOutputs("numbers")
			}
		case node.Stop:
			fmt.Printf("sender: stopped after %d numbers\n", seq)
		}
	}
	return nil
}
