// Package client is the Go client of the coordinator's control API, used
// by the CLI, by `adora apply` and by the cluster commands. A Client holds
// one WebSocket connection (/api/control); Health and the artifact calls use
// plain HTTP on the same port.
//
// A Client is safe for concurrent use. Close it when done.
package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// Options say where the coordinator is and how to authenticate.
type Options struct {
	Addr   string // IP or hostname; default "localhost"
	Port   int    // default 6013
	Token  string // bearer token; "" when auth is off
	Logger *slog.Logger
	// HTTPClient is used for Health and artifacts (default: 30 s timeout
	// for health, none for artifacts).
	HTTPClient *http.Client
}

func (o Options) endpoint() wsconn.Endpoint {
	return wsconn.Endpoint{Addr: o.Addr, Port: o.Port, Token: o.Token}
}

// Client is a connection to the coordinator's control API.
type Client struct {
	opts    Options
	conn    *wsconn.Conn
	version string // the coordinator's adora version

	mu      sync.Mutex
	follows map[uint64]*follow // log follows by request id
}

// ConnectError says the coordinator could not be reached at all.
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("could not connect to coordinator at %s: %v (is it running? start it with `adora up` or `adora coordinator`)", e.Addr, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Dial connects to the coordinator and performs the hello handshake.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, follows: map[uint64]*follow{}}
	conn, ok, err := wsconn.Dial(ctx, opts.endpoint(), proto.PathControl, proto.RoleCLI, c.event, wsconn.Options{Logger: opts.Logger})
	if err != nil {
		var de *wsconn.DialError
		if errors.As(err, &de) {
			return nil, &ConnectError{Addr: de.URL, Err: de.Err}
		}
		return nil, err
	}
	c.conn, c.version = conn, ok.Version
	return c, nil
}

// CoordinatorVersion is the adora version the coordinator reported.
func (c *Client) CoordinatorVersion() string { return c.version }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// follow is one FollowLogs in progress.
type follow struct {
	lines chan []proto.LogLine
	end   chan proto.LogsEnd // receives the one LogsEnd
	// dropped counts lines lost since the last batch queued (reader
	// goroutine only); the next batch opens with a note saying so.
	dropped int
	// lost is what dropped held at the end when no note fitted; FollowLogs
	// reports it before it returns.
	lost atomic.Int64
}

// droppedNote is the system line that tells a follower n lines were lost.
func droppedNote(n int) proto.LogLine {
	return proto.LogLine{Stream: proto.System, Time: time.Now().UTC(),
		Line: fmt.Sprintf("... %d lines dropped: this follow could not keep up (adora logs shows every line)", n)}
}

// event routes follow events (Log, LogsEnd) to their follower. It runs on
// the reader goroutine and never blocks: a follower too slow to keep up
// loses lines (and a warning is logged), never the end of the stream.
func (c *Client) event(_ *wsconn.Conn, e *proto.Envelope) {
	switch e.Type {
	case proto.TypeLog:
		var l proto.Log
		if e.Into(&l) != nil {
			return
		}
		if f := c.follow(l.Follow); f != nil {
			ls := l.Lines
			if f.dropped > 0 {
				ls = append([]proto.LogLine{droppedNote(f.dropped)}, ls...)
			}
			select {
			case f.lines <- ls:
				f.dropped = 0
			default:
				if f.dropped == 0 {
					c.opts.Logger.Warn("log follower is slow; dropping lines")
				}
				f.dropped += len(l.Lines)
			}
		}
	case proto.TypeLogsEnd:
		var end proto.LogsEnd
		if e.Into(&end) != nil {
			return
		}
		if f := c.follow(end.Follow); f != nil {
			if f.dropped > 0 {
				select {
				case f.lines <- []proto.LogLine{droppedNote(f.dropped)}:
				default:
					f.lost.Store(int64(f.dropped))
				}
				f.dropped = 0
			}
			select {
			case f.end <- end:
			default:
			}
		}
	}
}

func (c *Client) follow(id uint64) *follow {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.follows[id]
}

func (c *Client) do(ctx context.Context, t proto.Type, req, out any) error {
	return c.conn.Request(ctx, t, req, out)
}

// Start starts a dataflow and returns once every daemon spawned its nodes.
func (c *Client) Start(ctx context.Context, req proto.Start) (proto.StartReply, error) {
	var r proto.StartReply
	err := c.do(ctx, proto.TypeStart, req, &r)
	return r, err
}

// Stop stops a dataflow by name or uuid. A zero grace means the default
// (10 s); force kills at once. The reply's Error lists daemons that could
// not stop their part (the request itself succeeded).
func (c *Client) Stop(ctx context.Context, dataflow string, grace time.Duration, force bool) (proto.StopReply, error) {
	var r proto.StopReply
	err := c.do(ctx, proto.TypeStopFlow, proto.StopFlow{Dataflow: dataflow, Grace: grace, Force: force}, &r)
	return r, err
}

// Restart stops a dataflow (by name or uuid) and starts it again from its
// stored descriptor under a new uuid.
func (c *Client) Restart(ctx context.Context, dataflow string, grace time.Duration, force bool) (proto.RestartReply, error) {
	var r proto.RestartReply
	err := c.do(ctx, proto.TypeRestart, proto.Restart{Dataflow: dataflow, Grace: grace, Force: force}, &r)
	return r, err
}

// List returns the active dataflows (all: finished ones too).
func (c *Client) List(ctx context.Context, all bool) ([]proto.DataflowInfo, error) {
	var r proto.ListReply
	err := c.do(ctx, proto.TypeList, proto.List{All: all}, &r)
	return r.Dataflows, err
}

// Info describes one dataflow, its descriptor included.
func (c *Client) Info(ctx context.Context, dataflow string) (proto.DataflowInfo, error) {
	var r proto.DataflowInfo
	err := c.do(ctx, proto.TypeInfo, proto.Info{Dataflow: dataflow}, &r)
	return r, err
}

// Daemons lists the connected daemons and the active dataflow count.
func (c *Client) Daemons(ctx context.Context) (proto.DaemonsReply, error) {
	var r proto.DaemonsReply
	err := c.do(ctx, proto.TypeDaemons, nil, &r)
	return r, err
}

// AllDaemons lists the connected daemons followed by the ones the
// coordinator registered before but that are not connected now
// (Connected false).
func (c *Client) AllDaemons(ctx context.Context) (proto.DaemonsReply, error) {
	var r proto.DaemonsReply
	err := c.do(ctx, proto.TypeDaemons, proto.Daemons{All: true}, &r)
	return r, err
}

// Top returns the latest per-node metrics.
func (c *Client) Top(ctx context.Context) (proto.TopReply, error) {
	var r proto.TopReply
	err := c.do(ctx, proto.TypeTop, nil, &r)
	return r, err
}

// Destroy stops every dataflow, makes every daemon exit, then the
// coordinator exits.
func (c *Client) Destroy(ctx context.Context) error {
	return c.do(ctx, proto.TypeDestroy, proto.Destroy{}, nil)
}

// Logs returns the last tail lines (0: all) of a dataflow, or of one node.
func (c *Client) Logs(ctx context.Context, dataflow, node string, tail int) ([]proto.LogLine, error) {
	var r proto.LogsReply
	err := c.do(ctx, proto.TypeLogs, proto.Logs{Dataflow: dataflow, Node: node, Tail: tail}, &r)
	return r.Lines, err
}

// FollowLogs calls fn with the last tail lines, then with every new line,
// until the dataflow ends (its final status is returned) or ctx is
// canceled (then ctx's error is returned). fn runs on the caller's
// goroutine.
func (c *Client) FollowLogs(ctx context.Context, dataflow, node string, tail int, fn func(proto.LogLine)) (proto.LogsEnd, error) {
	f := &follow{lines: make(chan []proto.LogLine, 1024), end: make(chan proto.LogsEnd, 1)}
	var id uint64
	register := func(reqID uint64) {
		id = reqID
		c.mu.Lock()
		c.follows[id] = f
		c.mu.Unlock()
	}
	_, replyc, err := c.conn.StartRequest(ctx, proto.TypeLogs, proto.Logs{Dataflow: dataflow, Node: node, Tail: tail, Follow: true}, register)
	if id != 0 {
		defer c.unfollow(id)
	}
	if err != nil {
		return proto.LogsEnd{}, err
	}
	select {
	case r, ok := <-replyc:
		if !ok {
			return proto.LogsEnd{}, wsconn.ErrClosed
		}
		var rep proto.LogsReply
		if err := wsconn.Result(r, &rep); err != nil {
			return proto.LogsEnd{}, err
		}
		for _, l := range rep.Lines {
			fn(l)
		}
	case <-ctx.Done():
		return proto.LogsEnd{}, ctx.Err()
	}
	for {
		select {
		case ls := <-f.lines:
			for _, l := range ls {
				fn(l)
			}
		case end := <-f.end:
			for { // lines sent before the end are queued already
				select {
				case ls := <-f.lines:
					for _, l := range ls {
						fn(l)
					}
				default:
					if n := f.lost.Load(); n > 0 {
						fn(droppedNote(int(n)))
					}
					return end, nil
				}
			}
		case <-c.conn.Done():
			select {
			case end := <-f.end: // the end made it before the close
				return end, nil
			default:
			}
			return proto.LogsEnd{}, fmt.Errorf("follow logs: %w", wsconn.ErrClosed)
		case <-ctx.Done():
			return proto.LogsEnd{}, ctx.Err()
		}
	}
}

func (c *Client) unfollow(id uint64) {
	c.mu.Lock()
	delete(c.follows, id)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.conn.Send(ctx, proto.TypeUnfollow, proto.Unfollow{Follow: id})
}

func (o Options) httpClient(def time.Duration) *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return &http.Client{Timeout: def}
}

// Health asks GET /api/health (no token needed).
func Health(ctx context.Context, opts Options) (proto.Health, error) {
	var h proto.Health
	u := opts.endpoint().HTTPURL(proto.PathHealth)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return h, err
	}
	resp, err := opts.httpClient(30 * time.Second).Do(req)
	if err != nil {
		return h, &ConnectError{Addr: u, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("health %s: %s", u, resp.Status)
	}
	if err := decodeJSON(resp.Body, &h); err != nil {
		return h, fmt.Errorf("health %s: %w", u, err)
	}
	return h, nil
}

// Health asks the coordinator this client is connected to.
func (c *Client) Health(ctx context.Context) (proto.Health, error) { return Health(ctx, c.opts) }

// UploadArtifact stores a node binary in the coordinator's artifact store
// under buildID/nodeID. The body is hashed while it streams; sha256Hex is
// what the coordinator verifies it against (compute it first, e.g. with
// FileSHA256).
func UploadArtifact(ctx context.Context, opts Options, buildID, nodeID string, body io.Reader, sha256Hex string) error {
	u := opts.endpoint().HTTPURL(proto.PathArtifacts + buildID + "/" + nodeID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return err
	}
	req.Header.Set(proto.HeaderSHA256, sha256Hex)
	req.Header.Set("Content-Type", "application/octet-stream")
	setAuth(req, opts.Token)
	resp, err := opts.httpClient(0).Do(req)
	if err != nil {
		return fmt.Errorf("upload artifact %s/%s: %w", buildID, nodeID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload artifact %s/%s: %s: %s", buildID, nodeID, resp.Status, readSmall(resp.Body))
	}
	return nil
}

// UploadArtifact uploads through the client's options.
func (c *Client) UploadArtifact(ctx context.Context, buildID, nodeID string, body io.Reader, sha256Hex string) error {
	return UploadArtifact(ctx, c.opts, buildID, nodeID, body, sha256Hex)
}

// ErrChecksum means a downloaded artifact did not match its checksum.
var ErrChecksum = errors.New("artifact checksum mismatch")

// DownloadArtifact writes artifact buildID/nodeID to w and verifies it
// against wantSHA256 (and the coordinator's header). On ErrChecksum the
// caller must discard what was written.
func DownloadArtifact(ctx context.Context, opts Options, buildID, nodeID, wantSHA256 string, w io.Writer) error {
	u := opts.endpoint().HTTPURL(proto.PathArtifacts + buildID + "/" + nodeID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	setAuth(req, opts.Token)
	resp, err := opts.httpClient(0).Do(req)
	if err != nil {
		return fmt.Errorf("download artifact %s/%s: %w", buildID, nodeID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download artifact %s/%s: %s: %s", buildID, nodeID, resp.Status, readSmall(resp.Body))
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), resp.Body); err != nil {
		return fmt.Errorf("download artifact %s/%s: %w", buildID, nodeID, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	hdr := resp.Header.Get(proto.HeaderSHA256)
	if (wantSHA256 != "" && got != strings.ToLower(wantSHA256)) || (hdr != "" && got != hdr) {
		return fmt.Errorf("download artifact %s/%s: got sha256 %s, want %s: %w", buildID, nodeID, got, wantSHA256, ErrChecksum)
	}
	return nil
}

// FileSHA256 hashes a reader (for UploadArtifact).
func FileSHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func setAuth(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

func readSmall(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return strings.TrimSpace(string(b))
}

// UploadHTTPArtifacts uploads the binary of every node of req distributed
// over http ("_unstable_deploy.distribute: http") to the coordinator, under
// one new build id, and records them in req.Artifacts. Relative node paths
// resolve against req.WorkingDir. Call it before Start; `adora start` and
// `adora apply` both need it for such nodes.
func UploadHTTPArtifacts(ctx context.Context, opts Options, req *proto.Start) error {
	build := ""
	for _, n := range req.Dataflow.Nodes {
		if n.Deploy.Distribute != config.DistributeHTTP {
			continue
		}
		if build == "" {
			build = uuid.Must(uuid.NewV7()).String()
		}
		path := n.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(req.WorkingDir, path)
		}
		a, err := uploadFile(ctx, opts, build, n.ID, path)
		if err != nil {
			return fmt.Errorf("node %q (distribute: http): %w", n.ID, err)
		}
		if req.Artifacts == nil {
			req.Artifacts = map[string]proto.Artifact{}
		}
		req.Artifacts[n.ID] = a
	}
	return nil
}

func uploadFile(ctx context.Context, opts Options, build, node, path string) (proto.Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return proto.Artifact{}, fmt.Errorf("binary to upload: %w (build it on this machine first)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return proto.Artifact{}, err
	}
	sum, err := FileSHA256(f)
	if err != nil {
		return proto.Artifact{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return proto.Artifact{}, err
	}
	if err := UploadArtifact(ctx, opts, build, node, f, sum); err != nil {
		return proto.Artifact{}, err
	}
	return proto.Artifact{BuildID: build, NodeID: node, SHA256: sum, Size: fi.Size()}, nil
}
