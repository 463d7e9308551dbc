// Command camera produces camera-sized frames (1920x1080 RGB, 6,220,800
// bytes) on output "frames", one per tick of its timer input. Each frame is
// written straight into shared memory (AllocOutput + SendBuffer) and
// carries its CRC-32 and frame number in the metadata. After FRAMES frames
// (default 30) it closes the output and exits. For fault tests,
// CAMERA_CRASH_AT=N makes it kill itself with SIGKILL right after sending frame N.
package main

import (
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"syscall"

	node "github.com/adora-rs/adora/nodes"
)

const width, height = 1920, 1080

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "camera:", err)
		os.Exit(1)
	}
}

// paint draws frame i: a gradient that moves with i, so every frame differs.
func paint(frame []byte, i int) {
	row := make([]byte, width*3)
	for x := 0; x < width; x++ {
		row[3*x], row[3*x+1], row[3*x+2] = byte(x+i), byte(x*3+i*5), byte(i)
	}
	for y := 0; y < height; y++ {
		line := frame[y*width*3 : (y+1)*width*3]
		copy(line, row)
		line[0] = byte(y) // make rows differ too
	}
}

func run() error {
	frames := 30
	if v, err := strconv.Atoi(os.Getenv("FRAMES")); err == nil {
		frames = v
	}
	n, err := node.Init()
	if err != nil {
		return err
	}
	defer n.Close()
	crashAt := -1
	if v, err := strconv.Atoi(os.Getenv("CAMERA_CRASH_AT")); err == nil {
		crashAt = v
	}
	sent := 0
	for ev := range n.Events() {
		if ev.Type != node.Input || sent == frames {
			continue
		}
		buf, err := n.AllocOutput(width * height * 3)
		if err != nil {
			return err
		}
		paint(buf.Data, sent)
		meta := node.Metadata{
			TypeInfo:   "image/rgb8;width=1920;height=1080",
			Parameters: map[string]any{"frame": sent, "crc32": crc32.ChecksumIEEE(buf.Data)},
		}
		if err := n.SendBuffer("frames", buf, meta); err != nil {
			return err
		}
		if sent == crashAt {
			fmt.Printf("camera: crashing after frame %d\n", sent)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		sent++
		if sent == frames {
			fmt.Printf("camera: sent %d frames\n", sent)
			return n.CloseOutputs("frames")
		}
	}
	return nil
}
