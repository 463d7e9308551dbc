package shm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// EdgeSocketBuffer is the send buffer size of a direct edge's sending end.
// It is small on purpose: when a receiver stops reading (backpressure), the
// sender blocks after about this many bytes instead of piling up messages
// the receiver's queue bound would not allow.
const EdgeSocketBuffer = 16 << 10

// SocketPair creates a connected pair of unix stream sockets (close-on-exec)
// for a direct edge: send is the sender's end (its send buffer set to
// EdgeSocketBuffer), recv the receiver's. The caller passes them on and
// closes its copies.
func SocketPair() (send, recv *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, EdgeSocketBuffer)
	unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_RCVBUF, EdgeSocketBuffer)
	return os.NewFile(uintptr(fds[0]), "edge-send"), os.NewFile(uintptr(fds[1]), "edge-recv"), nil
}

// FileConn wraps a unix stream socket received as a descriptor (one end of
// a SocketPair). f is closed; the Conn owns a duplicate.
func FileConn(f *os.File) (*Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("edge socket: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, errors.New("edge socket: not a unix socket")
	}
	return NewConn(uc), nil
}

// ErrWouldBlock is returned by ReadFrameNow when no complete frame can be
// read without blocking.
var ErrWouldBlock = errors.New("no complete frame available")

// ReadFrameNow returns the next frame body when it is buffered or can be
// read without blocking, ErrWouldBlock when the socket has no more bytes
// for now, io.EOF at the end of the stream. It may be called by several
// goroutines in turn but never at the same time (the caller serialises
// it, and with ReadFrame). The body is freshly allocated.
//
// WaitReadable may only follow a ReadFrameNow that returned ErrWouldBlock
// (the socket was drained); otherwise it can wait for bytes that already
// arrived.
func (c *Conn) ReadFrameNow() ([]byte, error) {
	for {
		if body, ok, err := c.bufferedFrame(); ok || err != nil {
			return body, err
		}
		n, err := c.recvNow(c.rbuf[c.w:])
		c.w += n
		if err != nil {
			if err == io.EOF && c.w > c.r {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// bufferedFrame takes a complete frame from the read buffer, making room
// for the rest of an incomplete one.
func (c *Conn) bufferedFrame() ([]byte, bool, error) {
	avail := c.w - c.r
	if avail >= 4 {
		n := int(uint32(c.rbuf[c.r]) | uint32(c.rbuf[c.r+1])<<8 | uint32(c.rbuf[c.r+2])<<16 | uint32(c.rbuf[c.r+3])<<24)
		if n == 0 || n > MaxFrame {
			return nil, false, fmt.Errorf("%w: frame length %d", ErrMalformed, n)
		}
		if avail >= 4+n {
			body := make([]byte, n)
			copy(body, c.rbuf[c.r+4:c.r+4+n])
			c.r += 4 + n
			return body, true, nil
		}
		if 4+n > len(c.rbuf) {
			grown := make([]byte, 4+n)
			c.w = copy(grown, c.rbuf[c.r:c.w])
			c.rbuf, c.r = grown, 0
			return nil, false, nil
		}
	}
	if c.r > 0 && (c.w == len(c.rbuf) || c.r == c.w) {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	return nil, false, nil
}

// recvNow reads once without blocking, collecting descriptors.
func (c *Conn) recvNow(p []byte) (int, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n, oobn int
	var rerr error
	cerr := rc.Control(func(fd uintptr) {
		for {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), p, c.oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
			if rerr != unix.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	if oobn > 0 {
		c.collectFds(c.oob[:oobn])
	}
	switch {
	case rerr == unix.EAGAIN:
		return 0, ErrWouldBlock
	case rerr == unix.ECONNRESET:
		// The peer closed its end with bytes we sent it still unread (a
		// sender exiting before it read the last RELEASEs). Linux reports
		// that only once everything the peer wrote has been read, so it
		// is the end of the stream like EOF.
		return 0, io.EOF
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "unix", Err: os.NewSyscallError("recvmsg", rerr)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// WaitReadable blocks until the socket has bytes to read, is at EOF, or
// is closed (then it returns an error). See ReadFrameNow.
//
// The wait is a blocking poll(2) in this goroutine's thread, not Go's
// network poller: the kernel wakes the sleeping thread itself when bytes
// arrive, one wake-up instead of two (the poller's thread, then the
// goroutine's), like the eventfd baseline of docs/benchmarks.md. The
// thread stays with the goroutine while it waits. Close interrupts the
// wait through the Conn's wake eventfd.
func (c *Conn) WaitReadable() error { return c.WaitReadableOr(-1) }

// WaitReadableOr is WaitReadable that also returns when descriptor extra
// (when >= 0) is readable.
func (c *Conn) WaitReadableOr(extra int) error {
	if err := c.initWake(); err != nil {
		return err
	}
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	cerr := rc.Control(func(fd uintptr) {
		// Close closes the eventfd only after the socket, which waits for
		// this function to return: it is open here.
		c.wakeMu.Lock()
		wake := c.wake
		c.wakeMu.Unlock()
		if wake < 0 { // a Close came before the first wait created it
			perr = net.ErrClosed
			return
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}, {Fd: int32(extra), Events: unix.POLLIN}}
		for {
			fds[0].Revents, fds[1].Revents, fds[2].Revents = 0, 0, 0
			_, perr = unix.Poll(fds, -1)
			if perr != unix.EINTR {
				break
			}
		}
		if perr == nil && fds[1].Revents != 0 {
			perr = net.ErrClosed
		}
	})
	if cerr != nil {
		return cerr
	}
	return perr
}

// initWake creates the eventfd Close signals to end a WaitReadable.
func (c *Conn) initWake() error {
	c.wakeOnce.Do(func() {
		fd, err := newEventfd()
		if err != nil {
			c.wakeErr = err
			return
		}
		c.wakeMu.Lock()
		c.wake = fd
		c.wakeMu.Unlock()
	})
	return c.wakeErr
}

// signalWake ends a WaitReadable in progress (Close).
func (c *Conn) signalWake() {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	if c.wake >= 0 {
		signalEventfd(c.wake)
	}
}

// newEventfd creates a non-blocking, close-on-exec eventfd.
func newEventfd() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return fd, nil
}

// signalEventfd adds 1 to an eventfd's counter; a counter already at its
// maximum (EAGAIN) is signalled enough.
func signalEventfd(fd int) error {
	var one [8]byte
	one[0] = 1
	if _, err := unix.Write(fd, one[:]); err != nil && err != unix.EAGAIN {
		return err
	}
	return nil
}
