// Command viewer checks every frame it receives against the CRC-32 the
// camera put in the metadata, without copying it (the frame is a read-only
// view of the camera's shared memory), and prints one line per frame and a
// summary when the input closes.
package main

import (
	"fmt"
	"hash/crc32"
	"os"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "viewer:", err)
		os.Exit(1)
	}
	defer n.Close()
	count, bad, inOrder := 0, 0, true
	for ev := range n.Events() {
		if ev.Type != node.Input {
			continue
		}
		frame, _ := ev.Metadata.Parameters["frame"].(float64)
		want, _ := ev.Metadata.Parameters["crc32"].(float64)
		ok := len(ev.Data) == 1920*1080*3 && crc32.ChecksumIEEE(ev.Data) == uint32(want)
		if !ok {
			bad++
		}
		if int(frame) != count {
			inOrder = false
		}
		fmt.Printf("frame %d bytes=%d checksum_ok=%v zero_copy=%v\n", int(frame), len(ev.Data), ok, ev.Shared())
		count++
	}
	fmt.Printf("viewer done: frames=%d bad=%d in_order=%v\n", count, bad, inOrder)
}
