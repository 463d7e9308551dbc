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

// cappedReader limits the next Read to cap bytes (once).
type cappedReader struct {
	r   io.Reader
	cap int
}

func (c *cappedReader) Read(p []byte) (int, error) {
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

// readBody fills dst with the next len(dst) bytes of the stream.
func (s *streamReader) readBody(dst []byte) error {
	if len(dst) < largeBody {
		_, err := io.ReadFull(s.Reader, dst)
		return err
	}
	k := min(s.Buffered(), len(dst))
	if _, err := io.ReadFull(s.Reader, dst[:k]); err != nil {
		return err
	}
	if k < len(dst) {
		if _, err := io.ReadFull(s.src.r, dst[k:]); err != nil {
			return err
		}
		s.src.cap = 32 // length, header and SN of the next batch
	}
	return nil
}
