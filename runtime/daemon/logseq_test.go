package daemon

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
)

// liveLines collects the Log lines of one dataflow the daemon streams,
// in arrival order, until done reports true of them.
func liveLines(t *testing.T, fc *fakeCoordinator, flowID string, done func([]proto.LogLine) bool) []proto.LogLine {
	t.Helper()
	var got []proto.LogLine
	deadline := time.After(30 * time.Second)
	for !done(got) {
		select {
		case e := <-fc.events:
			if e.Type != proto.TypeLog {
				continue
			}
			var l proto.Log
			if err := e.Into(&l); err != nil {
				t.Fatal(err)
			}
			for _, line := range l.Lines {
				if line.DataflowID == flowID {
					got = append(got, line)
				}
			}
		case <-deadline:
			t.Fatalf("live lines so far: %+v", got)
		}
	}
	return got
}

func has(s proto.Stream, prefix string) func([]proto.LogLine) bool {
	return func(ls []proto.LogLine) bool { return hasLine(ls, s, prefix) }
}

// key names a line whose text is unique in a test.
func key(l proto.LogLine) string { return string(l.Stream) + " " + l.Line }

// seqOf returns the Seq of the first line of stream s starting with
// prefix (0: none).
func seqOf(lines []proto.LogLine, s proto.Stream, prefix string) uint64 {
	for _, l := range lines {
		if l.Stream == s && strings.HasPrefix(l.Line, prefix) {
			return l.Seq
		}
	}
	return 0
}

// A node's build output, its stdout and stderr and the daemon's lines
// about it (spawned, the reason of a stop, stopped) are numbered in one
// sequence; every line carries the same Seq live and in the history, and
// arrives live in numbering order.
func TestDaemonNumbersNodeLinesLiveAndInHistory(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	const n = 60
	df := config.Dataflow{Nodes: []config.Node{{
		ID: "talker", Path: "/bin/sh",
		Args:  []string{"-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do i=$((i+1)); echo out$i; echo err$i >&2; done; exec sleep 30`, n)},
		Build: "echo compiling\necho careful >&2",
	}}}
	m := spawnMsg(df, "talker")
	m.WorkingDir = t.TempDir()
	if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
		t.Fatal(err)
	}
	live := liveLines(t, fc, m.DataflowID, func(ls []proto.LogLine) bool {
		return hasLine(ls, proto.Stdout, fmt.Sprint("out", n)) && hasLine(ls, proto.Stderr, fmt.Sprint("err", n)) && hasLine(ls, proto.System, "spawned")
	})
	const why = "no coordinator has a record of this dataflow"
	var stopped proto.StopReply
	if err := request(t, fc.conn(), proto.TypeStop, proto.Stop{DataflowID: m.DataflowID, Grace: 100 * time.Millisecond, Reason: why}, &stopped); err != nil {
		t.Fatal(err)
	}
	live = append(live, liveLines(t, fc, m.DataflowID, has(proto.System, "stopped"))...)

	var hist proto.LogsReply
	if err := request(t, fc.conn(), proto.TypeLogs, proto.Logs{Dataflow: m.DataflowID}, &hist); err != nil {
		t.Fatal(err)
	}
	// Live: numbered, in order.
	for i, l := range live {
		if l.Seq == 0 || (i > 0 && l.Seq <= live[i-1].Seq) {
			t.Fatalf("live line %d %q has seq %d after %d", i, l.Line, l.Seq, live[max(i-1, 0)].Seq)
		}
	}
	// History: the same numbers, in order, none missing.
	liveSeq := map[string]uint64{}
	for _, l := range live {
		liveSeq[key(l)] = l.Seq
	}
	for i, l := range hist.Lines {
		if l.Seq != uint64(i+1) {
			t.Fatalf("history line %d %q has seq %d, want %d", i, l.Line, l.Seq, i+1)
		}
		if s, ok := liveSeq[key(l)]; !ok || s != l.Seq {
			t.Fatalf("history line %q: seq %d, live seq %d (streamed %v)", key(l), l.Seq, s, ok)
		}
	}
	if len(hist.Lines) != len(live) {
		t.Fatalf("history has %d lines, live %d", len(hist.Lines), len(live))
	}
	// The daemon's lines sit in the node's sequence.
	build := seqOf(hist.Lines, proto.Stdout, "compiling")
	spawned := seqOf(hist.Lines, proto.System, "spawned")
	last := seqOf(hist.Lines, proto.Stdout, fmt.Sprint("out", n))
	reason := seqOf(hist.Lines, proto.System, "stopping: "+why)
	end := seqOf(hist.Lines, proto.System, "stopped")
	if !(0 < build && build < spawned && spawned < reason && last < reason && reason < end) {
		t.Fatalf("seqs: build %d, spawned %d, last output %d, stop reason %d, stopped %d", build, spawned, last, reason, end)
	}
}

// A recovery spawn of a dataflow that ran here before continues its
// nodes' numbering.
func TestDaemonRecoverySpawnContinuesNumbering(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	m := spawnMsg(shDataflow(map[string]string{"brief": `echo "run $$"; echo again`}), "brief")
	for range 2 {
		if err := request(t, fc.conn(), proto.TypeSpawn, m, nil); err != nil {
			t.Fatal(err)
		}
		waitEvent[proto.DataflowFinished](t, fc, proto.TypeDataflowFinished, nil)
		m.Recovery = true
	}
	var hist proto.LogsReply
	if err := request(t, fc.conn(), proto.TypeLogs, proto.Logs{Dataflow: m.DataflowID, Node: "brief"}, &hist); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	runs := 0
	for _, l := range hist.Lines {
		seqs = append(seqs, l.Seq)
		if strings.HasPrefix(l.Line, "run ") {
			runs++
		}
	}
	if runs != 2 {
		t.Fatalf("history has %d runs: %+v", runs, hist.Lines)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v", seqs)
		}
	}
}

// A dataflow stopped while its nodes build: the reason goes to the
// building node's log, numbered after its build lines.
func TestDaemonStopReasonDuringBuild(t *testing.T) {
	fc := newFakeCoordinator(t)
	startDaemon(t, fc, t.TempDir(), "")
	fc.waitRegister(t)
	df := config.Dataflow{Nodes: []config.Node{{ID: "slow", Path: "/bin/true", Build: "sleep 60"}}}
	m := spawnMsg(df, "slow")
	m.WorkingDir = t.TempDir()
	spawned := make(chan error, 1)
	go func() { spawned <- request(t, fc.conn(), proto.TypeSpawn, m, nil) }()
	liveLines(t, fc, m.DataflowID, has(proto.System, "build line 1: sleep 60"))
	const why = "the operator pulled the plug"
	if err := request(t, fc.conn(), proto.TypeStop, proto.Stop{DataflowID: m.DataflowID, Reason: why}, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-spawned; err == nil {
		t.Fatal("spawn stopped during its build succeeded")
	}
	var hist proto.LogsReply
	if err := request(t, fc.conn(), proto.TypeLogs, proto.Logs{Dataflow: m.DataflowID, Node: "slow"}, &hist); err != nil {
		t.Fatal(err)
	}
	b, r := seqOf(hist.Lines, proto.System, "build line 1"), seqOf(hist.Lines, proto.System, "stopping: "+why)
	if b == 0 || r <= b {
		t.Fatalf("build line seq %d, reason seq %d: %+v", b, r, hist.Lines)
	}
	if !slices.IsSortedFunc(hist.Lines, func(a, b proto.LogLine) int { return int(a.Seq) - int(b.Seq) }) {
		t.Fatalf("history out of numbering order: %+v", hist.Lines)
	}
}
