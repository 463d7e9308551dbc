package zenoh

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport/zenoh/wire"
)

// A write that fails because the peer closed the connection does not
// hide why the peer closed it: the CLOSE it sent before is still read,
// and its reason is the link's cause (a duplicate link's "max links",
// not "broken pipe").
func TestPeerCloseReasonWinsOverFailedWrite(t *testing.T) {
	s := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	p := dialRaw(t, s)
	p.handshake(0x42, 10*time.Second)
	waitFor(t, "link", func() bool { return len(s.Peers()) == 1 })
	l := onlyLink(t, s)

	// Our write fails as it does when the peer has gone: the peer then
	// says why, and closes.
	l.fail(&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)})
	p.write(wire.AppendClose(nil, &wire.Close{Reason: wire.CloseMaxLinks}))
	p.conn.Close()

	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
		t.Fatal("link did not close")
	}
	var ce *closeError
	if !errors.As(l.closeErr, &ce) || ce.reason != wire.CloseMaxLinks {
		t.Fatalf("link closed with %v, want the peer's reason %d", l.closeErr, wire.CloseMaxLinks)
	}
}

// A failed write with nothing more from the peer still ends the link,
// with the write error as its cause, within the read grace.
func TestFailedWriteWithoutPeerCloseEndsLink(t *testing.T) {
	s := openT(t, Config{Listen: []string{"tcp/127.0.0.1:0"}})
	p := dialRaw(t, s)
	p.handshake(0x43, 10*time.Second)
	waitFor(t, "link", func() bool { return len(s.Peers()) == 1 })
	l := onlyLink(t, s)

	l.fail(&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)})
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
		t.Fatal("link did not close after a failed write")
	}
	if !errors.Is(l.closeErr, syscall.ECONNRESET) {
		t.Fatalf("link closed with %v, want the write error", l.closeErr)
	}
}
