package wsconn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/runtime/proto"
)

// ---- handshake -----------------------------------------------------------

// Endpoint is where a coordinator listens.
type Endpoint struct {
	Addr  string // IP address or hostname
	Port  int
	Token string // bearer token; empty when auth is off
}

// URL returns the ws:// URL of path on e.
func (e Endpoint) URL(path string) string {
	u := url.URL{Scheme: "ws", Host: joinHostPort(e.Addr, e.Port), Path: path}
	return u.String()
}

// HTTPURL returns the http:// URL of path on e.
func (e Endpoint) HTTPURL(path string) string {
	u := url.URL{Scheme: "http", Host: joinHostPort(e.Addr, e.Port), Path: path}
	return u.String()
}

func joinHostPort(host string, port int) string {
	if host == "" {
		host = "localhost"
	}
	if port == 0 {
		port = 6013
	}
	if len(host) > 0 && host[0] != '[' && containsColon(host) {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// AuthHeader returns the Authorization header for token (empty: none).
func AuthHeader(token string) http.Header {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return h
}

// HTTPStatusError is a refused WebSocket upgrade.
type HTTPStatusError struct {
	URL    string
	Status int
	Body   string
}

func (e *HTTPStatusError) Error() string {
	if e.Status == http.StatusUnauthorized {
		return fmt.Sprintf("coordinator at %s refused the connection: 401 unauthorized (missing or wrong token; pass --token, set ADORA_AUTH_TOKEN, or copy the coordinator's token file)", e.URL)
	}
	if e.Body != "" {
		return fmt.Sprintf("coordinator at %s refused the connection: %d %s", e.URL, e.Status, e.Body)
	}
	return fmt.Sprintf("coordinator at %s refused the connection: %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// DialError means the coordinator could not be reached at all (no
// WebSocket was established).
type DialError struct {
	URL string
	Err error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("connect to coordinator at %s: %v", e.URL, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// Dial connects to path on ep, performs the hello handshake as role and
// starts the connection. A protocol mismatch is returned as the
// coordinator's error.
func Dial(ctx context.Context, ep Endpoint, path string, role proto.Role, h Handler, opts Options) (*Conn, proto.HelloOK, error) {
	u := ep.URL(path)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	ws, resp, err := d.DialContext(ctx, u, AuthHeader(ep.Token))
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			return nil, proto.HelloOK{}, &HTTPStatusError{URL: u, Status: resp.StatusCode, Body: trimBody(body[:n])}
		}
		return nil, proto.HelloOK{}, &DialError{URL: u, Err: err}
	}
	ok, err := ClientHello(ctx, ws, role)
	if err != nil {
		ws.Close()
		return nil, proto.HelloOK{}, err
	}
	return Start(ws, h, opts), ok, nil
}

func trimBody(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

// ClientHello sends Hello on a fresh socket and waits for HelloOK.
func ClientHello(ctx context.Context, ws *websocket.Conn, role proto.Role) (proto.HelloOK, error) {
	deadline := time.Now().Add(proto.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	e, _ := proto.NewEnvelope(proto.TypeHello, proto.Hello{Protocol: proto.ProtocolVersion, Version: version.Version, Role: role})
	e.ID = 1
	frame, err := proto.Encode(e)
	if err != nil {
		return proto.HelloOK{}, err
	}
	ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return proto.HelloOK{}, fmt.Errorf("send hello: %w", err)
	}
	ws.SetReadDeadline(deadline)
	ws.SetReadLimit(proto.MaxMessageSize)
	_, frame, err = ws.ReadMessage()
	if err != nil {
		return proto.HelloOK{}, fmt.Errorf("read hello reply: %w", err)
	}
	r, err := proto.Decode(frame)
	if err != nil {
		return proto.HelloOK{}, fmt.Errorf("read hello reply: %w", err)
	}
	if r.Error != "" {
		return proto.HelloOK{}, &RemoteError{Msg: r.Error}
	}
	var ok proto.HelloOK
	if r.Type != proto.TypeHelloOK || r.ReplyTo != 1 {
		return ok, fmt.Errorf("read hello reply: unexpected %s", r.Type)
	}
	if err := r.Into(&ok); err != nil {
		return ok, err
	}
	ws.SetReadDeadline(time.Time{})
	ws.SetWriteDeadline(time.Time{})
	return ok, nil
}

// ServerHello reads the peer's Hello on a fresh socket, checks role and
// protocol version and answers HelloOK; on mismatch it answers an error
// reply, closes the socket and returns the error.
func ServerHello(ws *websocket.Conn, want proto.Role, timeout time.Duration) (proto.Hello, error) {
	var h proto.Hello
	ws.SetReadLimit(proto.MaxMessageSize)
	ws.SetReadDeadline(time.Now().Add(timeout))
	_, frame, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return h, fmt.Errorf("read hello: %w", err)
	}
	e, err := proto.Decode(frame)
	if err == nil && e.Type != proto.TypeHello {
		err = fmt.Errorf("expected hello, got %s", e.Type)
	}
	if err == nil {
		err = e.Into(&h)
	}
	if err == nil {
		err = proto.CheckHello(h)
	}
	if err == nil && h.Role != want {
		err = fmt.Errorf("hello from a %q on the %s endpoint", h.Role, want)
	}
	id := uint64(1)
	if e != nil && e.ID != 0 {
		id = e.ID
	}
	var reply *proto.Envelope
	if err != nil {
		reply = &proto.Envelope{Type: proto.TypeReply, ReplyTo: id, Error: err.Error()}
	} else {
		reply, _ = proto.NewEnvelope(proto.TypeHelloOK, proto.HelloOK{Protocol: proto.ProtocolVersion, Version: version.Version})
		reply.ReplyTo = id
	}
	b, _ := json.Marshal(reply)
	ws.SetWriteDeadline(time.Now().Add(proto.WriteWait))
	werr := ws.WriteMessage(websocket.TextMessage, b)
	if err != nil {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "hello refused"), time.Now().Add(time.Second))
		ws.Close()
		return h, err
	}
	if werr != nil {
		ws.Close()
		return h, fmt.Errorf("answer hello: %w", werr)
	}
	ws.SetReadDeadline(time.Time{})
	ws.SetWriteDeadline(time.Time{})
	return h, nil
}
