package dataplane

import (
	"slices"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/transport/shm"
)

// rawNodes registers several bare connections at once (READY comes only
// when every local node is connected) and returns them after READY.
func rawNodes(t *testing.T, r *Router, ids ...string) []*shm.Conn {
	t.Helper()
	conns := make([]*shm.Conn, len(ids))
	for i, id := range ids {
		conns[i] = registerRaw(t, r, id, 0)
	}
	for i, c := range conns {
		awaitReady(t, c, ids[i])
	}
	return conns
}

// A RELEASE read in the same batch as an OUTPUT that then waits for room
// in a full backpressure queue still returns the region to its owner: the
// reader, which meant to send DROPPED itself after the batch, hands it to
// the owner's writer before it waits.
func TestReleaseReachesOwnerWhileReaderWaitsForRoom(t *testing.T) {
	df := dataflow(
		sender("owner", "frames"),
		config.Node{ID: "relay", Inputs: []config.Input{input("in", "owner/frames", 10, config.DropOldest)}, Outputs: []string{"out"}},
		receiver("slow", input("in", "relay/out", 1, config.Backpressure)),
	)
	h := newHarnessWith(t, df, []string{"owner", "relay", "slow"}, nil)
	conns := rawNodes(t, h.r, "owner", "relay", "slow")
	owner, relay := conns[0], conns[1]

	reg, err := shm.NewRegion("t", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := owner.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: 1, Size: 4096}, reg.File()); err != nil {
		t.Fatal(err)
	}
	if err := owner.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "frames", Shm: &shm.ShmRef{Region: 1, Len: 100}}, nil); err != nil {
		t.Fatal(err)
	}
	var token uint64
	relay.SetReadDeadline(time.Now().Add(10 * time.Second))
	for token == 0 {
		m, err := relay.ReadMsg()
		if err != nil {
			t.Fatalf("relay never got the shared input: %v", err)
		}
		switch m.Type {
		case shm.MsgRegion:
			f, err := relay.TakeFile()
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		case shm.MsgInput:
			token = m.Token
		}
	}
	// slow never acknowledges: "a" fills its window, "b" its queue.
	for _, d := range []string{"a", "b"} {
		if err := relay.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "out", Data: []byte(d)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); h.r.Metrics()["slow"].Pending < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("slow's queue never filled: %+v", h.r.Metrics()["slow"])
		}
	}
	// One write: the reader releases the region, then waits for room.
	b := shm.AppendFrame(nil, &shm.Msg{Type: shm.MsgRelease, Tokens: []uint64{token}})
	b = shm.AppendFrame(b, &shm.Msg{Type: shm.MsgOutput, ID: "out", Data: []byte("c")})
	if err := relay.WriteFrames(b); err != nil {
		t.Fatal(err)
	}
	owner.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := owner.ReadMsg()
		if err != nil {
			t.Fatalf("owner got no DROPPED for region 1: %v", err)
		}
		if m.Type == shm.MsgDropped && slices.Contains(m.Regions, 1) {
			return
		}
	}
}
