package node_test

import (
	"bytes"
	"log"

	node "github.com/adora-rs/adora/nodes"
)

// A transformer node: upper-cases every input and sends it on "out".
func Example() {
	n, err := node.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	for ev := range n.Events() {
		switch ev.Type {
		case node.Input:
			out := bytes.ToUpper(ev.Data)
			meta := node.Metadata{TypeInfo: "text", Parameters: ev.Metadata.Parameters}
			if err := n.SendOutput("out", out, meta); err != nil {
				log.Fatal(err)
			}
		case node.InputClosed:
			log.Printf("input %s closed", ev.ID)
		case node.Stop:
			log.Printf("stopping: %s", ev.ID)
		}
	}
}

// Large outputs are written straight into shared memory.
func ExampleNode_AllocOutput() {
	n, err := node.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	buf, err := n.AllocOutput(1920 * 1080 * 3)
	if err != nil {
		log.Fatal(err)
	}
	for i := range buf.Data {
		buf.Data[i] = byte(i) // render the frame in place
	}
	if err := n.SendBuffer("frame", buf, node.Metadata{TypeInfo: "image/rgb8"}); err != nil {
		log.Fatal(err)
	}
}

// Keeping a shared-memory input beyond the next event.
func ExampleEvent_Retain() {
	n, err := node.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	var kept []*node.Event
	for ev := range n.Events() {
		if ev.Type != node.Input {
			continue
		}
		ev.Retain() // Data stays valid until Release
		kept = append(kept, ev)
		if len(kept) == 2 {
			log.Printf("pair: %d and %d bytes", len(kept[0].Data), len(kept[1].Data))
			kept[0].Release()
			kept[1].Release()
			kept = kept[:0]
		}
	}
}
