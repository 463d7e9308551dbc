package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a framed unix stream connection that can carry file descriptors
// (SCM_RIGHTS) alongside frames.
//
// Frames are a 4-byte little-endian body length followed by the body (type
// byte first). A descriptor is sent in the same sendmsg call as the frame
// that announces it (REGION), so it is always received no later than that
// frame's bytes; received descriptors queue up in arrival order and TakeFile
// hands them out.
//
// One goroutine may read (ReadMsg, TakeFile, Buffered) while any number
// write (WriteMsg, WriteFrames); writes are serialised internally.
type Conn struct {
	uc *net.UnixConn

	rbuf []byte
	r, w int
	oob  []byte
	fdmu sync.Mutex
	fds  []*os.File // received, not yet taken

	wmu  sync.Mutex
	wbuf []byte

	wakeOnce sync.Once
	wakeMu   sync.Mutex
	wake     int // eventfd that ends a WaitReadable at Close (edge.go); -1 none
	wakeErr  error
}

// NewConn wraps a connected unix stream socket.
func NewConn(uc *net.UnixConn) *Conn {
	return &Conn{uc: uc, rbuf: make([]byte, 64<<10), oob: make([]byte, unix.CmsgSpace(16*4)), wake: -1}
}

// Dial connects to a unix stream socket at path.
func Dial(path string) (*Conn, error) {
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return NewConn(uc), nil
}

// Close closes the socket and any received descriptors not yet taken. It
// may be called concurrently with a read.
func (c *Conn) Close() error {
	c.fdmu.Lock()
	for _, f := range c.fds {
		f.Close()
	}
	c.fds = nil
	c.fdmu.Unlock()
	c.wakeOnce.Do(func() {}) // no WaitReadable creates it from now on
	c.signalWake()
	err := c.uc.Close() // returns once a WaitReadable let go of the socket
	if err == nil {     // only the Close that closed the socket
		c.wakeMu.Lock()
		if c.wake >= 0 {
			unix.Close(c.wake)
			c.wake = -1
		}
		c.wakeMu.Unlock()
	}
	return err
}

// CloseWrite shuts down the writing side (the peer reads EOF).
func (c *Conn) CloseWrite() error { return c.uc.CloseWrite() }

// Buffered reports how many received bytes wait in the read buffer.
func (c *Conn) Buffered() int { return c.w - c.r }

// TakeFile returns the oldest received descriptor not yet taken.
func (c *Conn) TakeFile() (*os.File, error) {
	c.fdmu.Lock()
	defer c.fdmu.Unlock()
	if len(c.fds) == 0 {
		return nil, errors.New("no file descriptor arrived with the frame")
	}
	f := c.fds[0]
	c.fds = c.fds[1:]
	return f, nil
}

// readSome reads more bytes into p, collecting descriptors.
func (c *Conn) readSome(p []byte) (int, error) {
	n, oobn, _, _, err := c.uc.ReadMsgUnix(p, c.oob)
	if oobn > 0 {
		c.collectFds(c.oob[:oobn])
	}
	if n == 0 && err == nil {
		err = io.EOF
	}
	if n > 0 {
		return n, nil
	}
	return n, err
}

func (c *Conn) collectFds(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		c.fdmu.Lock()
		for _, fd := range fds {
			c.fds = append(c.fds, os.NewFile(uintptr(fd), "region"))
		}
		c.fdmu.Unlock()
	}
}

// ensure makes at least n bytes available in the read buffer.
func (c *Conn) ensure(n int) error {
	if c.w-c.r >= n {
		return nil
	}
	if c.r > 0 {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	for c.w < n {
		m, err := c.readSome(c.rbuf[c.w:])
		c.w += m
		if err != nil {
			if err == io.EOF && c.w > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// ReadFrame returns the next frame body. The body is freshly allocated and
// owned by the caller.
func (c *Conn) ReadFrame() ([]byte, error) {
	if err := c.ensure(4); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(c.rbuf[c.r:]))
	if n == 0 || n > MaxFrame {
		return nil, fmt.Errorf("%w: frame length %d", ErrMalformed, n)
	}
	c.r += 4
	body := make([]byte, n)
	got := copy(body, c.rbuf[c.r:c.w])
	c.r += got
	for got < n {
		rem := n - got
		if rem >= len(c.rbuf) {
			m, err := c.readSome(body[got:])
			got += m
			if err != nil {
				return nil, noEOF(err)
			}
			continue
		}
		if err := c.ensure(rem); err != nil {
			return nil, noEOF(err)
		}
		copy(body[got:], c.rbuf[c.r:c.r+rem])
		c.r += rem
		got = n
	}
	return body, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadMsg reads and decodes the next frame.
func (c *Conn) ReadMsg() (*Msg, error) {
	body, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	return Decode(body)
}

// WriteMsg encodes and sends m; if f is not nil its descriptor travels with
// the frame.
func (c *Conn) WriteMsg(m *Msg, f *os.File) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendFrame(c.wbuf[:0], m)
	return c.writeLocked(c.wbuf, f)
}

// WriteFrames sends already encoded frames in one write.
func (c *Conn) WriteFrames(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b, nil)
}

func (c *Conn) writeLocked(b []byte, f *os.File) error {
	if f != nil {
		oob := unix.UnixRights(int(f.Fd()))
		n, _, err := c.uc.WriteMsgUnix(b, oob, nil)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	for len(b) > 0 {
		n, err := c.uc.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// SetReadDeadline sets the deadline for reads (zero = none).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }
