package wsconn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/adora-rs/adora/runtime/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every request by echoing its payload, or with an
// error for type "fail". Server-side conns are handed to conns.
func echoServer(t *testing.T, opts Options) (Endpoint, chan *Conn) {
	t.Helper()
	conns := make(chan *Conn, 4)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if _, err := ServerHello(ws, proto.RoleCLI, time.Second); err != nil {
			return
		}
		c := Start(ws, func(c *Conn, e *proto.Envelope) {
			if e.Type == "big" {
				c.Reply(context.Background(), e, "echo", strings.Repeat("y", proto.MaxMessageSize), nil)
				return
			}
			if e.Type == "fail" {
				c.Reply(context.Background(), e, "", nil, errors.New("it failed"))
				return
			}
			var v map[string]any
			e.Into(&v)
			c.Reply(context.Background(), e, "echo", v, nil)
		}, opts)
		conns <- c
		<-c.Done()
		c.Close()
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	host, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	return Endpoint{Addr: host, Port: p}, conns
}

func TestRequestReplyAndRemoteError(t *testing.T) {
	ep, _ := echoServer(t, Options{})
	ctx := context.Background()
	c, ok, err := Dial(ctx, ep, "/", proto.RoleCLI, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok.Protocol != proto.ProtocolVersion {
		t.Fatalf("hello ok = %+v", ok)
	}
	var out map[string]any
	if err := c.Request(ctx, "x", map[string]any{"a": "b"}, &out); err != nil || out["a"] != "b" {
		t.Fatalf("echo = %v, %v", out, err)
	}
	err = c.Request(ctx, "fail", nil, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "it failed" {
		t.Fatalf("fail = %v", err)
	}
	// A reply too large for a frame comes back as an error, not never.
	err = c.Request(ctx, "big", nil, nil)
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "exceeds") {
		t.Fatalf("big = %v", err)
	}
}

func TestWrongRoleRefused(t *testing.T) {
	ep, _ := echoServer(t, Options{})
	_, _, err := Dial(context.Background(), ep, "/", proto.RoleDaemon, nil, Options{})
	if err == nil || !strings.Contains(err.Error(), `hello from a "daemon"`) {
		t.Fatalf("dial as daemon = %v", err)
	}
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	ep, conns := echoServer(t, Options{})
	ws, _, err := websocket.DefaultDialer.Dial(ep.URL("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := ClientHello(context.Background(), ws, proto.RoleCLI); err != nil {
		t.Fatal(err)
	}
	srv := <-conns
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"x","payload":"`+strings.Repeat("a", proto.MaxMessageSize)+`"}`))
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server kept the connection")
	}
	if err := srv.Err(); err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("server Err = %v", err)
	}
}

func TestSilentPeerTimesOut(t *testing.T) {
	ep, conns := echoServer(t, Options{PingInterval: 20 * time.Millisecond, PongWait: 150 * time.Millisecond})
	// A raw client that never reads never answers pings.
	ws, _, err := websocket.DefaultDialer.Dial(ep.URL("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := ClientHello(context.Background(), ws, proto.RoleCLI); err != nil {
		t.Fatal(err)
	}
	srv := <-conns
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent peer not detected")
	}
	if srv.Err() == nil {
		t.Fatal("no reason recorded for the timeout")
	}
}

func TestCloseFailsPendingRequests(t *testing.T) {
	block := make(chan struct{})
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if _, err := ServerHello(ws, proto.RoleCLI, time.Second); err != nil {
			return
		}
		c := Start(ws, nil, Options{}) // never answers
		<-block
		c.Close()
	}))
	defer srv.Close()
	defer close(block)
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	p, _ := strconv.Atoi(port)
	c, _, err := Dial(context.Background(), Endpoint{Addr: host, Port: p}, "/", proto.RoleCLI, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Request(context.Background(), "x", nil, nil) }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("pending request = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending request not failed by Close")
	}
	if err := c.Send(context.Background(), "x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if c.TrySend("x", nil) {
		t.Fatal("TrySend after Close succeeded")
	}
}

func TestEndpointURLs(t *testing.T) {
	tests := []struct {
		ep   Endpoint
		want string
	}{
		{Endpoint{}, "ws://localhost:6013/api/control"},
		{Endpoint{Addr: "10.0.0.1", Port: 7000}, "ws://10.0.0.1:7000/api/control"},
		{Endpoint{Addr: "::1", Port: 1}, "ws://[::1]:1/api/control"},
		{Endpoint{Addr: "robot.local", Port: 6013}, "ws://robot.local:6013/api/control"},
	}
	for _, tt := range tests {
		if got := tt.ep.URL(proto.PathControl); got != tt.want {
			t.Errorf("URL(%+v) = %s, want %s", tt.ep, got, tt.want)
		}
	}
	if h := AuthHeader("t").Get("Authorization"); h != "Bearer t" {
		t.Fatalf("AuthHeader = %q", h)
	}
	if len(AuthHeader("")) != 0 {
		t.Fatal("AuthHeader(\"\") not empty")
	}
}

func TestProbe(t *testing.T) {
	ep, conns := echoServer(t, Options{})
	// A live client answers the server's probe.
	c, _, err := Dial(context.Background(), ep, "/", proto.RoleCLI, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-conns
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Probe(ctx); err != nil {
		t.Fatalf("probe of a live peer = %v", err)
	}
	// A raw client that never reads does not.
	ws, _, err := websocket.DefaultDialer.Dial(ep.URL("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := ClientHello(context.Background(), ws, proto.RoleCLI); err != nil {
		t.Fatal(err)
	}
	silent := <-conns
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := silent.Probe(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("probe of a silent peer = %v", err)
	}
}
