// Command sender is an e2e test node: after START_DELAY it sends the
// numbers 1..COUNT on output "count" (on every "tick" input when it has
// one, else at once), then exits.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	total, err := strconv.Atoi(os.Getenv("COUNT"))
	if err != nil || total <= 0 {
		total = 20
	}
	// START_DELAY gives receivers on other machines time to subscribe.
	startDelay, _ := time.ParseDuration(os.Getenv("START_DELAY"))
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sender:", err)
		os.Exit(1)
	}
	defer n.Close()
	send := func(i int) {
		if err := n.SendOutput("count", []byte(strconv.Itoa(i)), node.Metadata{}); err != nil {
			fmt.Fprintln(os.Stderr, "sender:", err)
			os.Exit(1)
		}
	}
	if len(n.Config().Inputs) == 0 {
		time.Sleep(startDelay)
		for i := 1; i <= total; i++ {
			send(i)
		}
		fmt.Println("sent", total)
		return
	}
	time.Sleep(startDelay)
	sent := 0
	for ev := range n.Events() {
		if ev.Type != node.Input || ev.ID != "tick" {
			continue
		}
		sent++
		send(sent)
		if sent == total {
			fmt.Println("sent", sent)
			return
		}
	}
}
