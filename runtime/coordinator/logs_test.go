package coordinator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

func line(df, node, text string, sec int) proto.LogLine {
	return proto.LogLine{DataflowID: df, NodeID: node, Stream: proto.Stdout, Time: epoch.Add(time.Duration(sec) * time.Second), Line: text}
}

func TestLogsTailAndFollowUntilFinished(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	id := rep.DataflowID
	robot.Log(ctxT(t), line(id, "camera", "c1", 1), line(id, "camera", "c3", 3))
	gpu.Log(ctxT(t), line(id, "inference", "i2", 2))
	time.Sleep(20 * time.Millisecond)

	all, err := c.Logs(ctxT(t), "my-app", "", 0)
	if err != nil || texts(all) != "c1 i2 c3" {
		t.Fatalf("logs = %q, %v", texts(all), err)
	}
	tail, _ := c.Logs(ctxT(t), id, "", 2)
	if texts(tail) != "i2 c3" {
		t.Fatalf("tail 2 = %q", texts(tail))
	}
	cam, _ := c.Logs(ctxT(t), "my-app", "camera", 0)
	if texts(cam) != "c1 c3" {
		t.Fatalf("camera logs = %q", texts(cam))
	}
	if _, err := c.Logs(ctxT(t), "my-app", "nope", 0); err == nil || !strings.Contains(err.Error(), "has no node `nope`") {
		t.Fatalf("unknown node: %v", err)
	}

	got := make(chan string, 100)
	type result struct {
		end proto.LogsEnd
		err error
	}
	done := make(chan result, 1)
	go func() {
		end, err := c.FollowLogs(ctxT(t), "my-app", "camera", 1, func(l proto.LogLine) { got <- l.Line })
		done <- result{end, err}
	}()
	if l := <-got; l != "c3" {
		t.Fatalf("first followed line = %q", l)
	}
	// Wait until the follower is live, then send more lines.
	ok := coordtest.Wait(5*time.Second, func() bool {
		robot.Log(ctxT(t), line(id, "camera", "probe", 4))
		select {
		case l := <-got:
			return l == "probe"
		case <-time.After(20 * time.Millisecond):
			return false
		}
	})
	if !ok {
		t.Fatal("follower never received new lines")
	}
	gpu.Log(ctxT(t), line(id, "inference", "filtered out", 5))
	robot.Log(ctxT(t), line(id, "camera", "c6", 6))
	for l := range got {
		if l == "c6" {
			break
		}
		if l != "probe" {
			t.Fatalf("unexpected line %q", l)
		}
	}
	robot.Finish(ctxT(t), id, false, "")
	gpu.Finish(ctxT(t), id, false, "")
	select {
	case r := <-done:
		if r.err != nil || r.end.Status != proto.FlowSucceeded || r.end.DataflowID != id {
			t.Fatalf("follow ended with %+v, %v", r.end, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the dataflow finished")
	}

	// Following a finished dataflow returns its history and ends at once.
	end, err := c.FollowLogs(ctxT(t), "my-app", "", 0, func(proto.LogLine) {})
	if err != nil || end.Status != proto.FlowSucceeded {
		t.Fatalf("follow finished dataflow = %+v, %v", end, err)
	}
}

func TestFollowCanceledByCaller(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	if _, err := c.Start(ctxT(t), startReq("my-app")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.FollowLogs(ctx, "my-app", "", 0, func(proto.LogLine) {})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow = %v, want deadline exceeded", err)
	}
	// The connection still works afterwards.
	if _, err := c.List(ctxT(t), false); err != nil {
		t.Fatal(err)
	}
}

func texts(ls []proto.LogLine) string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Line)
	}
	return strings.Join(out, " ")
}

func TestTopReportsNodeMetrics(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	robot.Metrics(ctxT(t),
		proto.NodeMetric{DataflowID: rep.DataflowID, NodeID: "camera", PID: 42, CPUPercent: 12.5, MemoryBytes: 1 << 20, Restarts: 2, Status: proto.NodeRunning, Drops: 7},
		proto.NodeMetric{DataflowID: "unknown", NodeID: "x"})
	var top proto.TopReply
	coordtest.Wait(5*time.Second, func() bool {
		top, err = c.Top(ctxT(t))
		return err == nil && len(top.Nodes) > 0
	})
	if len(top.Nodes) != 1 {
		t.Fatalf("top = %+v", top)
	}
	m := top.Nodes[0]
	if m.NodeID != "camera" || m.PID != 42 || m.Restarts != 2 || m.Drops != 7 || m.DataflowName != "my-app" || m.MachineID != "robot" || m.DaemonID != "u-robot" {
		t.Fatalf("metric = %+v", m)
	}
}

func TestArtifacts(t *testing.T) {
	dir := t.TempDir()
	srv := coordtest.Start(t, coordinator.Config{Token: token, ArtifactsDir: dir})
	opts := client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port, Token: token}
	body := []byte("\x7fELF pretend binary")
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])

	if err := client.UploadArtifact(ctxT(t), opts, "build-1", "camera", bytes.NewReader(body), good); err != nil {
		t.Fatalf("upload: %v", err)
	}
	var out bytes.Buffer
	if err := client.DownloadArtifact(ctxT(t), opts, "build-1", "camera", good, &out); err != nil || !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("download = %q, %v", out.Bytes(), err)
	}
	out.Reset()
	if err := client.DownloadArtifact(ctxT(t), opts, "build-1", "camera", strings.Repeat("0", 64), &out); !errors.Is(err, client.ErrChecksum) {
		t.Fatalf("download with wrong expected sum = %v", err)
	}

	tests := []struct {
		name, method, path, token, sha string
		body                           []byte
		want                           int
	}{
		{"get without token", "GET", "build-1/camera", "", "", nil, 401},
		{"put without token", "PUT", "build-1/camera", "", good, body, 401},
		{"get wrong token", "GET", "build-1/camera", "nope", "", nil, 401},
		{"get ok", "GET", "build-1/camera", token, "", nil, 200},
		{"missing", "GET", "build-1/lidar", token, "", nil, 404},
		{"dotdot node", "GET", "build-1/..", token, "", nil, 404}, // ServeMux cleans the path first
		{"dotdot inside", "GET", "build-1/a..b", token, "", nil, 400},
		{"encoded slash", "GET", "build-1/..%2F..%2Fetc%2Fpasswd", token, "", nil, 400},
		{"encoded backslash", "GET", "build-1/a%5Cb", token, "", nil, 400},
		{"hidden", "GET", "build-1/.hidden", token, "", nil, 400},
		{"bad build", "PUT", "..%2Fx/camera", token, good, body, 400},
		{"sha mismatch", "PUT", "build-1/lidar", token, strings.Repeat("a", 64), body, 400},
		{"sha missing", "PUT", "build-1/lidar", token, "", body, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.Endpoint.HTTPURL("/api/artifacts/")+tt.path, bytes.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.sha != "" {
				req.Header.Set(proto.HeaderSHA256, tt.sha)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
			if tt.want == 200 && resp.Header.Get(proto.HeaderSHA256) != good {
				t.Fatalf("sha header = %q", resp.Header.Get(proto.HeaderSHA256))
			}
		})
	}
	// The refused upload left nothing behind.
	var lidar bytes.Buffer
	if err := client.DownloadArtifact(ctxT(t), opts, "build-1", "lidar", "", &lidar); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("lidar after refused upload: %v", err)
	}
}

func TestValidArtifactID(t *testing.T) {
	for id, want := range map[string]bool{
		"camera": true, "node_1.v2-x": true, "0190a": true,
		"": false, "..": false, "a..b": false, ".x": false, "a/b": false, `a\b`: false, "a b": false, strings.Repeat("a", 129): false,
	} {
		if got := coordinator.ValidArtifactID(id); got != want {
			t.Errorf("ValidArtifactID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestUnreferencedArtifactsAreRemoved(t *testing.T) {
	dir := t.TempDir()
	clock := coordtest.NewClock(time.Now())
	srv := coordtest.Start(t, coordinator.Config{ArtifactsDir: dir, Clock: clock, TickInterval: quietTick})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	opts := client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port}
	body := []byte("bin")
	sum := sha256.Sum256(body)
	for _, b := range []string{"used", "orphan"} {
		if err := client.UploadArtifact(ctxT(t), opts, b, "camera", bytes.NewReader(body), hex.EncodeToString(sum[:])); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	req.Artifacts = map[string]proto.Artifact{"camera": {BuildID: "used", NodeID: "camera", SHA256: hex.EncodeToString(sum[:])}}
	if _, err := c.Start(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	srv.Tick() // fresh uploads are kept
	if _, err := os.Stat(filepath.Join(dir, "orphan")); err != nil {
		t.Fatalf("fresh orphan removed: %v", err)
	}
	clock.Advance(2 * time.Hour)
	srv.Tick()
	if _, err := os.Stat(filepath.Join(dir, "orphan")); !os.IsNotExist(err) {
		t.Fatalf("old orphan kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "used", "camera")); err != nil {
		t.Fatalf("referenced artifact removed: %v", err)
	}
}

func TestFollowsPerConnectionAreBounded(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes = req.Dataflow.Nodes[:1]
	rep, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	robot.Log(ctxT(t), line(rep.DataflowID, "camera", "hello", 1))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 16)
	done := make(chan struct{}, 16)
	for i := 0; i < 16; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			c.FollowLogs(ctx, "app", "", 0, func(proto.LogLine) { started <- struct{}{} })
		}()
	}
	for i := 0; i < 16; i++ {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d follows started", i)
		}
	}
	_, err = c.FollowLogs(ctxT(t), "app", "", 0, func(proto.LogLine) {})
	cancel()
	for i := 0; i < 16; i++ {
		<-done
	}
	if err == nil || !strings.Contains(err.Error(), "too many log follows on this connection (at most 16)") {
		t.Fatalf("17th follow = %v", err)
	}
	// Unfollowed slots are free again.
	if !coordtest.Wait(5*time.Second, func() bool {
		fctx, fcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer fcancel()
		_, err := c.FollowLogs(fctx, "app", "", 0, func(proto.LogLine) {})
		return errors.Is(err, context.DeadlineExceeded)
	}) {
		t.Fatal("follow slots not released")
	}
}

func TestNodeMetricsMayComeInParts(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	c := dial(t, srv.Endpoint)
	req := startReq("app")
	req.Dataflow.Nodes[1].Deploy = req.Dataflow.Nodes[0].Deploy // both on robot
	rep, err := c.Start(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	robot.Metrics(ctxT(t), proto.NodeMetric{DataflowID: rep.DataflowID, NodeID: "camera", PID: 1})
	robot.Metrics(ctxT(t), proto.NodeMetric{DataflowID: rep.DataflowID, NodeID: "inference", PID: 2})
	if !coordtest.Wait(5*time.Second, func() bool { top, _ := c.Top(ctxT(t)); return len(top.Nodes) == 2 }) {
		t.Fatal("a later part replaced an earlier one")
	}
	robot.Finish(ctxT(t), rep.DataflowID, false, "")
	if !coordtest.Wait(5*time.Second, func() bool { top, _ := c.Top(ctxT(t)); return len(top.Nodes) == 0 }) {
		t.Fatal("metrics of a finished dataflow kept")
	}
}

// A daemon's history and its live stream overlap: lines written to the
// node's log file before the follow's history was read may still be on
// their way in the stream. Each line reaches the follower once, in order,
// with the daemon's sequence numbers and (older daemons) without them.
func TestFollowShowsLinesInHistoryAndStreamOnce(t *testing.T) {
	for _, withSeq := range []bool{true, false} {
		t.Run(map[bool]string{true: "seq", false: "time"}[withSeq], func(t *testing.T) {
			srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
			robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
			gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
			c := dial(t, srv.Endpoint)
			rep, err := c.Start(ctxT(t), startReq("my-app"))
			if err != nil {
				t.Fatal(err)
			}
			id := rep.DataflowID
			mk := func(text string, sec int) proto.LogLine {
				l := line(id, "camera", text, sec)
				if withSeq {
					l.Seq = uint64(sec)
				}
				return l
			}
			// "tick" twice: equal text is not equal lines.
			h1, h2, h3, n4, n5 := mk("tick", 1), mk("h2", 2), mk("tick", 3), mk("n4", 4), mk("tick", 5)
			robot.Record(h1, h2, h3) // in the files, not streamed yet

			var got []string
			done := make(chan error, 1)
			histDone := make(chan struct{})
			go func() {
				_, err := c.FollowLogs(ctxT(t), "my-app", "", 0, func(l proto.LogLine) {
					got = append(got, l.Line)
					if len(got) == 3 {
						close(histDone)
					}
				})
				done <- err
			}()
			select {
			case <-histDone:
			case <-time.After(5 * time.Second):
				t.Fatal("history never arrived")
			}
			// The history is out; the stream now delivers what it had.
			if err := robot.Stream(ctxT(t), h1, h2, h3, n4); err != nil {
				t.Fatal(err)
			}
			if err := robot.Stream(ctxT(t), n4, n5); err != nil { // n4 again, as after a retry
				t.Fatal(err)
			}
			robot.Finish(ctxT(t), id, false, "")
			gpu.Finish(ctxT(t), id, false, "")
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("follow did not end")
			}
			if s := strings.Join(got, " "); s != "tick h2 tick n4 tick" {
				t.Fatalf("followed lines = %q, want each once: %q", s, "tick h2 tick n4 tick")
			}
		})
	}
}

// A daemon that reconnects during a follow (it lost the coordinator for a
// while, or came up after the follow began) has its history fetched
// again: the lines its nodes wrote meanwhile, which it never streamed,
// reach the follower once and before the lines it streams from then on,
// and before the end of the dataflow.
func TestFollowCatchesUpWithReconnectedDaemon(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	id := rep.DataflowID
	c1, c2, c3 := line(id, "camera", "c1", 1), line(id, "camera", "c2", 2), line(id, "camera", "c3", 3)
	robot.Log(ctxT(t), c1)

	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		_, err := c.FollowLogs(ctxT(t), "my-app", "", 0, func(l proto.LogLine) { got <- l.Line })
		done <- err
	}()
	if l := <-got; l != "c1" {
		t.Fatalf("first line = %q", l)
	}
	robot.Close()
	if !coordtest.Wait(5*time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatal("robot still connected")
	}
	// Back, with c2 written while away; c3 streamed at once, before the
	// coordinator could fetch the history; then the dataflow ends.
	back := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot",
		Running: map[string][]string{id: {"camera"}}, History: []proto.LogLine{c1, c2}})
	back.Log(ctxT(t), c3)
	back.Finish(ctxT(t), id, false, "")
	gpu.Finish(ctxT(t), id, false, "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end")
	}
	close(got)
	var rest []string
	for l := range got {
		rest = append(rest, l)
	}
	if s := strings.Join(rest, " "); s != "c2 c3" {
		t.Fatalf("lines after the reconnect = %q, want %q", s, "c2 c3")
	}
}

// A follower too slow for its lines loses some, and is told so: the next
// lines it gets begin with a system line that counts the dropped ones.
func TestSlowFollowerIsToldOfDroppedLines(t *testing.T) {
	logger, logs := newLogger()
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick, Logger: logger, ConnOptions: wsconn.Options{QueueLen: 1}})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	rep, err := dial(t, srv.Endpoint).Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	id := rep.DataflowID

	ws := rawDial(t, srv.Endpoint, proto.PathControl)
	if _, err := wsconn.ClientHello(ctxT(t), ws, proto.RoleCLI); err != nil {
		t.Fatal(err)
	}
	e, _ := proto.NewEnvelope(proto.TypeLogs, proto.Logs{Dataflow: "my-app", Follow: true})
	e.ID = 1
	frame, _ := proto.Encode(e)
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil { // the (empty) history
		t.Fatal(err)
	}
	// The follower reads nothing while the daemon streams big lines.
	big := strings.Repeat("x", 100<<10)
	sec := 0
	if !coordtest.Wait(20*time.Second, func() bool {
		var batch []proto.LogLine
		for range 5 {
			sec++
			batch = append(batch, line(id, "camera", big, sec))
		}
		robot.Stream(ctxT(t), batch...)
		return logs.Count("log follower is too slow") > 0
	}) {
		t.Fatal("the follower never fell behind")
	}

	lines := make(chan proto.LogLine, 1000)
	go func() { // ends when the test closes ws
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				close(lines)
				return
			}
			e, err := proto.Decode(b)
			var l proto.Log
			if err != nil || e.Type != proto.TypeLog || e.Into(&l) != nil {
				continue
			}
			for _, x := range l.Lines {
				lines <- x
			}
		}
	}()
	var note string
	deadline := time.After(20 * time.Second)
	for note == "" {
		sec++
		robot.Stream(ctxT(t), line(id, "camera", "small", sec))
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("follower connection closed")
			}
			if l.Stream == proto.System && strings.Contains(l.Line, "lines dropped") {
				note = l.Line
			}
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("no note of the dropped lines")
		}
	}
	var n int
	if _, err := fmt.Sscanf(note, "... %d lines dropped", &n); err != nil || n <= 0 || n > sec {
		t.Fatalf("note = %q (%d lines were sent)", note, sec)
	}
	ws.Close()
}

// Lines held for a follower while a daemon is slow to answer its history
// are bounded; the follower is told how many were dropped.
func TestFollowBufferWhileHistoryIsSlowIsBounded(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{TickInterval: quietTick})
	hold := make(chan struct{})
	robot := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot", HoldLogs: hold})
	gpu := coordtest.StartDaemonT(t, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-gpu", MachineID: "gpu", Labels: map[string]string{"gpu": "true"}})
	c := dial(t, srv.Endpoint)
	rep, err := c.Start(ctxT(t), startReq("my-app"))
	if err != nil {
		t.Fatal(err)
	}
	id := rep.DataflowID
	var got []proto.LogLine
	done := make(chan error, 1)
	go func() {
		_, err := c.FollowLogs(ctxT(t), "my-app", "", 0, func(l proto.LogLine) { got = append(got, l) })
		done <- err
	}()
	if !coordtest.Wait(5*time.Second, func() bool { return robot.LogsRequests() == 1 }) {
		close(hold)
		t.Fatal("history not asked")
	}
	const sent = 10500
	for i := 0; i < sent; i += 500 {
		var batch []proto.LogLine
		for j := i; j < i+500; j++ {
			batch = append(batch, line(id, "camera", fmt.Sprintf("l%d", j), j))
		}
		if err := robot.Stream(ctxT(t), batch...); err != nil {
			close(hold)
			t.Fatal(err)
		}
	}
	before := time.Now()
	robot.Heartbeat(ctxT(t))
	if !coordtest.Wait(30*time.Second, func() bool {
		for _, d := range srv.Daemons().Daemons {
			if d.ID == "u-robot" {
				return d.LastHeartbeat.After(before)
			}
		}
		return false
	}) {
		close(hold)
		t.Fatalf("lines not processed: %+v", srv.Daemons().Daemons)
	}
	close(hold)
	robot.Finish(ctxT(t), id, false, "")
	gpu.Finish(ctxT(t), id, false, "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end")
	}
	if len(got) == 0 || got[0].Stream != proto.System || !strings.Contains(got[0].Line, "1000 lines dropped") {
		t.Fatalf("first line = %+v, want a note of 1000 dropped lines", got[:min(1, len(got))])
	}
	if n := len(got) - 1; n != sent-1000 || got[1].Line != "l1000" || got[n].Line != "l10499" {
		t.Fatalf("%d lines after the note (%q .. %q), want l1000 .. l10499", n, got[1].Line, got[n].Line)
	}
}
