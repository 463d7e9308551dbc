// Command receiver is a node of the cross-machine Zenoh test: it appends
// every number it receives on input "seq" (up to the first space: the
// rest is padding) to the file RECORD, one per
// line, in the order they arrive (the test checks order and gaps), until
// it is stopped or its input closes.
package main

import (
	"bytes"
	"fmt"
	"os"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run() error {
	rec, err := os.OpenFile(os.Getenv("RECORD"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer rec.Close()
	n, err := node.Init()
	if err != nil {
		return err
	}
	defer n.Close()
	got := 0
	for ev := range n.Events() {
		switch ev.Type {
		case node.Input:
			if ev.ID != "seq" {
				continue
			}
			seq := ev.Data
			if i := bytes.IndexByte(seq, ' '); i >= 0 {
				seq = seq[:i]
			}
			if _, err := fmt.Fprintf(rec, "%s\n", seq); err != nil {
				return err
			}
			got++
		case node.Stop, node.InputClosed, node.AllInputsClosed:
			fmt.Println("received", got)
			return nil
		}
	}
	fmt.Println("received", got)
	return nil
}
