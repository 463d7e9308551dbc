// Command viewer checks every frame it receives against the CRC-32 the
// camera put in the metadata, without copying it (the frame is a read-only
// view of the camera's shared memory), and prints one line per frame and a
// summary when the input closes.
//
// For fault tests, VIEWER_CRASH_AT=N makes the first instance (restart count 0)
// kill itself with SIGKILL when frame N arrives, while it holds the frame.
package main

import (
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"syscall"

	node "github.com/adora-rs/adora/nodes"
)

func main() {
	n, err := node.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "viewer:", err)
		os.Exit(1)
	}
	defer n.Close()
	crashAt := -1
	if v, err := strconv.Atoi(os.Getenv("VIEWER_CRASH_AT")); err == nil && n.Config().RestartCount == 0 {
		crashAt = v
	}
	fmt.Printf("viewer started (restart %d)\n", n.Config().RestartCount)
	count, bad, inOrder, first := 0, 0, true, -1
	for ev := range n.Events() {
		switch ev.Type {
		case node.NodeFailed:
			fmt.Printf("viewer: source %s failed (%s)\n", ev.ID, ev.Err)
			continue
		case node.InputClosed:
			fmt.Printf("viewer: input %s closed\n", ev.ID)
			continue
		case node.Input:
		default:
			continue
		}
		frame, _ := ev.Metadata.Parameters["frame"].(float64)
		want, _ := ev.Metadata.Parameters["crc32"].(float64)
		ok := len(ev.Data) == 1920*1080*3 && crc32.ChecksumIEEE(ev.Data) == uint32(want)
		if !ok {
			bad++
		}
		if first < 0 {
			first = int(frame)
		}
		if int(frame) != first+count {
			inOrder = false
		}
		if int(frame) == crashAt {
			fmt.Printf("viewer: crashing at frame %d\n", crashAt)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		fmt.Printf("frame %d bytes=%d checksum_ok=%v zero_copy=%v\n", int(frame), len(ev.Data), ok, ev.Shared())
		count++
	}
	fmt.Printf("viewer done: frames=%d bad=%d in_order=%v\n", count, bad, inOrder)
}
