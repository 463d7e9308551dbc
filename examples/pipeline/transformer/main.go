// Command transformer squares every number it receives on input "numbers"
// and sends the result on output "squares", keeping the sequence number in
// the metadata. It exits when its input closes.
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
		fmt.Fprintln(os.Stderr, "transformer:", err)
		os.Exit(1)
	}
	defer n.Close()
	handled := 0
	for ev := range n.Events() {
		if ev.Type != node.Input {
			continue
		}
		v, err := strconv.ParseInt(string(ev.Data), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "transformer: input %q is not a number: %v\n", ev.Data, err)
			os.Exit(1)
		}
		meta := node.Metadata{TypeInfo: "text/decimal", Parameters: ev.Metadata.Parameters}
		if err := n.SendOutput("squares", []byte(strconv.FormatInt(v*v, 10)), meta); err != nil {
			fmt.Fprintln(os.Stderr, "transformer:", err)
			os.Exit(1)
		}
		handled++
	}
	fmt.Printf("transformer: squared %d numbers\n", handled)
}
