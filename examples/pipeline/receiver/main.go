// Command receiver prints every square it receives ("received seq=N
// value=V") and, when its input closes, a summary line that says whether
// the values arrived complete and in order.
package main

import (
	"fmt"
	"os"
	"strconv"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
	defer n.Close()
	count, inOrder := 0, true
	for ev := range n.Events() {
		switch ev.Type {
		case node.Input:
			seq, _ := ev.Metadata.Parameters["seq"].(float64) // JSON numbers
			v, err := strconv.ParseInt(string(ev.Data), 10, 64)
			if err != nil || int(seq) != count || v != int64(count*count) {
				inOrder = false
			}
			fmt.Printf("received seq=%d value=%s\n", int(seq), ev.Data)
			count++
		case node.InputClosed:
			fmt.Printf("input %s closed\n", ev.ID)
		}
	}
	fmt.Printf("receiver done: count=%d in_order=%v\n", count, inOrder)
}
