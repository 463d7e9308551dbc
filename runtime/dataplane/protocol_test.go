package dataplane

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	node "github.com/adora-rs/adora/nodes"
	"github.com/adora-rs/adora/transport/shm"
	"golang.org/x/sys/unix"
)

// registerRaw registers node id over a bare connection announcing flags,
// as a client in another language would; the caller reads READY.
func registerRaw(t *testing.T, r *Router, id string, flags uint32) *shm.Conn {
	t.Helper()
	env, _, err := r.PrepareNode(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cfg node.Config
	if err := json.Unmarshal([]byte(strings.TrimPrefix(env[0], node.ConfigEnv+"=")), &cfg); err != nil {
		t.Fatal(err)
	}
	c, err := shm.Dial(cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	reg := &shm.Msg{Type: shm.MsgRegister, Version: shm.ProtocolVersion, Dataflow: cfg.DataflowID, Node: id, Secret: cfg.Secret, Flags: flags}
	if err := c.WriteMsg(reg, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// awaitReady reads the READY that accepts node id's registration on c.
func awaitReady(t *testing.T, c *shm.Conn, id string) *shm.Msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	m, err := c.ReadMsg()
	if err != nil || m.Type != shm.MsgReady {
		t.Fatalf("registration of %s: %+v, %v", id, m, err)
	}
	return m
}

// rawNode registers node id over a bare connection and returns it after
// READY.
func rawNode(t *testing.T, r *Router, id string) *shm.Conn {
	t.Helper()
	c := registerRaw(t, r, id, 0)
	awaitReady(t, c, id)
	return c
}

// expectError reads until the daemon's ERROR frame and checks it names what.
func expectError(t *testing.T, c *shm.Conn, what string) {
	t.Helper()
	for {
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("connection closed without an ERROR naming %q: %v", what, err)
		}
		if m.Type == shm.MsgError {
			if !strings.Contains(m.Error, what) {
				t.Fatalf("ERROR %q, want it to name %q", m.Error, what)
			}
			return
		}
	}
}

func TestProtocolViolationsCloseTheConnection(t *testing.T) {
	unsealed := func(t *testing.T) *os.File {
		fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "unsealed")
		f.Truncate(4096)
		return f
	}
	for _, tc := range []struct {
		name string
		send func(t *testing.T, c *shm.Conn)
		want string
	}{
		{"undeclared output", func(t *testing.T, c *shm.Conn) {
			c.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "nope"}, nil)
		}, `output "nope" is not declared`},
		{"unknown region", func(t *testing.T, c *shm.Conn) {
			c.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "out", Shm: &shm.ShmRef{Region: 9, Len: 10}}, nil)
		}, "unknown region 9"},
		{"region without descriptor", func(t *testing.T, c *shm.Conn) {
			c.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: 1, Size: 4096}, nil)
		}, "no file descriptor"},
		{"unsealed region", func(t *testing.T, c *shm.Conn) {
			f := unsealed(t)
			defer f.Close()
			c.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: 1, Size: 4096}, f)
		}, "not sealed"},
		{"bytes outside the region", func(t *testing.T, c *shm.Conn) {
			reg, _ := shm.NewRegion("t", 4096)
			defer reg.Close()
			c.WriteMsg(&shm.Msg{Type: shm.MsgRegion, Region: 1, Size: 4096}, reg.File())
			c.WriteMsg(&shm.Msg{Type: shm.MsgOutput, ID: "out", Shm: &shm.ShmRef{Region: 1, Offset: 4000, Len: 200}}, nil)
		}, "outside"},
		{"daemon frame from a node", func(t *testing.T, c *shm.Conn) {
			c.WriteMsg(&shm.Msg{Type: shm.MsgStop, ID: "x"}, nil)
		}, "unexpected frame STOP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			df := dataflow(sender("src", "out"), receiver("dst", input("in", "src/out", 10, config.Backpressure)))
			h := newHarnessWith(t, df, []string{"src"}, nil)
			c := rawNode(t, h.r, "src")
			// Harmless oddities first: unknown drop tokens and an oversized
			// ACK are ignored.
			c.WriteMsg(&shm.Msg{Type: shm.MsgRelease, Tokens: []uint64{42}}, nil)
			c.WriteMsg(&shm.Msg{Type: shm.MsgAck, Count: 1000}, nil)
			tc.send(t, c)
			expectError(t, c, tc.want)
			for { // the daemon cleans up, then closes the connection
				if _, err := c.ReadMsg(); err != nil {
					break
				}
			}
			if regions, samples := h.r.regionCount(); regions != 0 || samples != 0 {
				t.Fatalf("%d regions, %d samples left", regions, samples)
			}
		})
	}
}
