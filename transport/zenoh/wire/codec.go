// Package wire is the codec of the Zenoh 1.0 wire protocol (version 0x09):
// VLE integers, extension chains, transport messages (INIT, OPEN, CLOSE,
// KEEPALIVE, FRAME, FRAGMENT), network messages (PUSH, DECLARE, INTEREST,
// REQUEST, RESPONSE, RESPONSE_FINAL, OAM), the data bodies PUT and DEL,
// and the usrpwd bodies of the handshake's Auth extension (auth.go).
//
// Encoders append to a byte slice. Decoders read from a Reader over one
// batch; decoded byte slices (payloads, attachments, cookies) alias the
// batch and are valid only as long as the batch buffer is. Every length
// read from the wire is checked against the bytes left in the batch before
// anything is allocated, so no input can make a decoder allocate more than
// a small multiple of its own size.
//
// Layout of a header byte (messages) and of an extension header:
//
//	 7 6 5 4 3 2 1 0        7 6 5 4 3 2 1 0
//	+-+-+-+-+-+-+-+-+      +-+-+-+-+-+-+-+-+
//	|Z|F2|F1|  ID   |      |Z|ENC|M|  ID   |
//	+-+-+-+-+-+-+-+-+      +-+-+-+-+-+-+-+-+
//	message header         extension header (ENC: 00 unit, 01 z64, 10 zbuf)
package wire

import (
	"errors"
	"fmt"
)

// Version is the Zenoh wire protocol version this codec speaks.
const Version = 0x09

// ErrShort is returned when a message ends before a field it declares.
var ErrShort = errors.New("zenoh wire: message truncated")

// ErrMalformed is returned for bytes that are not a valid encoding.
var ErrMalformed = errors.New("zenoh wire: malformed message")

// maxVLELen is the longest VLE encoding of a u64: eight 7-bit groups and a
// ninth byte that carries the last 8 bits.
const maxVLELen = 9

// Reader decodes primitives from a byte slice. The first failure is
// sticky: later reads return zero values and Err reports the failure.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err reports the first decoding failure, if any.
func (r *Reader) Err() error { return r.err }

// Len reports the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Offset reports how many bytes have been consumed.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Failf records a malformed-input error with context.
func (r *Reader) Failf(format string, args ...any) {
	r.fail(fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...)))
}

// Peek returns the next byte without consuming it; ok is false at the end.
func (r *Reader) Peek() (byte, bool) {
	if r.err != nil || r.off >= len(r.buf) {
		return 0, false
	}
	return r.buf[r.off], true
}

// Byte reads one raw byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.buf) {
		r.fail(ErrShort)
		return 0
	}
	b := r.buf[r.off]
	r.off++
	return b
}

// Bytes reads n raw bytes. The result aliases the underlying buffer.
func (r *Reader) Bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.Len() {
		r.fail(ErrShort)
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// Rest consumes and returns all unread bytes.
func (r *Reader) Rest() []byte { return r.Bytes(r.Len()) }

// VLE reads a variable-length unsigned integer (LEB128, at most 9 bytes,
// the ninth carrying 8 bits). Overlong encodings (a final zero group after
// the first byte) are rejected.
func (r *Reader) VLE() uint64 {
	var v uint64
	for i := 0; i < maxVLELen; i++ {
		b := r.Byte()
		if r.err != nil {
			return 0
		}
		if i == maxVLELen-1 {
			if b == 0 {
				r.Failf("overlong VLE")
				return 0
			}
			return v | uint64(b)<<56
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				r.Failf("overlong VLE")
				return 0
			}
			return v
		}
	}
	return v
}

// VLEBounded reads a VLE integer that must not exceed max.
func (r *Reader) VLEBounded(max uint64, what string) uint64 {
	v := r.VLE()
	if v > max {
		r.Failf("%s %d exceeds %d", what, v, max)
		return 0
	}
	return v
}

// Slice reads a VLE length (bounded by max) and that many bytes.
func (r *Reader) Slice(max uint64, what string) []byte {
	n := r.VLEBounded(max, what+" length")
	if r.err != nil {
		return nil
	}
	if n > uint64(r.Len()) {
		r.fail(fmt.Errorf("%s: %w", what, ErrShort))
		return nil
	}
	return r.Bytes(int(n))
}

// AppendVLE appends the VLE encoding of v.
func AppendVLE(b []byte, v uint64) []byte {
	for i := 0; i < maxVLELen-1; i++ {
		if v < 0x80 {
			return append(b, byte(v))
		}
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// VLELen reports the length of the VLE encoding of v.
func VLELen(v uint64) int {
	n := 1
	for v >= 0x80 && n < maxVLELen {
		v >>= 7
		n++
	}
	return n
}

// AppendSlice appends a VLE length and the bytes of p.
func AppendSlice(b, p []byte) []byte {
	b = AppendVLE(b, uint64(len(p)))
	return append(b, p...)
}

// Bounds of VLE-encoded fields, by their declared width.
const (
	maxZ8  = 0xff
	maxZ16 = 0xffff
	maxZ32 = 0xffffffff
)
