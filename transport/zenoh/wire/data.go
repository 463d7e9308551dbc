package wire

// Data (zenoh) message ids, carried inside network messages.
const (
	IDPut   = 0x01
	IDDel   = 0x02
	IDQuery = 0x03
	IDReply = 0x04
	IDErr   = 0x05
)

const (
	flagDataT = flagF1 // timestamp present
	flagPutE  = flagF2 // encoding present
)

// Timestamp is an HLC timestamp: NTP64 time and the id of its source.
type Timestamp struct {
	Time uint64
	ID   []byte
}

// Encoding is a Zenoh encoding: a numeric id and an optional schema.
type Encoding struct {
	ID     uint16
	Schema []byte // nil when absent
}

// Put publishes a value.
type Put struct {
	Timestamp     *Timestamp
	Encoding      *Encoding // nil: the default (zenoh/bytes, id 0)
	Attachment    []byte
	HasAttachment bool
	Payload       []byte
}

func appendTimestamp(b []byte, t *Timestamp) []byte {
	b = AppendVLE(b, t.Time)
	return AppendSlice(b, t.ID)
}

func readTimestamp(r *Reader) *Timestamp {
	t := &Timestamp{Time: r.VLE()}
	t.ID = r.Slice(MaxZIDLen, "timestamp id")
	return t
}

func appendEncoding(b []byte, e *Encoding) []byte {
	v := uint64(e.ID) << 1
	if e.Schema != nil {
		v |= 1
	}
	b = AppendVLE(b, v)
	if e.Schema != nil {
		b = AppendSlice(b, e.Schema)
	}
	return b
}

func readEncoding(r *Reader) *Encoding {
	v := r.VLEBounded(maxZ32, "encoding")
	e := &Encoding{ID: uint16(v >> 1)}
	if v>>1 > 0xffff {
		r.Failf("encoding id %d too large", v>>1)
	}
	if v&1 != 0 {
		e.Schema = r.Slice(maxZ8, "encoding schema")
		if e.Schema == nil {
			e.Schema = []byte{}
		}
	}
	return e
}

// AppendPut appends a PUT.
func AppendPut(b []byte, p *Put) []byte {
	b = appendPutHeader(b, p)
	return AppendSlice(b, p.Payload)
}

// appendPutHeader appends a PUT up to, not including, the payload length.
func appendPutHeader(b []byte, p *Put) []byte {
	h := byte(IDPut)
	if p.Timestamp != nil {
		h |= flagDataT
	}
	if p.Encoding != nil {
		h |= flagPutE
	}
	if p.HasAttachment {
		h |= FlagZ
	}
	b = append(b, h)
	if p.Timestamp != nil {
		b = appendTimestamp(b, p.Timestamp)
	}
	if p.Encoding != nil {
		b = appendEncoding(b, p.Encoding)
	}
	if p.HasAttachment {
		b = appendExtZBuf(b, extPutAttach, p.Attachment, false)
	}
	return b
}

func readPut(r *Reader, h byte) *Put {
	p := &Put{}
	if h&flagDataT != 0 {
		p.Timestamp = readTimestamp(r)
	}
	if h&flagPutE != 0 {
		p.Encoding = readEncoding(r)
	}
	if h&FlagZ != 0 {
		readExts(r, "PUT", func(e Ext) bool {
			switch e.Key {
			case extPutAttach:
				p.Attachment, p.HasAttachment = e.Body, true
			case extSourceInfo:
			default:
				return false
			}
			return true
		})
	}
	p.Payload = r.Slice(maxZ32, "PUT payload")
	return p
}

// Del deletes a key.
type Del struct {
	Timestamp     *Timestamp
	Attachment    []byte
	HasAttachment bool
}

// AppendDel appends a DEL.
func AppendDel(b []byte, d *Del) []byte {
	h := byte(IDDel)
	if d.Timestamp != nil {
		h |= flagDataT
	}
	if d.HasAttachment {
		h |= FlagZ
	}
	b = append(b, h)
	if d.Timestamp != nil {
		b = appendTimestamp(b, d.Timestamp)
	}
	if d.HasAttachment {
		b = appendExtZBuf(b, extDelAttach, d.Attachment, false)
	}
	return b
}

func readDel(r *Reader, h byte) *Del {
	d := &Del{}
	if h&flagDataT != 0 {
		d.Timestamp = readTimestamp(r)
	}
	if h&FlagZ != 0 {
		readExts(r, "DEL", func(e Ext) bool {
			switch e.Key {
			case extDelAttach:
				d.Attachment, d.HasAttachment = e.Body, true
			case extSourceInfo:
			default:
				return false
			}
			return true
		})
	}
	return d
}

// readQuery skips a QUERY body: consolidation (flag C), parameters (flag
// P) and extensions (source info, body, attachment).
func readQuery(r *Reader, h byte) {
	if h&flagF1 != 0 {
		r.VLE()
	}
	if h&flagF2 != 0 {
		r.Slice(maxZ32, "query parameters")
	}
	if h&FlagZ != 0 {
		readExts(r, "QUERY", nil)
	}
}

// readReply skips a REPLY body: consolidation (flag C), extensions, then a
// PUT or DEL.
func readReply(r *Reader, h byte) {
	if h&flagF1 != 0 {
		r.VLE()
	}
	if h&FlagZ != 0 {
		readExts(r, "REPLY", nil)
	}
	bh := r.Byte()
	switch MsgID(bh) {
	case IDPut:
		readPut(r, bh)
	case IDDel:
		readDel(r, bh)
	default:
		r.Failf("REPLY: unexpected body id 0x%02x", MsgID(bh))
	}
}

// readErr skips an ERR body: encoding (flag E), extensions, payload.
func readErr(r *Reader, h byte) {
	if h&flagPutE != 0 {
		readEncoding(r)
	}
	if h&FlagZ != 0 {
		readExts(r, "ERR", nil)
	}
	r.Slice(maxZ32, "ERR payload")
}
