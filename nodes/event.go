package node

import (
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/adora-rs/adora/transport/shm"
)

// EventType says what an Event is about.
type EventType int

const (
	// Input: data arrived on input ID.
	Input EventType = iota + 1
	// InputClosed: input ID will receive nothing more (its source closed
	// the output or exited, or input_timeout tripped).
	InputClosed
	// InputRecovered: data flows again on input ID after input_timeout had
	// closed it.
	InputRecovered
	// NodeRestarted: source node ID was restarted; Inputs lists the
	// affected inputs.
	NodeRestarted
	// NodeFailed: source node ID failed and will not restart; Inputs lists
	// the affected inputs, Err the reason.
	NodeFailed
	// Stop: the node should stop; ID is the cause ("MANUAL"). The Events
	// channel closes after it.
	Stop
	// AllInputsClosed: every input is closed. The Events channel closes
	// after it.
	AllInputsClosed
	// Error: the daemon reported an error or the connection broke; Err says
	// which. The Events channel closes after it.
	Error
)

var eventNames = [...]string{"", "INPUT", "INPUT_CLOSED", "INPUT_RECOVERED", "NODE_RESTARTED", "NODE_FAILED", "STOP", "ALL_INPUTS_CLOSED", "ERROR"}

func (t EventType) String() string {
	if t > 0 && int(t) < len(eventNames) {
		return eventNames[t]
	}
	return "UNKNOWN"
}

// Stop causes.
const (
	StopManual = "MANUAL"
)

// Metadata travels with every message.
type Metadata struct {
	// Timestamp is when the sender sent the message (filled in by
	// SendOutput when zero).
	Timestamp time.Time
	// TypeInfo is a free-form description of the payload's type.
	TypeInfo string
	// Parameters are user key/values, carried as a JSON object (numbers
	// arrive as float64, lists as []any).
	Parameters map[string]any
}

func (m Metadata) wire() (shm.Meta, error) {
	w := shm.Meta{TypeInfo: m.TypeInfo}
	if m.Timestamp.IsZero() {
		w.Timestamp = time.Now().UnixNano()
	} else {
		w.Timestamp = m.Timestamp.UnixNano()
	}
	if len(m.Parameters) > 0 {
		b, err := json.Marshal(m.Parameters)
		if err != nil {
			return w, err
		}
		w.Params = b
	}
	return w, nil
}

func metadataFromWire(w shm.Meta) Metadata {
	m := Metadata{Timestamp: time.Unix(0, w.Timestamp), TypeInfo: w.TypeInfo}
	if len(w.Params) > 0 {
		_ = json.Unmarshal(w.Params, &m.Parameters)
	}
	return m
}

// Event is one item of a node's event stream.
//
// For an Input whose payload came through shared memory, Data aliases a
// read-only mapping of the sender's region: zero copy. It stays valid until
// the event is released. By default the SDK releases an event when the
// application takes the next one from Events(); call Retain to keep Data
// longer and Release when done. Inline Data is ordinary heap memory and
// stays valid regardless.
type Event struct {
	Type     EventType
	ID       string
	Data     []byte
	Metadata Metadata
	Inputs   []string
	Err      string

	n        *Node
	edge     *edgeIn // the direct edge an input came over (nil: the daemon)
	token    uint64
	shared   bool
	retained atomic.Bool
	released atomic.Bool
}

// Shared reports whether Data aliases shared memory.
func (e *Event) Shared() bool { return e.shared }

// Retain keeps Data valid after the next event is taken; Release must be
// called later.
func (e *Event) Retain() { e.retained.Store(true) }

// Release tells the sender this event's shared memory may be reused. Data
// must not be touched afterwards. Safe to call more than once and on events
// without shared memory.
func (e *Event) Release() {
	if !e.shared || e.released.Swap(true) {
		return
	}
	e.n.release(e)
}
