package shm

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func edgePair(t *testing.T) (send, recv *Conn) {
	t.Helper()
	sf, rf, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := unix.GetsockoptInt(int(sf.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil || v > 4*EdgeSocketBuffer {
		t.Fatalf("send buffer %d bytes, %v: want about %d", v, err, EdgeSocketBuffer)
	}
	if send, err = FileConn(sf); err != nil {
		t.Fatal(err)
	}
	if recv, err = FileConn(rf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close(); recv.Close() })
	return send, recv
}

// ReadFrameNow returns whole frames as they become available, says when
// it would block, keeps partial frames (also ones larger than its buffer)
// across calls, collects descriptors, and reports EOF.
func TestReadFrameNow(t *testing.T) {
	send, recv := edgePair(t)
	if _, err := recv.ReadFrameNow(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("empty socket: %v, want ErrWouldBlock", err)
	}
	big := bytes.Repeat([]byte{7}, 200<<10) // larger than the read buffer
	frame := AppendFrame(nil, &Msg{Type: MsgInput, ID: "in", Data: big})
	done := make(chan error, 1)
	go func() { // the socket buffer is small: the writer blocks until read
		_, err := send.uc.Write(frame[:10])
		if err == nil {
			time.Sleep(10 * time.Millisecond)
			_, err = send.uc.Write(frame[10:])
		}
		done <- err
	}()
	var body []byte
	for body == nil {
		b, err := recv.ReadFrameNow()
		switch {
		case errors.Is(err, ErrWouldBlock):
			if err := recv.WaitReadable(); err != nil {
				t.Fatal(err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			body = b
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m, err := Decode(body)
	if err != nil || !bytes.Equal(m.Data, big) {
		t.Fatalf("big frame: %v", err)
	}

	reg, err := NewRegion("edge", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	send.WriteMsg(&Msg{Type: MsgRegion, Region: 1, Size: 4096}, reg.File())
	send.WriteMsg(&Msg{Type: MsgRegionClosed, Region: 1}, nil)
	if err := recv.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	var got []MsgType
	for len(got) < 2 {
		b, err := recv.ReadFrameNow()
		if errors.Is(err, ErrWouldBlock) {
			recv.WaitReadable()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		m, _ := Decode(b)
		got = append(got, m.Type)
	}
	f, err := recv.TakeFile()
	if err != nil || got[0] != MsgRegion || got[1] != MsgRegionClosed {
		t.Fatalf("frames %v, descriptor %v", got, err)
	}
	f.Close()

	send.uc.Write(frame[:7]) // a sender killed mid-frame
	send.Close()
	for {
		_, err := recv.ReadFrameNow()
		if errors.Is(err, ErrWouldBlock) {
			recv.WaitReadable()
			continue
		}
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("partial frame then EOF: %v, want io.ErrUnexpectedEOF", err)
		}
		break
	}
}

// WaitReadable returns at once when bytes arrived before it was called
// (the poller alone would have forgotten them), and on EOF.
func TestWaitReadableSeesEarlierBytes(t *testing.T) {
	send, recv := edgePair(t)
	if _, err := recv.ReadFrameNow(); !errors.Is(err, ErrWouldBlock) {
		t.Fatal(err)
	}
	send.WriteMsg(&Msg{Type: MsgAck, Count: 1}, nil)
	time.Sleep(5 * time.Millisecond) // the readiness event fires before the wait
	waited := make(chan error, 1)
	go func() { waited <- recv.WaitReadable() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitReadable missed bytes that were already there")
	}
	if b, err := recv.ReadFrameNow(); err != nil || MsgType(b[0]) != MsgAck {
		t.Fatalf("%v, %v", b, err)
	}
	send.Close()
	if err := recv.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	if _, err := recv.ReadFrameNow(); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

// WaitReadable blocks in the kernel, outside Go's poller: Close from
// another goroutine must still end it (through the wake eventfd), close
// the socket for good, and a second Close must be harmless.
func TestWaitReadableEndsAtClose(t *testing.T) {
	_, recv := edgePair(t)
	waited := make(chan error, 1)
	go func() { waited <- recv.WaitReadable() }()
	time.Sleep(20 * time.Millisecond) // let it block
	select {
	case err := <-waited:
		t.Fatalf("WaitReadable returned before anything happened: %v", err)
	default:
	}
	closed := make(chan error, 1)
	go func() { closed <- recv.Close() }()
	for _, ch := range []chan error{waited, closed} {
		select {
		case err := <-ch:
			if ch == waited && !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WaitReadable after Close: %v, want net.ErrClosed", err)
			}
			if ch == closed && err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end a WaitReadable in progress")
		}
	}
	if err := recv.Close(); err == nil {
		t.Fatal("second Close reported success")
	}
	if err := recv.WaitReadable(); err == nil {
		t.Fatal("WaitReadable on a closed conn succeeded")
	}
}

// A sender that exits without reading what the receiver sent it (the
// last RELEASEs) makes Linux reset the connection; the receiver still
// gets every frame the sender wrote, then EOF rather than an error.
func TestReadFrameNowResetIsEOF(t *testing.T) {
	send, recv := edgePair(t)
	for i := range 3 {
		if err := send.WriteMsg(&Msg{Type: MsgAck, Count: uint32(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := recv.WriteMsg(&Msg{Type: MsgRelease, Tokens: []uint64{1}}, nil); err != nil {
		t.Fatal(err)
	}
	send.Close() // with the RELEASE unread
	for i := range 3 {
		b, err := recv.ReadFrameNow()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		m, err := Decode(b)
		if err != nil || m.Count != uint32(i) {
			t.Fatalf("frame %d: %+v, %v", i, m, err)
		}
	}
	if _, err := recv.ReadFrameNow(); err != io.EOF {
		t.Fatalf("after the sender's frames: %v, want io.EOF", err)
	}
}

// A write to an edge whose receiver is gone fails with a broken pipe.
func TestEdgeWriteToDeadReceiver(t *testing.T) {
	send, recv := edgePair(t)
	recv.Close()
	err := send.WriteMsg(&Msg{Type: MsgAck, Count: 1}, nil)
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write to a closed edge: %v, want a broken pipe", err)
	}
}
