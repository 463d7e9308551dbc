package node

import (
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/adora-rs/adora/transport/shm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDaemon accepts one node connection and lets the test script frames.
type fakeDaemon struct {
	t    *testing.T
	ln   *net.UnixListener
	conn chan *shm.Conn
}

func newFakeDaemon(t *testing.T) (*fakeDaemon, Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{t: t, ln: ln, conn: make(chan *shm.Conn, 1)}
	go func() {
		uc, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		d.conn <- shm.NewConn(uc)
	}()
	t.Cleanup(func() { ln.Close() })
	cfg := Config{Version: ConfigVersion, DataflowID: "df", NodeID: "n", Outputs: []string{"out"}, Socket: path, Secret: "s3"}
	return d, cfg
}

// accept takes the connection and checks REGISTER; ready says whether to
// answer READY.
func (d *fakeDaemon) accept(reply *shm.Msg) *shm.Conn {
	d.t.Helper()
	var c *shm.Conn
	select {
	case c = <-d.conn:
	case <-time.After(5 * time.Second):
		d.t.Fatal("node never connected")
	}
	d.t.Cleanup(func() { c.Close() })
	m, err := c.ReadMsg()
	if err != nil || m.Type != shm.MsgRegister || m.Node != "n" || m.Dataflow != "df" || m.Secret != "s3" || m.Version != shm.ProtocolVersion {
		d.t.Fatalf("registration %+v, %v", m, err)
	}
	if err := c.WriteMsg(reply, nil); err != nil {
		d.t.Fatal(err)
	}
	return c
}

func initAsync(cfg Config) chan any {
	ch := make(chan any, 1)
	go func() {
		n, err := InitWith(cfg)
		if err != nil {
			ch <- err
			return
		}
		ch <- n
	}()
	return ch
}

func TestInitWithoutConfigSaysWhatToDo(t *testing.T) {
	t.Setenv(ConfigEnv, "")
	_, err := Init()
	if err == nil || !strings.Contains(err.Error(), ConfigEnv) || !strings.Contains(err.Error(), "adora run") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv(ConfigEnv, `{"version":2,"node_id":"n","socket":"/x"}`)
	if _, err := Init(); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("err = %v", err)
	}
}

func TestInitRefusedByDaemon(t *testing.T) {
	d, cfg := newFakeDaemon(t)
	res := initAsync(cfg)
	d.accept(&shm.Msg{Type: shm.MsgError, Error: "secret does not match"})
	err, _ := (<-res).(error)
	if err == nil || !strings.Contains(err.Error(), "secret does not match") {
		t.Fatalf("err = %v", err)
	}
}

func started(t *testing.T) (*Node, *shm.Conn) {
	t.Helper()
	d, cfg := newFakeDaemon(t)
	raw, _ := json.Marshal(cfg)
	t.Setenv(ConfigEnv, string(raw))
	res := make(chan any, 1)
	go func() {
		n, err := Init()
		if err != nil {
			res <- err
			return
		}
		res <- n
	}()
	c := d.accept(&shm.Msg{Type: shm.MsgReady})
	v := <-res
	n, ok := v.(*Node)
	if !ok {
		t.Fatal(v)
	}
	t.Cleanup(func() { n.Close() })
	return n, c
}

// readUntil collects frames from the node until pred is satisfied.
func readUntil(t *testing.T, c *shm.Conn, pred func([]*shm.Msg) bool) []*shm.Msg {
	t.Helper()
	var got []*shm.Msg
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !pred(got) {
			m, err := c.ReadMsg()
			if err != nil {
				return
			}
			got = append(got, m)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("node frames never matched: %v", types(got))
	}
	if !pred(got) {
		t.Fatalf("connection ended; frames %v", types(got))
	}
	return got
}

func types(ms []*shm.Msg) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Type.String())
	}
	return out
}

func released(ms []*shm.Msg) []uint64 {
	var out []uint64
	for _, m := range ms {
		if m.Type == shm.MsgRelease {
			out = append(out, m.Tokens...)
		}
	}
	return out
}

func acked(ms []*shm.Msg) int {
	n := 0
	for _, m := range ms {
		if m.Type == shm.MsgAck {
			n += int(m.Count)
		}
	}
	return n
}

// A shared input is a zero-copy view, auto-released when the next event is
// taken unless retained; every taken input is acknowledged.
func TestSharedInputsReleaseAndAck(t *testing.T) {
	n, c := started(t)
	reg, err := shm.NewRegion("test", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	copy(reg.Data, "frame-one")
	copy(reg.Data[100:], "frame-two")
	c.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: 9, Size: 4096}, reg.File())
	c.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Shm: &shm.ShmRef{Region: 9, Offset: 0, Len: 9}, Token: 7}, nil)

	ev := <-n.Events()
	if ev.Type != Input || string(ev.Data) != "frame-one" || !ev.Shared() {
		t.Fatalf("first event %+v", ev)
	}
	copy(reg.Data, "FRAME") // the receiver sees the sender's memory itself
	if string(ev.Data[:5]) != "FRAME" {
		t.Fatalf("input is a copy: %q", ev.Data)
	}
	readUntil(t, c, func(ms []*shm.Msg) bool { return acked(ms) == 1 })

	c.WriteMsg(&shm.Msg{Type: shm.MsgInput, ID: "in", Shm: &shm.ShmRef{Region: 9, Offset: 100, Len: 9}, Token: 8}, nil)
	ev2 := <-n.Events()
	ev2.Retain()
	got := readUntil(t, c, func(ms []*shm.Msg) bool { return slices.Contains(released(ms), 7) && acked(ms) == 1 })
	if slices.Contains(released(got), 8) {
		t.Fatal("second input released before it was done")
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgInputClosed, ID: "in"}, nil)
	if ev3 := <-n.Events(); ev3.Type != InputClosed || ev3.ID != "in" {
		t.Fatalf("third event %+v", ev3)
	}
	if string(ev2.Data) != "frame-two" {
		t.Fatalf("retained input changed: %q", ev2.Data)
	}
	ev2.Release()
	ev2.Release() // idempotent
	got = readUntil(t, c, func(ms []*shm.Msg) bool { return slices.Contains(released(ms), 8) })
	if r := released(got); len(r) != 1 {
		t.Fatalf("released %v, want token 8 once", r)
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgStop, ID: "MANUAL"}, nil)
	if ev := <-n.Events(); ev.Type != Stop || ev.ID != "MANUAL" {
		t.Fatalf("stop event %+v", ev)
	}
	if _, ok := <-n.Events(); ok {
		t.Fatal("event stream still open after STOP")
	}
}

func TestSendOutputInlineAndShared(t *testing.T) {
	n, c := started(t)
	if err := n.SendOutput("nope", nil, Metadata{}); err == nil || !strings.Contains(err.Error(), "not an output") {
		t.Fatalf("unknown output: %v", err)
	}
	if err := n.SendOutput("out", []byte("small"), Metadata{TypeInfo: "text", Parameters: map[string]any{"k": 1}}); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, c, func(ms []*shm.Msg) bool { return len(ms) == 1 })
	m := got[0]
	if m.Type != shm.MsgOutput || m.ID != "out" || string(m.Data) != "small" || m.Meta.TypeInfo != "text" || string(m.Meta.Params) != `{"k":1}` || m.Meta.Timestamp == 0 {
		t.Fatalf("inline output %+v", m)
	}
	big := make([]byte, 10000)
	big[9999] = 42
	if err := n.SendOutput("out", big, Metadata{}); err != nil {
		t.Fatal(err)
	}
	got = readUntil(t, c, func(ms []*shm.Msg) bool { return len(ms) == 2 })
	if got[0].Type != shm.MsgRegion || got[1].Type != shm.MsgOutput || got[1].Shm == nil || got[1].Shm.Len != 10000 || got[1].Shm.Region != got[0].Region {
		t.Fatalf("shared output frames %v %+v", types(got), got[1])
	}
	f, err := c.TakeFile()
	if err != nil {
		t.Fatal(err)
	}
	data, err := shm.MapRegion(f, got[0].Size)
	f.Close()
	if err != nil || data[9999] != 42 {
		t.Fatalf("region content: %v", err)
	}
	shm.Unmap(data)

	// Once the daemon reports the region dropped, the next buffer reuses
	// it: no new REGION frame.
	c.WriteMsg(&shm.Msg{Type: shm.MsgDropped, Regions: []uint32{got[0].Region}}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, free, _ := n.PoolStats(); free == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("region never came back to the pool")
		}
		time.Sleep(time.Millisecond)
	}
	buf, err := n.AllocOutput(5000)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SendBuffer("out", buf, Metadata{}); err != nil {
		t.Fatal(err)
	}
	if err := n.SendBuffer("out", buf, Metadata{}); err == nil {
		t.Fatal("a buffer was sent twice")
	}
	got = readUntil(t, c, func(ms []*shm.Msg) bool { return len(ms) == 1 })
	if got[0].Type != shm.MsgOutput || got[0].Shm == nil || got[0].Shm.Region != 1 {
		t.Fatalf("reused region: %v %+v", types(got), got[0])
	}
	if err := n.CloseOutputs(); err != nil {
		t.Fatal(err)
	}
	got = readUntil(t, c, func(ms []*shm.Msg) bool { return len(ms) == 1 })
	if got[0].Type != shm.MsgCloseOutputs || !slices.Equal(got[0].IDs, []string{"out"}) {
		t.Fatalf("close outputs %+v", got[0])
	}
}

// Losing the daemon ends the event stream with an Error event.
func TestDaemonGoneEndsStream(t *testing.T) {
	n, c := started(t)
	c.Close()
	ev, ok := <-n.Events()
	if !ok || ev.Type != Error || !strings.Contains(ev.Err, "connection to daemon lost") {
		t.Fatalf("event %+v", ev)
	}
	if _, ok := <-n.Events(); ok {
		t.Fatal("stream still open")
	}
}

// With every region held by receivers and the region cap reached,
// AllocOutput waits until the daemon returns one.
func TestAllocOutputWaitsAtRegionCap(t *testing.T) {
	n, c := started(t)
	go func() { // drain what the node sends, closing passed descriptors
		for {
			m, err := c.ReadMsg()
			if err != nil {
				return
			}
			if m.Type == shm.MsgRegion {
				if f, err := c.TakeFile(); err == nil {
					f.Close()
				}
			}
		}
	}()
	for i := 0; i < MaxShmRegions; i++ {
		buf, err := n.AllocOutput(5000)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.SendBuffer("out", buf, Metadata{}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan *Buffer, 1)
	go func() {
		buf, err := n.AllocOutput(5000)
		if err != nil {
			close(got)
			return
		}
		got <- buf
	}()
	select {
	case <-got:
		t.Fatal("AllocOutput created a region beyond the cap")
	case <-time.After(50 * time.Millisecond):
	}
	c.WriteMsg(&shm.Msg{Type: shm.MsgDropped, Regions: []uint32{17}}, nil)
	select {
	case buf := <-got:
		if buf == nil || buf.reg.id != 17 {
			t.Fatalf("got %+v, want region 17 back", buf)
		}
		buf.Free()
	case <-time.After(5 * time.Second):
		t.Fatal("AllocOutput still waiting after DROPPED")
	}
	if regions, _, _ := n.PoolStats(); regions != MaxShmRegions {
		t.Fatalf("%d regions, want %d", regions, MaxShmRegions)
	}
}
