package wire

import "unicode/utf8"

// Network message ids.
const (
	IDInterest      = 0x19
	IDResponseFinal = 0x1a
	IDResponse      = 0x1b
	IDRequest       = 0x1c
	IDPush          = 0x1d
	IDDeclare       = 0x1e
	IDNetworkOAM    = 0x1f
)

// IsNetworkID reports whether id belongs to the network message range.
func IsNetworkID(id byte) bool { return id >= IDInterest && id <= IDNetworkOAM }

// NetworkMessage is one of *Push, *Declare, *Interest, *Request,
// *Response, *ResponseFinal or *NetworkOAM.
type NetworkMessage any

// WireExpr is a key expression on the wire: an alias (Scope, 0 for none)
// plus an optional suffix. SenderMapping (flag M) says the alias was
// declared by the sender of the message; otherwise by its receiver.
type WireExpr struct {
	Scope         uint16
	Suffix        string
	SenderMapping bool
}

const (
	flagN = flagF1 // suffix present
	flagM = flagF2 // sender mapping
)

func (w *WireExpr) flags() byte {
	var f byte
	if w.Suffix != "" {
		f |= flagN
	}
	if w.SenderMapping {
		f |= flagM
	}
	return f
}

func appendWireExpr(b []byte, w *WireExpr) []byte {
	b = AppendVLE(b, uint64(w.Scope))
	if w.Suffix != "" {
		b = AppendVLE(b, uint64(len(w.Suffix)))
		b = append(b, w.Suffix...)
	}
	return b
}

func readWireExpr(r *Reader, named, senderMapping bool) WireExpr {
	w := WireExpr{SenderMapping: senderMapping}
	w.Scope = uint16(r.VLEBounded(maxZ16, "expression id"))
	if named {
		s := r.Slice(maxZ16, "key suffix")
		if r.err == nil && !utf8.Valid(s) {
			r.Failf("key suffix is not UTF-8")
		}
		w.Suffix = string(s)
	}
	return w
}

// netExt accepts the extensions every network message may carry and
// ignores them: QoS, Timestamp, NodeId (mandatory).
func netExt(e Ext) bool {
	return e.Key == extQoSNet || e.Key == extTimestamp || e.Key == extNodeID
}

// Push carries a PUT or a DEL on a key expression.
type Push struct {
	Key WireExpr
	QoS byte // QoS extension value (priority, block, express); 0: absent
	Put *Put // exactly one of Put and Del is set
	Del *Del
}

// QoS extension bits of network messages.
const (
	QoSPriorityData = 5      // the default priority
	QoSBlock        = 1 << 3 // congestion control: block, do not drop
	QoSExpress      = 1 << 4 // do not batch
)

func appendPushHeader(b []byte, key *WireExpr, qos byte) []byte {
	h := IDPush | key.flags()
	if qos != 0 {
		h |= FlagZ
	}
	b = append(b, h)
	b = appendWireExpr(b, key)
	if qos != 0 {
		b = appendExtZ64(b, extQoSNet, uint64(qos), false)
	}
	return b
}

// AppendPush appends a PUSH without extensions. If the body is a PUT,
// its payload is written last, so a caller that wants to avoid copying a
// large payload can encode with Payload nil (AppendPushHeader) and send
// the payload bytes after the result.
func AppendPush(b []byte, m *Push) []byte {
	b = appendPushHeader(b, &m.Key, m.QoS)
	if m.Put != nil {
		return AppendPut(b, m.Put)
	}
	return AppendDel(b, m.Del)
}

// AppendPushPutHeader appends a PUSH of a PUT up to and including the
// payload length; exactly payloadLen payload bytes must follow.
func AppendPushPutHeader(b []byte, key *WireExpr, qos byte, p *Put, payloadLen int) []byte {
	b = appendPushHeader(b, key, qos)
	b = appendPutHeader(b, p)
	return AppendVLE(b, uint64(payloadLen))
}

func readPush(r *Reader, h byte) *Push {
	m := &Push{Key: readWireExpr(r, h&flagN != 0, h&flagM != 0)}
	if h&FlagZ != 0 {
		readExts(r, "PUSH", func(e Ext) bool {
			if e.Key == extQoSNet {
				m.QoS = byte(e.Value)
			}
			return netExt(e) || e.Key == 0x07|ExtEncZBuf
		})
	}
	bh := r.Byte()
	if r.err != nil {
		return nil
	}
	switch MsgID(bh) {
	case IDPut:
		m.Put = readPut(r, bh)
	case IDDel:
		m.Del = readDel(r, bh)
	default:
		r.Failf("PUSH: unexpected body id 0x%02x", MsgID(bh))
	}
	return m
}

// Declaration kinds (the ids of declaration bodies).
type DeclKind byte

// Declaration body ids.
const (
	DeclKeyExpr     DeclKind = 0x00
	UndeclKeyExpr   DeclKind = 0x01
	DeclSubscriber  DeclKind = 0x02
	UndeclSubscribe DeclKind = 0x03
	DeclQueryable   DeclKind = 0x04
	UndeclQueryable DeclKind = 0x05
	DeclToken       DeclKind = 0x06
	UndeclToken     DeclKind = 0x07
	DeclFinal       DeclKind = 0x1a
)

// Declare carries one declaration. HasInterest says the declaration
// answers the interest InterestID (flag I).
type Declare struct {
	HasInterest bool
	InterestID  uint32
	Kind        DeclKind
	ID          uint32   // entity id, or expression id for key expressions
	Key         WireExpr // declared key (D_*), or the WireExpr extension of U_*
	HasKey      bool     // Key is meaningful
}

const flagDeclareI = flagF1

// AppendDeclare appends a DECLARE message.
func AppendDeclare(b []byte, m *Declare) []byte {
	h := byte(IDDeclare)
	if m.HasInterest {
		h |= flagDeclareI
	}
	b = append(b, h)
	if m.HasInterest {
		b = AppendVLE(b, uint64(m.InterestID))
	}
	switch m.Kind {
	case DeclFinal:
		return append(b, byte(DeclFinal))
	case UndeclKeyExpr:
		b = append(b, byte(m.Kind))
		return AppendVLE(b, uint64(m.ID))
	case UndeclSubscribe, UndeclQueryable, UndeclToken:
		bh := byte(m.Kind)
		if m.HasKey {
			bh |= FlagZ
		}
		b = append(b, bh)
		b = AppendVLE(b, uint64(m.ID))
		if m.HasKey {
			b = appendExtZBuf(b, extWireExpr, wireExprExtBody(&m.Key), false)
		}
		return b
	case DeclKeyExpr:
		// D_KEYEXPR has no mapping flag: its expression is always relative
		// to the sender's own aliases.
		b = append(b, byte(m.Kind)|(m.Key.flags()&flagN))
	default:
		b = append(b, byte(m.Kind)|m.Key.flags())
	}
	b = AppendVLE(b, uint64(m.ID))
	return appendWireExpr(b, &m.Key)
}

func wireExprExtBody(w *WireExpr) []byte {
	var f byte
	if w.Suffix != "" {
		f |= 1
	}
	if w.SenderMapping {
		f |= 2
	}
	b := []byte{f}
	b = AppendVLE(b, uint64(w.Scope))
	return append(b, w.Suffix...)
}

func readWireExprExt(body []byte) (WireExpr, bool) {
	r := NewReader(body)
	f := r.Byte()
	w := WireExpr{SenderMapping: f&2 != 0}
	w.Scope = uint16(r.VLEBounded(maxZ16, "expression id"))
	if f&1 != 0 {
		s := r.Rest()
		if !utf8.Valid(s) {
			return w, false
		}
		w.Suffix = string(s)
	}
	return w, r.Err() == nil
}

func readDeclare(r *Reader, h byte) *Declare {
	m := &Declare{}
	if h&flagDeclareI != 0 {
		m.HasInterest = true
		m.InterestID = uint32(r.VLEBounded(maxZ32, "interest id"))
	}
	if h&FlagZ != 0 {
		readExts(r, "DECLARE", netExt)
	}
	bh := r.Byte()
	if r.err != nil {
		return nil
	}
	m.Kind = DeclKind(MsgID(bh))
	switch m.Kind {
	case DeclFinal:
	case DeclKeyExpr:
		m.ID = uint32(r.VLEBounded(maxZ16, "expression id"))
		m.Key, m.HasKey = readWireExpr(r, bh&flagN != 0, false), true
	case UndeclKeyExpr:
		m.ID = uint32(r.VLEBounded(maxZ16, "expression id"))
	case DeclSubscriber, DeclQueryable, DeclToken:
		m.ID = uint32(r.VLEBounded(maxZ32, "entity id"))
		m.Key, m.HasKey = readWireExpr(r, bh&flagN != 0, bh&flagM != 0), true
	case UndeclSubscribe, UndeclQueryable, UndeclToken:
		m.ID = uint32(r.VLEBounded(maxZ32, "entity id"))
		if bh&FlagZ != 0 {
			readExts(r, "undeclaration", func(e Ext) bool {
				if e.Key != extWireExpr {
					return false
				}
				m.Key, m.HasKey = readWireExprExt(e.Body)
				return true
			})
		}
		return m
	default:
		r.Failf("DECLARE: unknown declaration id 0x%02x", byte(m.Kind))
		return nil
	}
	if bh&FlagZ != 0 {
		// D_QUERYABLE may carry QueryableInfo; others none we need.
		readExts(r, "declaration", nil)
	}
	return m
}

// Interest modes (bits 5-6 of the INTEREST header).
const (
	InterestFinal         = 0b00
	InterestCurrent       = 0b01
	InterestFuture        = 0b10
	InterestCurrentFuture = 0b11
)

// Interest options.
const (
	InterestKeyExprs    = 1 << 0
	InterestSubscribers = 1 << 1
	InterestQueryables  = 1 << 2
	InterestTokens      = 1 << 3
	interestRestricted  = 1 << 4
	interestNamed       = 1 << 5
	interestMapping     = 1 << 6
	InterestAggregate   = 1 << 7
)

// Interest asks for declarations.
type Interest struct {
	ID      uint32
	Mode    byte
	Options byte      // without the R, N and M bits (those follow Key)
	Key     *WireExpr // restriction, nil for all keys
}

// AppendInterest appends an INTEREST message.
func AppendInterest(b []byte, m *Interest) []byte {
	b = append(b, IDInterest|m.Mode<<5)
	b = AppendVLE(b, uint64(m.ID))
	if m.Mode == InterestFinal {
		return b
	}
	opts := m.Options &^ (interestRestricted | interestNamed | interestMapping)
	if m.Key != nil {
		opts |= interestRestricted
		if m.Key.Suffix != "" {
			opts |= interestNamed
		}
		if m.Key.SenderMapping {
			opts |= interestMapping
		}
	}
	b = append(b, opts)
	if m.Key != nil {
		b = appendWireExpr(b, m.Key)
	}
	return b
}

func readInterest(r *Reader, h byte) *Interest {
	m := &Interest{Mode: (h >> 5) & 0b11}
	m.ID = uint32(r.VLEBounded(maxZ32, "interest id"))
	if m.Mode != InterestFinal {
		o := r.Byte()
		m.Options = o &^ (interestRestricted | interestNamed | interestMapping)
		if o&interestRestricted != 0 {
			w := readWireExpr(r, o&interestNamed != 0, o&interestMapping != 0)
			m.Key = &w
		}
	}
	if h&FlagZ != 0 {
		readExts(r, "INTEREST", netExt)
	}
	return m
}

// Request is a query; we decode it to answer with RESPONSE_FINAL.
type Request struct {
	ID  uint32
	Key WireExpr
}

func requestExt(e Ext) bool {
	switch e.Key {
	case 0x04 | ExtMandatory | ExtEncZ64, // Target
		0x05 | ExtEncZ64,  // Budget
		0x06 | ExtEncZ64,  // Timeout
		0x07 | ExtEncZBuf: // TsStack
		return true
	}
	return netExt(e)
}

func readRequest(r *Reader, h byte) *Request {
	m := &Request{ID: uint32(r.VLEBounded(maxZ32, "request id"))}
	m.Key = readWireExpr(r, h&flagN != 0, h&flagM != 0)
	if h&FlagZ != 0 {
		readExts(r, "REQUEST", requestExt)
	}
	bh := r.Byte()
	if MsgID(bh) != IDQuery {
		r.Failf("REQUEST: unexpected body id 0x%02x", MsgID(bh))
		return nil
	}
	readQuery(r, bh)
	return m
}

// Response is a reply to one of our queries (we send none); decoded only
// to be skipped.
type Response struct{ RequestID uint32 }

func readResponse(r *Reader, h byte) *Response {
	m := &Response{RequestID: uint32(r.VLEBounded(maxZ32, "request id"))}
	readWireExpr(r, h&flagN != 0, h&flagM != 0)
	if h&FlagZ != 0 {
		readExts(r, "RESPONSE", func(e Ext) bool {
			return e.Key == extQoSNet || e.Key == extTimestamp || e.Key == 0x03|ExtEncZBuf || e.Key == 0x07|ExtEncZBuf
		})
	}
	bh := r.Byte()
	switch MsgID(bh) {
	case IDReply:
		readReply(r, bh)
	case IDErr:
		readErr(r, bh)
	default:
		r.Failf("RESPONSE: unexpected body id 0x%02x", MsgID(bh))
	}
	return m
}

// ResponseFinal ends the answers to a request.
type ResponseFinal struct{ RequestID uint32 }

// AppendResponseFinal appends a RESPONSE_FINAL message.
func AppendResponseFinal(b []byte, m *ResponseFinal) []byte {
	b = append(b, IDResponseFinal)
	return AppendVLE(b, uint64(m.RequestID))
}

func readResponseFinal(r *Reader, h byte) *ResponseFinal {
	m := &ResponseFinal{RequestID: uint32(r.VLEBounded(maxZ32, "request id"))}
	if h&FlagZ != 0 {
		readExts(r, "RESPONSE_FINAL", netExt)
	}
	return m
}

// NetworkOAM is an operations message (for example link-state gossip);
// decoded only to be skipped.
type NetworkOAM struct{ ID uint16 }

func readNetworkOAM(r *Reader, h byte) *NetworkOAM {
	m := &NetworkOAM{ID: uint16(r.VLEBounded(maxZ16, "OAM id"))}
	if h&FlagZ != 0 {
		readExts(r, "OAM", netExt)
	}
	switch h & extEncMask {
	case ExtEncUnit:
	case ExtEncZ64:
		r.VLE()
	case ExtEncZBuf:
		r.Slice(maxZ32, "OAM body")
	default:
		r.Failf("OAM: reserved body encoding")
	}
	return m
}

// ReadNetworkMessage decodes one network message.
func ReadNetworkMessage(r *Reader) NetworkMessage {
	h := r.Byte()
	if r.err != nil {
		return nil
	}
	var m NetworkMessage
	switch MsgID(h) {
	case IDPush:
		m = readPush(r, h)
	case IDDeclare:
		m = readDeclare(r, h)
	case IDInterest:
		m = readInterest(r, h)
	case IDRequest:
		m = readRequest(r, h)
	case IDResponse:
		m = readResponse(r, h)
	case IDResponseFinal:
		m = readResponseFinal(r, h)
	case IDNetworkOAM:
		m = readNetworkOAM(r, h)
	default:
		r.Failf("unknown network message id 0x%02x", MsgID(h))
	}
	if r.err != nil {
		return nil
	}
	return m
}
