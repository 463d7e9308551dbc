// Package proto owns adora's control-plane protocol: the JSON messages
// exchanged over WebSocket between the CLI and the coordinator
// (/api/control) and between daemons and the coordinator (/api/daemon),
// and the one protocol version both ends check at hello.
//
// Every WebSocket text frame carries exactly one Envelope. A request has a
// non-zero ID; its reply carries the same number in ReplyTo and either a
// payload or Error. Events (fire-and-forget) have neither ID nor ReplyTo.
//
//	client                        coordinator
//	  | Hello{protocol, version}      |
//	  |------------------------------>|  protocol mismatch: error reply, close
//	  |<------------------------------|  HelloOK{protocol, version}
//	  | requests / events ...         |
//
// On /api/daemon the second message is Register (reply RegisterOK or an
// error such as a duplicate machine id); after it the daemon sends
// StatusReport, then Heartbeat every HeartbeatInterval, NodeMetrics, Log and
// DataflowFinished events, and answers Spawn, Stop, Logs and Destroy
// requests.
//
// Compatibility: new fields and new message types may be added; existing
// fields keep their names and meaning while ProtocolVersion stays the same.
// A peer ignores unknown fields and answers unknown request types with an
// error reply (unknown events are ignored).
package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/adora-rs/adora/internal/version"
)

// ProtocolVersion is the control-plane protocol version checked at hello.
const ProtocolVersion = version.ProtocolVersion

// MaxMessageSize is the largest frame either side accepts (1 MiB). A peer
// sending a larger frame has its connection closed.
const MaxMessageSize = 1 << 20

// Timings shared by both ends.
const (
	// HeartbeatInterval is how often a daemon sends Heartbeat.
	HeartbeatInterval = 5 * time.Second
	// HeartbeatTimeout is how long the coordinator waits without a
	// heartbeat before it considers a daemon gone.
	HeartbeatTimeout = 30 * time.Second
	// MetricsInterval is how often a daemon sends NodeMetrics.
	MetricsInterval = 2 * time.Second
	// RecoveryBackoff is the minimum time between two auto-recovery
	// attempts for one daemon and one dataflow.
	RecoveryBackoff = 30 * time.Second
	// PingInterval is how often each end sends a WebSocket ping; the
	// read deadline is PongWait.
	PingInterval = 10 * time.Second
	PongWait     = 25 * time.Second
	// WriteWait bounds a single frame write.
	WriteWait = 10 * time.Second
	// RequestTimeout bounds a request that has no better deadline.
	RequestTimeout = 30 * time.Second
	// DefaultGrace is the stop grace period when none is given.
	DefaultGrace = 10 * time.Second
)

// HTTP paths and headers of the coordinator.
const (
	PathControl   = "/api/control"
	PathDaemon    = "/api/daemon"
	PathHealth    = "/api/health"
	PathHealthAlt = "/health"
	// PathArtifacts is the prefix of /api/artifacts/{build_id}/{node_id}.
	PathArtifacts = "/api/artifacts/"
	// PathState is the prefix of /api/state/{workspace}[/lock|/unlock]:
	// plan/apply state kept by the coordinator (see runtime/client
	// StateBackend).
	PathState = "/api/state/"
	// HeaderStateSerial and HeaderStateLineage carry a state's serial and
	// lineage on GET (stored) and PUT (being written).
	HeaderStateSerial  = "X-Adora-State-Serial"
	HeaderStateLineage = "X-Adora-State-Lineage"
	// HeaderLockID names the state lock a PUT is made under.
	HeaderLockID = "X-Adora-Lock-Id"
	// HeaderSHA256 carries the lowercase hex sha256 of an artifact body
	// (on PUT: expected; on GET: actual).
	HeaderSHA256 = "X-Adora-Sha256"
)

// StateUnlockResult is the JSON body of a refused unlock (HTTP 409).
type StateUnlockResult struct {
	Code   string          `json:"code"` // "not_locked" or "mismatch"
	Holder json.RawMessage `json:"holder,omitempty"`
}

// Type names a message.
type Type string

// Messages on both endpoints.
const (
	TypeHello     Type = "hello"
	TypeHelloOK   Type = "hello_ok"
	TypeReply     Type = "reply" // generic reply without payload of its own type
	TypeHeartbeat Type = "heartbeat"
)

// Daemon -> coordinator.
const (
	TypeRegister         Type = "register"          // request; reply RegisterOK
	TypeRegisterOK       Type = "register_ok"       // reply
	TypeStatusReport     Type = "status_report"     // event
	TypeNodeMetrics      Type = "node_metrics"      // event
	TypeLog              Type = "log"               // event (also coordinator -> CLI while following)
	TypeDataflowFinished Type = "dataflow_finished" // event: the daemon's part of a dataflow ended
	TypeNodeStatus       Type = "node_status"       // event: one node changed state (restarting, failed, exited)
)

// Coordinator -> daemon requests (reply types in parentheses).
const (
	TypeSpawn   Type = "spawn"   // (TypeReply)
	TypeStop    Type = "stop"    // (StopReply)
	TypeLogs    Type = "logs"    // (LogsReply); also CLI -> coordinator
	TypeDestroy Type = "destroy" // (TypeReply); also CLI -> coordinator
)

// CLI -> coordinator requests on /api/control (reply types in parentheses).
const (
	TypeStart      Type = "start"       // (StartReply)
	TypeStopFlow   Type = "stop_flow"   // (StopReply)
	TypeRestart    Type = "restart"     // (RestartReply)
	TypeList       Type = "list"        // (ListReply)
	TypeInfo       Type = "info"        // (DataflowInfo)
	TypeDaemons    Type = "daemons"     // (DaemonsReply)
	TypeTop        Type = "top"         // (TopReply)
	TypeLogsEnd    Type = "logs_end"    // event to a follower: the stream ended (LogsEnd)
	TypeStopReply  Type = "stop_reply"  // reply
	TypeLogsReply  Type = "logs_reply"  // reply
	TypeStartReply Type = "start_reply" // reply
	TypeRestartRep Type = "restart_reply"
	TypeListReply  Type = "list_reply"
	TypeInfoReply  Type = "info_reply"
	TypeDaemonsRep Type = "daemons_reply"
	TypeTopReply   Type = "top_reply"
	// TypeUnfollow ends a log follow started by a Logs request with
	// Follow; payload Unfollow.
	TypeUnfollow Type = "unfollow"
)

// Envelope is one frame on the wire.
type Envelope struct {
	Type    Type            `json:"type"`
	ID      uint64          `json:"id,omitempty"`       // set on requests
	ReplyTo uint64          `json:"reply_to,omitempty"` // set on replies
	Error   string          `json:"error,omitempty"`    // set on failed replies
	Payload json.RawMessage `json:"payload,omitempty"`
}

// IsReply reports whether e answers a request.
func (e *Envelope) IsReply() bool { return e.ReplyTo != 0 }

// IsRequest reports whether e expects a reply.
func (e *Envelope) IsRequest() bool { return e.ID != 0 }

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed message")

// NewEnvelope builds an envelope of type t carrying payload v (nil for no
// payload).
func NewEnvelope(t Type, v any) (*Envelope, error) {
	e := &Envelope{Type: t}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", t, err)
		}
		e.Payload = b
	}
	return e, nil
}

// Decode parses one frame. It rejects frames over MaxMessageSize, invalid
// JSON, a missing type, and a frame that is both request and reply.
func Decode(frame []byte) (*Envelope, error) {
	if len(frame) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrMalformed, len(frame), MaxMessageSize)
	}
	var e Envelope
	if err := json.Unmarshal(frame, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.Type == "" {
		return nil, fmt.Errorf("%w: missing type", ErrMalformed)
	}
	if e.ID != 0 && e.ReplyTo != 0 {
		return nil, fmt.Errorf("%w: both id and reply_to set", ErrMalformed)
	}
	return &e, nil
}

// Encode renders e as one frame. The payload is spliced in as is (it must
// be valid JSON, as NewEnvelope and Decode make it), so a large payload is
// not re-validated and copied a second time.
func Encode(e *Envelope) ([]byte, error) {
	head := *e
	head.Payload = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.Type, err)
	}
	if len(e.Payload) > 0 {
		b = append(b[:len(b)-1], `,"payload":`...)
		b = append(b, e.Payload...)
		b = append(b, '}')
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("encode %s: %d bytes exceeds the %d byte limit", e.Type, len(b), MaxMessageSize)
	}
	return b, nil
}

// Into decodes e's payload into v.
func (e *Envelope) Into(v any) error {
	if len(e.Payload) == 0 {
		return fmt.Errorf("%w: %s has no payload", ErrMalformed, e.Type)
	}
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrMalformed, e.Type, err)
	}
	return nil
}

// CheckHello validates a peer's hello and returns a user-facing error when
// its protocol version differs.
func CheckHello(h Hello) error {
	if h.Protocol != ProtocolVersion {
		return fmt.Errorf("protocol version mismatch: peer adora %s speaks protocol %d, this adora %s speaks protocol %d; run the same adora version everywhere",
			h.Version, h.Protocol, version.Version, ProtocolVersion)
	}
	return nil
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidID reports whether id may name an artifact's build or node, or a
// state workspace, in a URL path: letters, digits, '.', '_' and '-', at
// most 128, starting with a letter or digit, never "..", so it can never
// leave the directory or route it names.
func ValidID(id string) bool {
	return validID.MatchString(id) && !strings.Contains(id, "..")
}
