package wire

// Message header bits shared by every message.
const (
	FlagZ  = 0x80 // an extension chain follows the fixed fields
	flagF1 = 0x20
	flagF2 = 0x40
	idMask = 0x1f
)

// MsgID returns the message id of a header byte.
func MsgID(h byte) byte { return h & idMask }

// Extension header bits.
const (
	ExtIDMask    = 0x0f
	ExtMandatory = 0x10
	ExtEncUnit   = 0x00
	ExtEncZ64    = 0x20
	ExtEncZBuf   = 0x40
	extEncMask   = 0x60
	ExtMore      = 0x80
)

// Ext is one decoded extension. Key is the header without the more bit
// (id, mandatory bit and encoding), which is how extensions are matched.
type Ext struct {
	Key   byte
	Value uint64 // z64 body
	Body  []byte // zbuf body (aliases the batch)
}

// Mandatory reports whether the M bit is set.
func (e Ext) Mandatory() bool { return e.Key&ExtMandatory != 0 }

// readExts reads an extension chain and calls known for each. known
// returns false for an extension it does not understand; such an
// extension is skipped unless it is mandatory, which fails decoding.
func readExts(r *Reader, what string, known func(Ext) bool) {
	for more := true; more && r.err == nil; {
		var e Ext
		e, more = readExt(r, what)
		if r.err != nil {
			return
		}
		if known != nil && known(e) {
			continue
		}
		if e.Mandatory() {
			r.Failf("%s: unknown mandatory extension 0x%02x", what, e.Key)
			return
		}
	}
}

// readExt reads one extension of a chain; more says whether another
// follows. A reserved encoding fails r.
func readExt(r *Reader, what string) (e Ext, more bool) {
	h := r.Byte()
	e = Ext{Key: h &^ ExtMore}
	switch h & extEncMask {
	case ExtEncUnit:
	case ExtEncZ64:
		e.Value = r.VLE()
	case ExtEncZBuf:
		e.Body = r.Slice(maxZ32, what+" extension")
	default:
		r.Failf("%s extension 0x%02x: reserved encoding", what, h)
	}
	return e, h&ExtMore != 0
}

// appendExtZ64 appends a z64 extension.
func appendExtZ64(b []byte, key byte, v uint64, more bool) []byte {
	if more {
		key |= ExtMore
	}
	b = append(b, key)
	return AppendVLE(b, v)
}

// appendExtZBuf appends a zbuf extension.
func appendExtZBuf(b []byte, key byte, body []byte, more bool) []byte {
	if more {
		key |= ExtMore
	}
	b = append(b, key)
	return AppendSlice(b, body)
}

// Extension keys (id | M | encoding) used in this package.
const (
	extNodeID      = 0x03 | ExtMandatory | ExtEncZ64  // network NodeId
	extQoSNet      = 0x01 | ExtEncZ64                 // network QoS
	extTimestamp   = 0x02 | ExtEncZBuf                // network Timestamp
	extWireExpr    = 0x0f | ExtMandatory | ExtEncZBuf // undeclare WireExpr
	extQoSFrame    = 0x01 | ExtMandatory | ExtEncZ64  // FRAME/FRAGMENT QoS
	extSourceInfo  = 0x01 | ExtEncZBuf                // PUT/DEL SourceInfo
	extPutAttach   = 0x03 | ExtEncZBuf                // PUT Attachment
	extDelAttach   = 0x02 | ExtEncZBuf                // DEL Attachment
	extPutShm      = 0x02 | ExtMandatory | ExtEncUnit // PUT Shm (never negotiated)
	extFragFirst   = 0x02 | ExtEncUnit                // FRAGMENT First (Patch)
	extFragDrop    = 0x03 | ExtEncUnit                // FRAGMENT Drop (Patch)
	defaultQoSPrio = 5                                // Priority::Data
)
