package shm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// ProtocolVersion is the node protocol version carried by Register. The
// daemon refuses a node that speaks another version.
const ProtocolVersion = 2

// MaxFrame bounds the body of one frame (type byte included). Larger
// payloads must travel through shared memory.
const MaxFrame = 64 << 20

// MsgType is the first byte of a frame body.
type MsgType uint8

// Frames a node sends to its daemon.
const (
	MsgRegister     MsgType = 0x01 // Version, Dataflow, Node, Secret
	MsgOutput       MsgType = 0x02 // ID (output), Meta, payload
	MsgRegion       MsgType = 0x03 // Region, Size; one fd attached (both directions)
	MsgAck          MsgType = 0x04 // Count: events consumed by the application
	MsgRelease      MsgType = 0x05 // Tokens: drop tokens of shared-memory inputs
	MsgCloseOutputs MsgType = 0x06 // IDs: outputs that will not send again
	MsgSubscribe    MsgType = 0x07 // Count (subscription id), ID (key expression); pub/sub sessions only
	MsgUnsubscribe  MsgType = 0x08 // Count (subscription id); pub/sub sessions only
	MsgCutover      MsgType = 0x09 // Edge: the sender switched the edge's route to the edge
	MsgStats        MsgType = 0x0A // OutStats, InStats: the node's counters for direct edges
)

// Frames a daemon sends to a node.
const (
	MsgReady           MsgType = 0x81 // Count (input window); registration accepted, all local nodes present
	MsgInput           MsgType = 0x82 // ID (input), Meta, payload, Token (shm only)
	MsgInputClosed     MsgType = 0x83 // ID (input)
	MsgInputRecovered  MsgType = 0x84 // ID (input)
	MsgNodeRestarted   MsgType = 0x85 // ID (source node), IDs (affected inputs)
	MsgNodeFailed      MsgType = 0x86 // ID (source node), IDs (affected inputs), Error
	MsgStop            MsgType = 0x87 // ID (cause: "MANUAL", ...)
	MsgAllInputsClosed MsgType = 0x88 // no fields
	MsgDropped         MsgType = 0x89 // Regions: the node's own regions no receiver uses any more
	MsgRegionClosed    MsgType = 0x8A // Region: unmap it, it will not be referenced again
	MsgError           MsgType = 0x8B // Error: registration refused or protocol violation
	MsgEdgeOut         MsgType = 0x8C // Edge, ID (output), Node (receiver), Input; one fd attached
	MsgEdgeIn          MsgType = 0x8D // Edge, ID (input), Source, QueueSize, Policy; one fd attached
	MsgRoutes          MsgType = 0x8E // ID (output), NeedsDaemon
	MsgRing            MsgType = 0x8F // Count (0 memory, 1 eventfd), Size; one fd attached (edge streams)
)

// FlagDirect in the Flags of REGISTER says the node can use direct edges;
// in READY, that the daemon offers them.
const FlagDirect uint32 = 1 << 0

// Queue policies carried by EDGE_IN.
const (
	PolicyDropOldest   uint8 = 0
	PolicyBackpressure uint8 = 1
)

var msgNames = map[MsgType]string{
	MsgRegister: "REGISTER", MsgOutput: "OUTPUT", MsgRegion: "REGION", MsgAck: "ACK",
	MsgRelease: "RELEASE", MsgCloseOutputs: "CLOSE_OUTPUTS", MsgSubscribe: "SUBSCRIBE",
	MsgUnsubscribe: "UNSUBSCRIBE", MsgReady: "READY",
	MsgInput: "INPUT", MsgInputClosed: "INPUT_CLOSED", MsgInputRecovered: "INPUT_RECOVERED",
	MsgNodeRestarted: "NODE_RESTARTED", MsgNodeFailed: "NODE_FAILED", MsgStop: "STOP",
	MsgAllInputsClosed: "ALL_INPUTS_CLOSED", MsgDropped: "DROPPED",
	MsgRegionClosed: "REGION_CLOSED", MsgError: "ERROR", MsgCutover: "CUTOVER", MsgStats: "STATS",
	MsgEdgeOut: "EDGE_OUT", MsgEdgeIn: "EDGE_IN", MsgRoutes: "ROUTES", MsgRing: "RING",
}

func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(0x%02x)", uint8(t))
}

// Payload kinds inside OUTPUT and INPUT.
const (
	payloadInline = 0
	payloadShm    = 1
)

// Meta is message metadata on the wire: a timestamp (Unix nanoseconds), a
// free-form type description and user parameters (JSON object bytes, empty
// when there are none).
type Meta struct {
	Timestamp int64
	TypeInfo  string
	Params    []byte
}

// Flushes reports whether the parameters carry "flush": true: the message
// discards those still queued on its receiving input (a new request
// supersedes them). The daemon and the SDK apply this one rule.
func (m *Meta) Flushes() bool {
	if len(m.Params) == 0 || !bytes.Contains(m.Params, []byte(`"flush"`)) {
		return false
	}
	var p struct {
		Flush bool `json:"flush"`
	}
	return json.Unmarshal(m.Params, &p) == nil && p.Flush
}

// ShmRef points into a shared-memory region: the region id (scoped to the
// connection that announced it), the byte offset and the length.
type ShmRef struct {
	Region uint32
	Offset uint64
	Len    uint64
}

// Msg is one decoded frame. Which fields are meaningful depends on Type;
// see docs/node-protocol.md for the layout of each frame.
type Msg struct {
	Type     MsgType
	Version  uint16
	Dataflow string
	Node     string
	Secret   string
	ID       string
	Meta     Meta
	Data     []byte // inline payload (nil when Shm is set)
	Shm      *ShmRef
	Token    uint64
	Region   uint32
	Size     uint64
	Count    uint32
	Tokens   []uint64
	Regions  []uint32
	IDs      []string
	Error    string

	// Flags of REGISTER and READY (FlagDirect); 0 is encoded by omitting
	// the field.
	Flags uint32
	// Direct edges: EDGE_OUT, EDGE_IN, CUTOVER.
	Edge      uint32
	Input     string // EDGE_OUT: the receiver's input id
	Source    string // EDGE_IN: "node/output"
	QueueSize uint32 // EDGE_IN
	Policy    uint8  // EDGE_IN: PolicyDropOldest or PolicyBackpressure
	// ROUTES: the daemon still needs OUTPUT frames for output ID.
	NeedsDaemon bool
	// STATS: cumulative counters of direct edges.
	OutStats []OutStat
	InStats  []InStat
}

// OutStat counts messages a node sent on an output without the daemon
// (over direct edges only).
type OutStat struct {
	Output string
	Out    uint64
}

// InStat are a node's counters for one direct input: messages taken in
// (arrived and not dropped), dropped by the node's queue, and pending
// (queued, not yet taken by the application).
type InStat struct {
	Input   string
	In      uint64
	Dropped uint64
	Pending uint32
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed frame")

// AppendFrame appends m as a complete frame (length prefix included) to b.
func AppendFrame(b []byte, m *Msg) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(m.Type))
	switch m.Type {
	case MsgRegister:
		b = binary.LittleEndian.AppendUint16(b, m.Version)
		b = appendStr(b, m.Dataflow)
		b = appendStr(b, m.Node)
		b = appendStr(b, m.Secret)
		b = appendFlags(b, m.Flags)
	case MsgOutput, MsgInput:
		b = appendStr(b, m.ID)
		b = appendMeta(b, &m.Meta)
		b = appendPayload(b, m)
		if m.Type == MsgInput && m.Shm != nil {
			b = binary.LittleEndian.AppendUint64(b, m.Token)
		}
	case MsgRegion:
		b = binary.LittleEndian.AppendUint32(b, m.Region)
		b = binary.LittleEndian.AppendUint64(b, m.Size)
	case MsgAck, MsgUnsubscribe:
		b = binary.LittleEndian.AppendUint32(b, m.Count)
	case MsgReady:
		b = binary.LittleEndian.AppendUint32(b, m.Count)
		b = appendFlags(b, m.Flags)
	case MsgSubscribe:
		b = binary.LittleEndian.AppendUint32(b, m.Count)
		b = appendStr(b, m.ID)
	case MsgCutover:
		b = binary.LittleEndian.AppendUint32(b, m.Edge)
	case MsgEdgeOut:
		b = binary.LittleEndian.AppendUint32(b, m.Edge)
		b = appendStr(b, m.ID)
		b = appendStr(b, m.Node)
		b = appendStr(b, m.Input)
	case MsgEdgeIn:
		b = binary.LittleEndian.AppendUint32(b, m.Edge)
		b = appendStr(b, m.ID)
		b = appendStr(b, m.Source)
		b = binary.LittleEndian.AppendUint32(b, m.QueueSize)
		b = append(b, m.Policy)
	case MsgRing:
		b = binary.LittleEndian.AppendUint32(b, m.Count)
		b = binary.LittleEndian.AppendUint64(b, m.Size)
	case MsgRoutes:
		b = appendStr(b, m.ID)
		b = append(b, boolByte(m.NeedsDaemon))
	case MsgStats:
		b = appendStats(b, m)
	case MsgRelease:
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Tokens)))
		for _, t := range m.Tokens {
			b = binary.LittleEndian.AppendUint64(b, t)
		}
	case MsgDropped:
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Regions)))
		for _, r := range m.Regions {
			b = binary.LittleEndian.AppendUint32(b, r)
		}
	case MsgCloseOutputs:
		b = appendStrs(b, m.IDs)
	case MsgInputClosed, MsgInputRecovered, MsgStop:
		b = appendStr(b, m.ID)
	case MsgNodeRestarted, MsgNodeFailed:
		b = appendStr(b, m.ID)
		b = appendStrs(b, m.IDs)
		b = appendStr(b, m.Error)
	case MsgRegionClosed:
		b = binary.LittleEndian.AppendUint32(b, m.Region)
	case MsgError:
		b = appendStr(b, m.Error)
	case MsgAllInputsClosed:
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func appendFlags(b []byte, f uint32) []byte {
	if f == 0 {
		return b
	}
	return binary.LittleEndian.AppendUint32(b, f)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendStats(b []byte, m *Msg) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.OutStats)))
	for _, s := range m.OutStats {
		b = appendStr(b, s.Output)
		b = binary.LittleEndian.AppendUint64(b, s.Out)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.InStats)))
	for _, s := range m.InStats {
		b = appendStr(b, s.Input)
		b = binary.LittleEndian.AppendUint64(b, s.In)
		b = binary.LittleEndian.AppendUint64(b, s.Dropped)
		b = binary.LittleEndian.AppendUint32(b, s.Pending)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func appendMeta(b []byte, m *Meta) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(m.Timestamp))
	b = appendStr(b, m.TypeInfo)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Params)))
	return append(b, m.Params...)
}

func appendPayload(b []byte, m *Msg) []byte {
	if m.Shm != nil {
		b = append(b, payloadShm)
		b = binary.LittleEndian.AppendUint32(b, m.Shm.Region)
		b = binary.LittleEndian.AppendUint64(b, m.Shm.Offset)
		return binary.LittleEndian.AppendUint64(b, m.Shm.Len)
	}
	b = append(b, payloadInline)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Data)))
	return append(b, m.Data...)
}

// Decode parses a frame body (the bytes after the length prefix). Byte
// slices in the result (Data, Meta.Params) alias body.
func Decode(body []byte) (*Msg, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	d := decoder{b: body[1:]}
	m := &Msg{Type: MsgType(body[0])}
	switch m.Type {
	case MsgRegister:
		m.Version = d.u16()
		m.Dataflow, m.Node, m.Secret = d.str(), d.str(), d.str()
		m.Flags = d.flags()
	case MsgOutput, MsgInput:
		m.ID = d.str()
		d.meta(&m.Meta)
		d.payload(m)
		if m.Type == MsgInput && m.Shm != nil {
			m.Token = d.u64()
		}
	case MsgRegion:
		m.Region, m.Size = d.u32(), d.u64()
	case MsgAck, MsgUnsubscribe:
		m.Count = d.u32()
	case MsgReady:
		m.Count = d.u32()
		m.Flags = d.flags()
	case MsgSubscribe:
		m.Count, m.ID = d.u32(), d.str()
	case MsgCutover:
		m.Edge = d.u32()
	case MsgEdgeOut:
		m.Edge, m.ID, m.Node, m.Input = d.u32(), d.str(), d.str(), d.str()
	case MsgEdgeIn:
		m.Edge, m.ID, m.Source, m.QueueSize = d.u32(), d.str(), d.str(), d.u32()
		if m.Policy = d.u8(); m.Policy > PolicyBackpressure && d.err == nil {
			d.err = errors.New("unknown queue policy")
		}
	case MsgRing:
		m.Count, m.Size = d.u32(), d.u64()
	case MsgRoutes:
		m.ID = d.str()
		m.NeedsDaemon = d.boolean()
	case MsgStats:
		d.stats(m)
	case MsgRelease:
		n := d.count(8)
		for i := 0; i < n; i++ {
			m.Tokens = append(m.Tokens, d.u64())
		}
	case MsgDropped:
		n := d.count(4)
		for i := 0; i < n; i++ {
			m.Regions = append(m.Regions, d.u32())
		}
	case MsgCloseOutputs:
		m.IDs = d.strs()
	case MsgInputClosed, MsgInputRecovered, MsgStop:
		m.ID = d.str()
	case MsgNodeRestarted, MsgNodeFailed:
		m.ID, m.IDs, m.Error = d.str(), d.strs(), d.str()
	case MsgRegionClosed:
		m.Region = d.u32()
	case MsgError:
		m.Error = d.str()
	case MsgAllInputsClosed:
	default:
		return nil, fmt.Errorf("%w: unknown type 0x%02x", ErrMalformed, body[0])
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrMalformed, m.Type, d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, m.Type, len(d.b))
	}
	return m, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errors.New("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// flags reads the optional trailing flags field: absent means 0; a present
// field must be non-zero (0 is encoded by omitting it).
func (d *decoder) flags() uint32 {
	if d.err != nil || len(d.b) == 0 {
		return 0
	}
	f := d.u32()
	if f == 0 && d.err == nil {
		d.err = errors.New("flags present but zero (omit the field)")
	}
	return f
}

func (d *decoder) boolean() bool {
	switch v := d.u8(); {
	case v > 1 && d.err == nil:
		d.err = errors.New("boolean out of range")
	case v == 1:
		return true
	}
	return false
}

func (d *decoder) stats(m *Msg) {
	n := int(d.u16())
	for i := 0; i < n && d.err == nil; i++ {
		m.OutStats = append(m.OutStats, OutStat{Output: d.str(), Out: d.u64()})
	}
	n = int(d.u16())
	for i := 0; i < n && d.err == nil; i++ {
		m.InStats = append(m.InStats, InStat{Input: d.str(), In: d.u64(), Dropped: d.u64(), Pending: d.u32()})
	}
}

func (d *decoder) str() string { return string(d.take(int(d.u16()))) }

func (d *decoder) strs() []string {
	n := int(d.u16())
	if n*2 > len(d.b) {
		d.take(-1)
		return nil
	}
	ss := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		ss = append(ss, d.str())
	}
	return ss
}

// count reads an element count and checks that n elements of size each fit.
func (d *decoder) count(size int) int {
	n := int(d.u32())
	if n > len(d.b)/size {
		d.take(-1)
		return 0
	}
	return n
}

func (d *decoder) meta(m *Meta) {
	m.Timestamp = int64(d.u64())
	m.TypeInfo = d.str()
	if p := d.take(int(d.u32())); len(p) > 0 {
		m.Params = p
	}
}

func (d *decoder) payload(m *Msg) {
	switch d.u8() {
	case payloadInline:
		m.Data = d.take(int(d.u32()))
	case payloadShm:
		m.Shm = &ShmRef{Region: d.u32(), Offset: d.u64(), Len: d.u64()}
	default:
		if d.err == nil {
			d.err = errors.New("unknown payload kind")
		}
	}
}

// AppendMeta appends the wire form of m (as inside OUTPUT and INPUT) to b.
// Daemons use it to carry metadata to other machines.
func AppendMeta(b []byte, m *Meta) []byte { return appendMeta(b, m) }

// DecodeMeta parses metadata written by AppendMeta. Params alias b.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	d := decoder{b: b}
	d.meta(&m)
	if d.err != nil || len(d.b) != 0 {
		return Meta{}, fmt.Errorf("%w: metadata", ErrMalformed)
	}
	return m, nil
}
