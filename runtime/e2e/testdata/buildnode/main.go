// Command buildnode is a node whose binary exists only after its
// dataflow's build: line ran: it prints GREETING and exits.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("built node says", os.Getenv("GREETING"))
}
