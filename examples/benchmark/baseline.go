package benchmark

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The physical baselines run the same shape between two processes without
// adora: a parent (measuring) and a child (sending) share a unix socket, or
// a memfd region plus two eventfds. They bound what any data plane on this
// machine can reach.

// SocketSend is the child side of the unix-socket baseline: frames of
// [u32 length][i64 send time][payload] on conn.
func SocketSend(conn io.Writer, s Shape) error {
	buf := make([]byte, 12+maxSize(s))
	send := func(size int) error {
		frame := buf[:12+size]
		binary.LittleEndian.PutUint32(frame, uint32(8+size))
		binary.LittleEndian.PutUint64(frame[4:], uint64(time.Now().UnixNano()))
		_, err := conn.Write(frame)
		return err
	}
	return runShape(s, send, func() error { return send(1) })
}

func maxSize(s Shape) int {
	m := 1
	for _, v := range s.Sizes {
		m = max(m, v)
	}
	return m
}

// runShape drives one sender through the benchmark phases.
func runShape(s Shape, send func(size int) error, sentinel func() error) error {
	for _, size := range s.Sizes {
		for i := 0; i < s.Count; i++ {
			if err := send(size); err != nil {
				return err
			}
			time.Sleep(s.Interval)
		}
		time.Sleep(s.Pause)
	}
	for _, size := range s.Sizes {
		for i := 0; i < s.Count; i++ {
			if err := send(size); err != nil {
				return err
			}
		}
		if err := sentinel(); err != nil {
			return err
		}
		time.Sleep(s.Pause)
	}
	return nil
}

// collector turns (size, send time, arrival) into results, with the same
// bracketing as the sink.
type collector struct {
	s       Shape
	results []Result
	lat     []time.Duration
	latSize int
	phase   int // 0 latency, 1 throughput
	got     int
	tpStart time.Time
	tpCount int
	tpSize  int
}

func (c *collector) add(size int, sent, now time.Time) {
	if c.phase == 0 {
		if size != c.latSize && len(c.lat) > 0 {
			c.results = append(c.results, Stats("latency", c.latSize, c.lat))
			c.lat = nil
		}
		c.latSize = size
		c.lat = append(c.lat, now.Sub(sent))
		c.got++
		if c.got == c.s.Count*len(c.s.Sizes) {
			c.results = append(c.results, Stats("latency", c.latSize, c.lat))
			c.phase = 1
		}
		return
	}
	if size == 1 && c.tpCount > 0 {
		el := now.Sub(c.tpStart)
		c.results = append(c.results, Result{Kind: "throughput", Size: c.tpSize, N: c.tpCount, Elapsed: el, PerSec: float64(c.tpCount) / el.Seconds()})
		c.tpCount = 0
		return
	}
	if c.tpCount == 0 {
		c.tpStart, c.tpSize = sent, size
	}
	c.tpCount++
}

func (c *collector) done() bool { return c.phase == 1 && len(c.results) == 2*len(c.s.Sizes) }

// SocketReceive is the parent side of the unix-socket baseline.
func SocketReceive(conn io.Reader, s Shape) ([]Result, error) {
	c := &collector{s: s, latSize: -1}
	buf := make([]byte, 12+maxSize(s))
	for !c.done() {
		if _, err := io.ReadFull(conn, buf[:4]); err != nil {
			return nil, err
		}
		n := int(binary.LittleEndian.Uint32(buf))
		if _, err := io.ReadFull(conn, buf[4:4+n]); err != nil {
			return nil, err
		}
		now := time.Now()
		sent := time.Unix(0, int64(binary.LittleEndian.Uint64(buf[4:])))
		c.add(n-8, sent, now)
	}
	return c.results, nil
}

// ShmChannel is the shared-memory baseline: a region whose first 16 bytes
// hold the send time and the payload size, an eventfd the sender signals
// after writing, and one the receiver signals when the slot is free again.
// Waits are blocking eventfd reads (the thread sleeps in the kernel), the
// fastest wake-up available without spinning.
type ShmChannel struct {
	Region []byte
	notify int
	ack    int
	files  []*os.File
}

// NewShmChannel creates the region and eventfds; files are for the child.
func NewShmChannel(size int) (*ShmChannel, []*os.File, error) {
	fd, err := unix.MemfdCreate("adora-bench", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, err
	}
	mem := os.NewFile(uintptr(fd), "bench-region")
	if err := mem.Truncate(int64(16 + size)); err != nil {
		return nil, nil, err
	}
	var files []*os.File
	for _, name := range []string{"notify", "ack"} {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return nil, nil, fmt.Errorf("eventfd: %w", err)
		}
		files = append(files, os.NewFile(uintptr(efd), name))
	}
	files = append([]*os.File{mem}, files...)
	ch, err := OpenShmChannel(files[0], files[1], files[2], 16+size)
	return ch, files, err
}

// OpenShmChannel maps the region and keeps the eventfds.
func OpenShmChannel(mem, notify, ack *os.File, size int) (*ShmChannel, error) {
	data, err := unix.Mmap(int(mem.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &ShmChannel{Region: data, notify: int(notify.Fd()), ack: int(ack.Fd()), files: []*os.File{mem, notify, ack}}, nil
}

func signal(fd int) error {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, err := unix.Write(fd, one[:])
	return err
}

func wait(fd int) error {
	var b [8]byte
	for {
		_, err := unix.Read(fd, b[:])
		if err != unix.EINTR {
			return err
		}
	}
}

// ShmSend is the child side: the payload is produced in place once, then
// each message stamps the header and signals; the next message waits for
// the receiver's ack (one slot).
func ShmSend(ch *ShmChannel, s Shape) error {
	first := true
	send := func(size int) error {
		if !first {
			if err := wait(ch.ack); err != nil {
				return err
			}
		}
		first = false
		binary.LittleEndian.PutUint64(ch.Region[8:], uint64(size))
		binary.LittleEndian.PutUint64(ch.Region, uint64(time.Now().UnixNano()))
		return signal(ch.notify)
	}
	return runShape(s, send, func() error { return send(1) })
}

// ShmReceive is the parent side.
func ShmReceive(ch *ShmChannel, s Shape) ([]Result, error) {
	c := &collector{s: s, latSize: -1}
	for !c.done() {
		if err := wait(ch.notify); err != nil {
			return nil, err
		}
		now := time.Now()
		sent := time.Unix(0, int64(binary.LittleEndian.Uint64(ch.Region)))
		size := int(binary.LittleEndian.Uint64(ch.Region[8:]))
		c.add(size, sent, now)
		if err := signal(ch.ack); err != nil {
			return nil, err
		}
	}
	return c.results, nil
}

// UnixPair returns a connected unix stream socket pair as a net.Conn for
// this process and an *os.File to hand to the child.
func UnixPair() (net.Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	mine := os.NewFile(uintptr(fds[0]), "bench-sock")
	defer mine.Close()
	c, err := net.FileConn(mine)
	if err != nil {
		return nil, nil, err
	}
	return c, os.NewFile(uintptr(fds[1]), "bench-sock-child"), nil
}
