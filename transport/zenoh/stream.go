package zenoh

import (
	"bufio"
	"io"
)

// readBufferSize is the buffer of a link's reader: many small batches
// are read with one system call.
const readBufferSize = 128 << 10

// streamReader reads a link: a bufio.Reader for length prefixes, headers
// and small batches, while large bodies (fragments, big frames) go
// straight from the socket into their destination, without passing
// through the buffer. After a large body the next refill is capped to a
// few bytes, so that it brings in the next header and not the next body.
type streamReader struct {
	*bufio.Reader
	src *cappedReader
}

// cappedReader is the source of the bufio.Reader: it first hands out
// bytes that a direct read took ahead of time (pending), then reads the
// connection, limiting the next read to cap bytes (once).
type cappedReader struct {
	r       io.Reader
	pending []byte
	pbuf    [32]byte
	cap     int
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.cap > 0 && len(p) > c.cap {
		p = p[:c.cap]
	}
	c.cap = 0
	return c.r.Read(p)
}

func newStreamReader(r io.Reader) *streamReader {
	c := &cappedReader{r: r}
	return &streamReader{Reader: bufio.NewReaderSize(c, readBufferSize), src: c}
}

// largeBody is the size from which a body is read straight from the
// socket.
const largeBody = 16 << 10

// readBody fills dst with the next len(dst) bytes of the stream. When
// ahead > 0 and dst has that much spare capacity, the direct read may
// also take up to ahead bytes that follow dst (the header of the next
// fragment, whose size is known in advance); they are handed out again
// before anything else, so the next header costs no system call.
func (s *streamReader) readBody(dst []byte, ahead int) error {
	if len(dst) < largeBody {
		_, err := io.ReadFull(s.Reader, dst)
		return err
	}
	k := min(s.Buffered(), len(dst))
	if _, err := io.ReadFull(s.Reader, dst[:k]); err != nil {
		return err
	}
	rest := dst[k:]
	if len(rest) == 0 {
		return nil
	}
	s.src.cap = 32 // length, header and SN of the next batch
	if ahead <= 0 || ahead > len(s.src.pbuf) || cap(rest) < len(rest)+ahead {
		_, err := io.ReadFull(s.src.r, rest)
		return err
	}
	buf := rest[:len(rest)+ahead]
	n, err := io.ReadAtLeast(s.src.r, buf, len(rest))
	if n > len(rest) {
		s.src.pending = append(s.src.pbuf[:0], buf[len(rest):n]...)
	}
	return err
}
