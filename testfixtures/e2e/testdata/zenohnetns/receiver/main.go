// Command receiver is a node of the cross-machine Zenoh test: it appends
// every number it receives on input "seq" (up to the first space: the
// rest is padding) to the file RECORD, one per
// line, in the order they arrive (the test checks order and gaps), until
// it is stopped or its input closes. With PAD set, a message whose
// padding is not PAD bytes of 'x' is an error (exit status 1). With DELAY
// set it sleeps that long after each message (a slow consumer).
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

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
	pad := -1
	if v := os.Getenv("PAD"); v != "" && v != "0" {
		if pad, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("PAD %q: want a byte count", v)
		}
	}
	var delay time.Duration
	if v := os.Getenv("DELAY"); v != "" {
		if delay, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("DELAY %q: want a duration", v)
		}
	}
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
			seq, padding, _ := bytes.Cut(ev.Data, []byte{' '})
			if pad >= 0 && (len(padding) != pad || bytes.Count(padding, []byte{'x'}) != pad) {
				return fmt.Errorf("message %s: %d bytes of padding, want %d bytes of 'x'", seq, len(padding), pad)
			}
			if _, err := fmt.Fprintf(rec, "%s\n", seq); err != nil {
				return err
			}
			got++
			time.Sleep(delay)
		case node.Stop, node.InputClosed, node.AllInputsClosed:
			fmt.Println("received", got)
			return nil
		}
	}
	fmt.Println("received", got)
	return nil
}
