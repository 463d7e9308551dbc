package dataplane

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/transport/shm"
)

// rawDirectNodes registers bare connections that announce DIRECT and
// returns them after READY (which must offer DIRECT).
func rawDirectNodes(t *testing.T, r *Router, ids ...string) []*shm.Conn {
	t.Helper()
	conns := make([]*shm.Conn, len(ids))
	for i, id := range ids {
		conns[i] = registerRaw(t, r, id, shm.FlagDirect)
	}
	for i, c := range conns {
		if m := awaitReady(t, c, ids[i]); m.Flags&shm.FlagDirect == 0 {
			t.Fatalf("registration of %s: %+v: want READY offering DIRECT", ids[i], m)
		}
	}
	return conns
}

// nextOf reads frames until one of type typ arrives.
func nextOf(t *testing.T, c *shm.Conn, typ shm.MsgType) *shm.Msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m.Type == typ {
			return m
		}
	}
}

// takeEdge returns the descriptor that came with an EDGE_OUT or EDGE_IN.
func takeEdge(t *testing.T, c *shm.Conn) *shm.Conn {
	t.Helper()
	f, err := c.TakeFile()
	if err != nil {
		t.Fatal(err)
	}
	ec, err := shm.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	return ec
}

// The cut-over as a client in another language sees it: EDGE_OUT to the
// sender, CUTOVER, EDGE_IN to the receiver behind what the daemon queued
// before, ROUTES, the edge carrying data, and STATS in the metrics.
func TestDirectProtocolCutover(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
	h := newHarness(t, df)
	conns := rawDirectNodes(t, h.r, "src", "dst")
	src, dst := conns[0], conns[1]
	eo := nextOf(t, src, shm.MsgEdgeOut)
	if eo.ID != "out" || eo.Node != "dst" || eo.Input != "in" || eo.Edge == 0 {
		t.Fatalf("EDGE_OUT %+v", eo)
	}
	sendEnd := takeEdge(t, src)
	src.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "out", Data: []byte("before")}, nil)
	src.WriteMsg(&shm.Msg{Type: shm.MsgCutover, Edge: eo.Edge}, nil)
	sendEnd.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Data: []byte("after")}, nil)
	if r := nextOf(t, src, shm.MsgRoutes); r.ID != "out" || r.NeedsDaemon {
		t.Fatalf("ROUTES %+v, want out not needed by the daemon", r)
	}
	if m := nextOf(t, dst, shm.MsgInput); string(m.Data) != "before" {
		t.Fatalf("first input %q, want the one sent before the cut-over", m.Data)
	}
	dst.WriteMsg(&shm.Msg{Type: shm.MsgAck, Count: 1}, nil)
	ei := nextOf(t, dst, shm.MsgEdgeIn)
	if ei.Edge != eo.Edge || ei.ID != "in" || ei.Source != "src/out" || ei.QueueSize != 10 || ei.Policy != shm.PolicyBackpressure {
		t.Fatalf("EDGE_IN %+v", ei)
	}
	recvEnd := takeEdge(t, dst)
	if m, err := recvEnd.ReadMsg(); err != nil || string(m.Data) != "after" {
		t.Fatalf("edge: %+v, %v", m, err)
	}
	// An OUTPUT the sender still sends does not reach the input twice.
	src.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "out", Data: []byte("daemon")}, nil)
	src.WriteMsg(&shm.Msg{Type: shm.MsgStats, OutStats: []shm.OutStat{{Output: "out", Out: 5}}}, nil)
	src.WriteMsg(&shm.Msg{Type: shm.MsgStats, OutStats: []shm.OutStat{{Output: "out", Out: 7}}}, nil)
	dst.WriteMsg(&shm.Msg{Type: shm.MsgStats, InStats: []shm.InStat{{Input: "in", In: 4, Dropped: 2, Pending: 3}}}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := h.r.Metrics()
		s, d := m["src"], m["dst"]
		if s.MessagesOut == 2+7 && d.DirectIn == 4 && d.Dropped == 2 && d.Pending == 3 && d.MessagesIn == 1+4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics %+v: want 9 out (2 OUTPUT + 7 direct), 5 in (1 + 4 direct), 2 dropped, 3 pending", m)
		}
		time.Sleep(time.Millisecond)
	}
	// The receiver goes away: the sender's edge reaches EOF and the
	// daemon needs the output again.
	dst.Close()
	h.r.NodeExited("dst", true, true)
	if r := nextOf(t, src, shm.MsgRoutes); !r.NeedsDaemon {
		t.Fatalf("ROUTES %+v after the receiver left, want needed", r)
	}
}

// A cut-over edge whose EDGE_IN is still queued when both ends go away is
// closed by the router (the sender's end reads EOF): no descriptor leaks.
func TestDirectProtocolUndeliveredEdgeIsClosed(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 100, config.Backpressure)))
	h := newHarness(t, df)
	conns := rawDirectNodes(t, h.r, "src", "dst")
	src, dst := conns[0], conns[1]
	eo := nextOf(t, src, shm.MsgEdgeOut)
	sendEnd := takeEdge(t, src)
	// More than the window: the receiver does not acknowledge, so EDGE_IN
	// stays queued behind the data.
	for range 20 {
		src.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "out", Data: []byte("x")}, nil)
	}
	src.WriteMsg(&shm.Msg{Type: shm.MsgCutover, Edge: eo.Edge}, nil)
	nextOf(t, src, shm.MsgRoutes)
	src.Close()
	h.r.NodeExited("src", false, false)
	h.r.Metrics() // returns once the sender's connection was read to the end
	dst.Close()
	h.r.NodeExited("dst", false, false)
	sendEnd.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := sendEnd.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("sender's end: %v, want EOF (the router closed the receiving end)", err)
	}
}

// CUTOVER of an edge the node does not own, or never offered, is a
// protocol violation.
func TestDirectProtocolBadCutover(t *testing.T) {
	df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
	for _, tc := range []struct {
		name string
		from int
		edge func(offered uint32) uint32
		want string
	}{
		{"unknown edge", 0, func(uint32) uint32 { return 999 }, "unknown edge 999"},
		{"another node's edge", 1, func(e uint32) uint32 { return e }, "belongs to another node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, df)
			conns := rawDirectNodes(t, h.r, "src", "dst")
			eo := nextOf(t, conns[0], shm.MsgEdgeOut)
			takeEdge(t, conns[0])
			c := conns[tc.from]
			c.WriteMsg(&shm.Msg{Type: shm.MsgCutover, Edge: tc.edge(eo.Edge)}, nil)
			expectError(t, c, tc.want)
		})
	}
}
