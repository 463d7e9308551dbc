package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/testutil"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "abababababababababababababababababababababababababababababababab"

func opts(srv *coordtest.Server) client.Options {
	return client.Options{Addr: srv.Endpoint.Addr, Port: srv.Endpoint.Port, Token: srv.Endpoint.Token}
}

func TestStateBackendConformance(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{Token: token})
	n := 0
	statetest.Run(t, func(t *testing.T) state.Backend {
		n++
		return client.NewStateBackend(opts(srv), "ws"+strings.Repeat("x", n))
	})
}

func TestStateBackendRefusesConcurrentWriteAndForeignLock(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{Token: token})
	ctx := context.Background()
	a := client.NewStateBackend(opts(srv), "prod")
	b := client.NewStateBackend(opts(srv), "prod")
	st := state.New("test")
	if err := a.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	// b takes the lock: a's writes are refused, naming b's lock.
	info := state.NewLockInfo("apply", "test", time.Now())
	if err := b.Lock(ctx, info); err != nil {
		t.Fatal(err)
	}
	err := a.Write(ctx, st)
	var locked *state.LockedError
	if !errors.As(err, &locked) || locked.Holder.ID != info.ID {
		t.Fatalf("write under another's lock = %v", err)
	}
	if err := b.Write(ctx, st); err != nil {
		t.Fatalf("write by the lock holder = %v", err)
	}
	if st.Serial != 2 {
		t.Fatalf("serial = %d", st.Serial)
	}
	if err := b.Unlock(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	got, err := a.Read(ctx)
	if err != nil || got.Serial != 2 || got.Lineage != st.Lineage {
		t.Fatalf("read = %+v, %v", got, err)
	}
	// Without the token nothing is readable.
	o := opts(srv)
	o.Token = ""
	if _, err := client.NewStateBackend(o, "prod").Read(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("read without token = %v", err)
	}
	// Workspace names are checked.
	if _, err := client.NewStateBackend(opts(srv), "..").Read(ctx); err == nil {
		t.Fatal("read of workspace .. succeeded")
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1", Port: 1})
	var ce *client.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "could not connect to coordinator at ws://127.0.0.1:1") || !strings.Contains(err.Error(), "adora up") {
		t.Fatalf("dial closed port = %v", err)
	}
	srv := coordtest.Start(t, coordinator.Config{Token: token})
	o := opts(srv)
	o.Token = "wrong"
	_, err = client.Dial(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "ADORA_AUTH_TOKEN") || strings.Contains(err.Error(), token) {
		t.Fatalf("dial wrong token = %v", err)
	}
	c, err := client.Dial(ctx, opts(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.CoordinatorVersion() == "" {
		t.Fatal("no coordinator version")
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	if _, err := c.Info(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no dataflow with name or uuid `nope`") {
		t.Fatalf("info unknown = %v", err)
	}
}

func TestHealthUnreachable(t *testing.T) {
	_, err := client.Health(context.Background(), client.Options{Addr: "127.0.0.1", Port: 1, HTTPClient: &http.Client{Timeout: time.Second}})
	var ce *client.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("health = %v", err)
	}
}

func TestClientSurvivesCoordinatorGoingAway(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	c, err := client.Dial(context.Background(), opts(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.Stop()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the coordinator going away")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.List(ctx, false); err == nil {
		t.Fatal("List on a dead connection succeeded")
	}
	_ = proto.TypeList
}

// A FollowLogs caller too slow for the lines loses some, and is told so by
// a system line.
func TestSlowFollowLogsIsToldOfDroppedLines(t *testing.T) {
	srv := coordtest.Start(t, coordinator.Config{})
	ctx := context.Background()
	d, err := coordtest.StartDaemon(ctx, srv.Endpoint, coordtest.DaemonConfig{UUID: "u-robot", MachineID: "robot"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var logs testutil.SyncBuffer
	o := opts(srv)
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Start(ctx, proto.Start{Name: "f", Descriptor: []byte("x"), Dataflow: config.Dataflow{Nodes: []config.Node{{ID: "cam", Path: "/bin/true", Deploy: config.Deploy{Machine: "robot"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var got []proto.LogLine
	done := make(chan error, 1)
	go func() {
		_, err := c.FollowLogs(ctx, "f", "", 0, func(l proto.LogLine) {
			<-release // the caller is stuck until the test lets it go
			got = append(got, l)
		})
		done <- err
	}()
	sent := 0
	if !coordtest.Wait(20*time.Second, func() bool {
		for range 100 {
			sent++
			d.Stream(ctx, proto.LogLine{DataflowID: rep.DataflowID, NodeID: "cam", Stream: proto.Stdout, Time: time.Unix(int64(sent), 0), Line: "l"})
		}
		return strings.Contains(logs.String(), "dropping lines")
	}) {
		close(release)
		t.Fatal("the follow never fell behind")
	}
	close(release)
	d.Finish(ctx, rep.DataflowID, false, "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end")
	}
	notes := 0
	for _, l := range got {
		if l.Stream == proto.System && strings.Contains(l.Line, "lines dropped") {
			notes++
		}
	}
	if notes == 0 || len(got)-notes >= sent {
		t.Fatalf("%d notes among %d lines (%d sent)", notes, len(got), sent)
	}
}
