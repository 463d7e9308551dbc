// Command receiver is an e2e test node: it prints every number it receives
// on input "count" (input "tick" is ignored) and checks they arrive in order without gaps, until the
// input closes. With IGNORE_STOP set it ignores STOP and SIGTERM; with
// FROM_ANY set the first number may be any; with SAY_TICK set it prints
// "first tick" when its first tick arrives (it is connected by then).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
	defer n.Close()
	last := 0
	ticked := false
	for ev := range n.Events() {
		switch ev.Type {
		case node.Input:
			if ev.ID == "tick" {
				if !ticked && os.Getenv("SAY_TICK") != "" {
					fmt.Println("first tick")
				}
				ticked = true
				continue // a timer input only keeps the node busy
			}
			v, err := strconv.Atoi(string(ev.Data))
			if err == nil && last == 0 && os.Getenv("FROM_ANY") != "" {
				last = v - 1 // a restarted receiver joins mid-stream
			}
			if err != nil || v != last+1 {
				fmt.Fprintf(os.Stderr, "receiver: got %q after %d\n", ev.Data, last)
				os.Exit(1)
			}
			last = v
		case node.InputClosed, node.AllInputsClosed:
			fmt.Println("received", last)
			return
		case node.Stop:
			fmt.Println("stopped after", last)
			if os.Getenv("IGNORE_STOP") != "" {
				// Misbehave: ignore STOP and SIGTERM until killed.
				signal.Ignore(syscall.SIGTERM)
				fmt.Println("ignoring stop")
				select {}
			}
			return
		}
	}
	fmt.Println("received", last)
}
