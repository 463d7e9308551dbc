package command

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/internal/testutil"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/coordtest"
	"github.com/adora-rs/adora/runtime/coordinator/store"
	"github.com/adora-rs/adora/runtime/daemon"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// startRealDaemon runs a daemon of runtime/daemon against ep until the
// test ends.
func startRealDaemon(t *testing.T, ep wsconn.Endpoint) {
	t.Helper()
	d, err := daemon.New(daemon.Config{MachineID: "robot", Coordinator: ep, Home: t.TempDir(),
		HeartbeatInterval: 100 * time.Millisecond, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop")
		}
	})
}

// talkerFile writes a dataflow whose one node prints line1 .. lineN.
func talkerFile(t *testing.T, n int) string {
	file := filepath.Join(t.TempDir(), "df.yml")
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do i=$((i+1)); echo line$i; sleep 0.005; done`, n)
	os.WriteFile(file, []byte("nodes:\n  - id: talker\n    path: /bin/sh\n    args: [\"-c\", \""+script+"\"]\n"), 0o644)
	return file
}

// checkLines fails unless out shows line1 .. lineN, each once, in order.
func checkLines(t *testing.T, what, out string, count int) {
	t.Helper()
	next := 1
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimPrefix(l, "talker: ")
		if !strings.HasPrefix(l, "line") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(l, "line"))
		if err != nil || n != next {
			t.Fatalf("%s: %q where line%d was due:\n%s", what, l, next, out)
		}
		next++
	}
	if next != count+1 {
		t.Fatalf("%s: %d lines, want %d:\n%s", what, next-1, count, out)
	}
}

// With a real daemon, whose history (its node log files) and live stream
// overlap, start --attach and logs --follow show every line once and in
// order.
func TestFollowWithRealDaemonShowsEveryLineOnce(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	srv := coordtest.Start(t, coordinator.Config{TickInterval: time.Hour})
	startRealDaemon(t, srv.Endpoint)
	if !coordtest.Wait(10*time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatal("daemon did not register")
	}
	const count = 300
	file := talkerFile(t, count)
	port := strconv.Itoa(srv.Endpoint.Port)

	followed := make(chan string, 1)
	attach := cli.NewMockUi()
	done := make(chan int, 1)
	go func() {
		done <- (&StartCommand{Meta: &Meta{Ui: attach}}).Run([]string{"--attach", "--name", "talk", "--coordinator-addr", "127.0.0.1", "--coordinator-port", port, file})
	}()
	if !coordtest.Wait(10*time.Second, func() bool { return strings.Contains(attach.OutputWriter.String(), "talker: line50\n") }) {
		t.Fatalf("no lines: %s %s", attach.OutputWriter.String(), attach.ErrorWriter.String())
	}
	// logs --follow joins while the node prints.
	go func() {
		ui := cli.NewMockUi()
		(&LogsCommand{Meta: &Meta{Ui: ui}}).Run([]string{"talk", "--follow", "--coordinator-addr", "127.0.0.1", "--coordinator-port", port})
		followed <- ui.OutputWriter.String()
	}()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("start --attach = %d: %s", code, attach.ErrorWriter.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("start --attach did not end")
	}
	var logsOut string
	select {
	case logsOut = <-followed:
	case <-time.After(30 * time.Second):
		t.Fatal("logs --follow did not end")
	}
	checkLines(t, "start --attach", attach.OutputWriter.String(), count)
	checkLines(t, "logs --follow", logsOut, count)
}

// A coordinator restart during logs --follow (a file store keeps the
// dataflow; the daemon keeps its node and reconnects): every line once and
// in order, those the node printed while the coordinator was away
// included.
func TestFollowAcrossCoordinatorRestartWithRealDaemon(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	path := filepath.Join(t.TempDir(), "coordinator.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := coordtest.Start(t, coordinator.Config{Store: st, TickInterval: time.Hour})
	startRealDaemon(t, srv.Endpoint)
	if !coordtest.Wait(10*time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatal("daemon did not register")
	}
	const count = 600
	port := strconv.Itoa(srv.Endpoint.Port)
	ui := cli.NewMockUi()
	if code := (&StartCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--detach", "--name", "talk", "--coordinator-addr", "127.0.0.1", "--coordinator-port", port, talkerFile(t, count)}); code != 0 {
		t.Fatalf("start = %d: %s", code, ui.ErrorWriter.String())
	}
	follow := cli.NewMockUi()
	done := make(chan int, 1)
	go func() {
		done <- (&LogsCommand{Meta: &Meta{Ui: follow}}).Run([]string{"talk", "--follow", "--coordinator-addr", "127.0.0.1", "--coordinator-port", port})
	}()
	if !coordtest.Wait(10*time.Second, func() bool { return strings.Contains(follow.OutputWriter.String(), "line100\n") }) {
		t.Fatalf("no lines: %s %s", follow.OutputWriter.String(), follow.ErrorWriter.String())
	}
	srv.Stop()
	st.Close()
	time.Sleep(300 * time.Millisecond) // the node prints on, unheard
	st2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	coordtest.StartOn(t, coordinator.Config{Store: st2, TickInterval: time.Hour}, srv.Endpoint.Port)
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(follow.ErrorWriter.String(), "reconnecting") {
			t.Fatalf("logs --follow = %d: %s", code, follow.ErrorWriter.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("logs --follow did not end: %s", follow.ErrorWriter.String())
	}
	checkLines(t, "logs --follow", follow.OutputWriter.String(), count)
}

// A coordinator that comes back with an empty memory store stops, after
// the grace window, the nodes a real daemon kept running for it.
func TestUnknownDataflowStoppedOnRealDaemon(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	srv := coordtest.Start(t, coordinator.Config{TickInterval: time.Hour})
	startRealDaemon(t, srv.Endpoint)
	if !coordtest.Wait(10*time.Second, func() bool { return len(srv.Daemons().Daemons) == 1 }) {
		t.Fatal("daemon did not register")
	}
	file := filepath.Join(t.TempDir(), "df.yml")
	os.WriteFile(file, []byte("nodes:\n  - id: sleeper\n    path: /bin/sleep\n    args: [\"60\"]\n"), 0o644)
	ui := cli.NewMockUi()
	if code := (&StartCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--detach", "--name", "nap", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(srv.Endpoint.Port), file}); code != 0 {
		t.Fatalf("start = %d: %s", code, ui.ErrorWriter.String())
	}
	srv.Stop()

	logs := &testutil.SyncBuffer{}
	srv2 := coordtest.StartOn(t, coordinator.Config{TickInterval: 50 * time.Millisecond, UnknownGrace: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}, srv.Endpoint.Port)
	if !coordtest.Wait(10*time.Second, func() bool {
		ds := srv2.Daemons().Daemons
		return len(ds) == 1 && len(ds[0].Dataflows) == 1
	}) {
		t.Fatalf("daemon did not report its dataflow to the new coordinator: %+v", srv2.Daemons())
	}
	if !coordtest.Wait(20*time.Second, func() bool {
		ds := srv2.Daemons().Daemons
		return len(ds) == 1 && len(ds[0].Dataflows) == 0 && ds[0].NodesRunning == 0
	}) {
		t.Fatalf("unknown dataflow still runs: %+v\n%s", srv2.Daemons(), logs)
	}
	for _, want := range []string{"has no record of; stopping it in 300ms", "stopping a dataflow this coordinator has no record of", "stopped a dataflow this coordinator had no record of"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("coordinator log lacks %q:\n%s", want, logs)
		}
	}
}
