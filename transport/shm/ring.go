package shm

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is a single-producer single-consumer frame ring in a shared memory
// region, with an eventfd the producer signals when the consumer sleeps.
//
// Layout: head (u64, bytes published) at 0, tail (u64, bytes consumed) at
// 64, the consumer's sleeping flag (u32) at 128; data from 4096. A frame is
// as on a socket (u32 body length, body), padded to 4 bytes; a length of
// ringPad says the rest of the data area up to its end is padding.
type Ring struct {
	mem          []byte
	data         []byte
	size         uint64
	evfd         int
	mfile, efile *os.File
}

const (
	ringHeader = 4096 // one page: the region stays a whole number of pages
	ringPad    = 0xFFFFFFFF
)

// NewRing creates a ring with a data area of size bytes (a power of two).
func NewRing(size int) (*Ring, error) {
	if size <= 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring size %d: not a power of two", size)
	}
	r, err := NewRegion("adora-ring", ringHeader+size)
	if err != nil {
		return nil, err
	}
	efd, err := newEventfd()
	if err != nil {
		r.Close()
		return nil, err
	}
	return &Ring{mem: r.Data, data: r.Data[ringHeader:], size: uint64(size), evfd: efd, mfile: r.File(), efile: os.NewFile(uintptr(efd), "ring-event")}, nil
}

// OpenRing maps a ring received as its memory and eventfd descriptors.
func OpenRing(mem, ev *os.File, size uint64) (*Ring, error) {
	if size == 0 || size&(size-1) != 0 || size > 1<<30 {
		return nil, fmt.Errorf("ring size %d: not a power of two", size)
	}
	if err := CheckRegionFile(mem, ringHeader+size); err != nil {
		return nil, err
	}
	data, err := unix.Mmap(int(mem.Fd()), 0, int(ringHeader+size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring: %w", err)
	}
	return &Ring{mem: data, data: data[ringHeader:], size: size, evfd: int(ev.Fd()), mfile: mem, efile: ev}, nil
}

// Files are the descriptors to pass to the consumer.
func (r *Ring) Files() (mem, ev *os.File) { return r.mfile, r.efile }

// Size is the data area's size.
func (r *Ring) Size() uint64 { return r.size }

// EventFd is the eventfd the producer signals.
func (r *Ring) EventFd() int { return r.evfd }

func (r *Ring) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }
func (r *Ring) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

func (r *Ring) head() *uint64     { return r.u64(0) }
func (r *Ring) tail() *uint64     { return r.u64(64) }
func (r *Ring) sleeping() *uint32 { return r.u32(128) }

// RingOnSocket is RING's Count in a marker frame inside a ring: the next
// frame of the stream is on the edge socket instead (it did not fit).
const RingOnSocket = 2

// Fits says whether a frame of n bytes can go into the ring.
func (r *Ring) Fits(n int) bool { return uint64(n+3)&^3+8 <= r.size/2 }

// Put publishes one frame (a complete length-prefixed frame as AppendFrame
// renders it); false when there is no room now. It signals the consumer
// when it sleeps.
func (r *Ring) Put(frame []byte) (bool, error) {
	n := uint64(len(frame)+3) &^ 3
	if !r.Fits(len(frame)) {
		return false, fmt.Errorf("frame of %d bytes does not fit a ring of %d", len(frame), r.size)
	}
	head := atomic.LoadUint64(r.head())
	tail := atomic.LoadUint64(r.tail())
	pos := head % r.size
	need := n
	pad := uint64(0)
	if pos+n > r.size {
		pad = r.size - pos
		need += pad
	}
	if head+need-tail > r.size {
		return false, nil
	}
	if pad > 0 {
		binary.LittleEndian.PutUint32(r.data[pos:], ringPad)
		pos = 0
	}
	copy(r.data[pos:], frame)
	atomic.StoreUint64(r.head(), head+need)
	if atomic.LoadUint32(r.sleeping()) != 0 {
		if err := signalEventfd(r.evfd); err != nil {
			return true, fmt.Errorf("ring signal: %w", err)
		}
	}
	return true, nil
}

// Next returns the body of the next frame (a copy), or nil when the ring
// is empty.
func (r *Ring) Next() ([]byte, error) {
	tail := atomic.LoadUint64(r.tail())
	head := atomic.LoadUint64(r.head())
	for tail != head {
		pos := tail % r.size
		if r.size-pos < 4 {
			return nil, fmt.Errorf("%w: ring frame at the end of the area", ErrMalformed)
		}
		l := binary.LittleEndian.Uint32(r.data[pos:])
		if l == ringPad {
			tail += r.size - pos
			continue
		}
		n := (4 + uint64(l) + 3) &^ 3
		if l == 0 || pos+n > r.size || tail+n > head {
			return nil, fmt.Errorf("%w: ring frame length %d", ErrMalformed, l)
		}
		body := make([]byte, l)
		copy(body, r.data[pos+4:pos+4+uint64(l)])
		atomic.StoreUint64(r.tail(), tail+n)
		return body, nil
	}
	atomic.StoreUint64(r.tail(), tail)
	return nil, nil
}

// PrepareSleep announces that the consumer is about to wait and clears old
// signals; it returns false when frames arrived meanwhile (do not sleep).
// Woke must follow a true PrepareSleep.
func (r *Ring) PrepareSleep() bool {
	atomic.StoreUint32(r.sleeping(), 1)
	var b [8]byte
	unix.Read(r.evfd, b[:])
	if atomic.LoadUint64(r.head()) != atomic.LoadUint64(r.tail()) {
		atomic.StoreUint32(r.sleeping(), 0)
		return false
	}
	return true
}

// Woke clears the sleeping flag.
func (r *Ring) Woke() { atomic.StoreUint32(r.sleeping(), 0) }

// Close unmaps the ring and closes its descriptors; nil-safe, once.
func (r *Ring) Close() error {
	if r == nil || r.mem == nil {
		return nil
	}
	unix.Munmap(r.mem)
	r.mem, r.data = nil, nil
	r.efile.Close()
	return r.mfile.Close()
}
