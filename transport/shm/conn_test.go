package shm

import (
	"bytes"
	"net"
	"os"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func socketPair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(fd int) *Conn {
		f := os.NewFile(uintptr(fd), "sock")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return NewConn(c.(*net.UnixConn))
	}
	a, b := mk(fds[0]), mk(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestConnBatchedFrames(t *testing.T) {
	a, b := socketPair(t)
	var buf []byte
	buf = AppendFrame(buf, &Msg{Type: MsgReady})
	for i := 0; i < 5; i++ {
		buf = AppendFrame(buf, &Msg{Type: MsgInput, ID: "in", Data: []byte{byte(i)}})
	}
	if err := a.WriteFrames(buf); err != nil {
		t.Fatal(err)
	}
	m, err := b.ReadMsg()
	if err != nil || m.Type != MsgReady {
		t.Fatalf("first frame %v, %v", m, err)
	}
	for i := 0; i < 5; i++ {
		m, err := b.ReadMsg()
		if err != nil || m.Type != MsgInput || !bytes.Equal(m.Data, []byte{byte(i)}) {
			t.Fatalf("frame %d: %+v, %v", i, m, err)
		}
	}
}

// Descriptors sent with frames arrive in order with them, also when many
// frames are in flight and reads coalesce them.
func TestConnPassesDescriptorsInOrder(t *testing.T) {
	a, b := socketPair(t)
	const n = 500
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			r, err := NewRegion("test", 4096)
			if err != nil {
				errc <- err
				return
			}
			r.Data[0] = byte(i)
			if err := a.WriteMsg(&Msg{Type: MsgRegion, Region: uint32(i), Size: 4096}, r.File()); err != nil {
				errc <- err
				return
			}
			r.Close()
			if err := a.WriteMsg(&Msg{Type: MsgOutput, ID: "o", Data: make([]byte, i*37%5000)}, nil); err != nil {
				errc <- err
				return
			}
		}
		errc <- a.Close()
	}()
	for i := 0; i < n; i++ {
		m, err := b.ReadMsg()
		if err != nil || m.Type != MsgRegion || m.Region != uint32(i) {
			t.Fatalf("frame %d: %+v, %v", i, m, err)
		}
		f, err := b.TakeFile()
		if err != nil {
			t.Fatalf("region %d: %v", i, err)
		}
		data, err := MapRegion(f, 4096)
		f.Close()
		if err != nil || data[0] != byte(i) {
			t.Fatalf("region %d: first byte %v, %v", i, data[0], err)
		}
		Unmap(data)
		if m, err := b.ReadMsg(); err != nil || m.Type != MsgOutput || len(m.Data) != i*37%5000 {
			t.Fatalf("output %d: %v", i, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
