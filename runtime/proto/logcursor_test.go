package proto

import (
	"strings"
	"testing"
	"time"
)

func TestLogCursorSeq(t *testing.T) {
	var c LogCursor
	l := func(daemon, node string, seq uint64) LogLine {
		return LogLine{DaemonID: daemon, DataflowID: "df", NodeID: node, Stream: Stdout, Seq: seq, Line: "same text", Time: time.Unix(1, 0)}
	}
	steps := []struct {
		l    LogLine
		want bool
	}{
		{l("d1", "a", 1), true},
		{l("d1", "a", 2), true},
		{l("d1", "a", 2), false}, // the history's line again from the live stream
		{l("d1", "a", 1), false},
		{l("d1", "b", 1), true}, // another node
		{l("d2", "a", 1), true}, // another daemon
		{l("d1", "a", 3), true}, // equal time and text, but a new line
	}
	for i, s := range steps {
		if got := c.Next(s.l); got != s.want {
			t.Errorf("step %d: Next(%+v) = %v, want %v", i, s.l, got, s.want)
		}
	}
}

func TestLogCursorTimeWithoutSeq(t *testing.T) {
	var c LogCursor
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := func(stream Stream, ms int, text string) LogLine {
		return LogLine{DaemonID: "d1", DataflowID: "df", NodeID: "a", Stream: stream, Time: t0.Add(time.Duration(ms) * time.Millisecond), Line: text}
	}
	steps := []struct {
		l    LogLine
		want bool
	}{
		{l(Stdout, 10, "x"), true},
		{l(Stdout, 20, "y"), true},
		{l(Stdout, 20, "y"), false}, // seen
		{l(Stdout, 20, "z"), true},  // same instant, other text
		{l(Stdout, 10, "x"), false}, // older
		{l(Stderr, 15, "e"), true},  // streams are ordered apart
		{l(Stdout, 30, "y"), true},  // repeated text, later: a new line
	}
	for i, s := range steps {
		if got := c.Next(s.l); got != s.want {
			t.Errorf("step %d: Next(%+v) = %v, want %v", i, s.l, got, s.want)
		}
	}
}

// A long line cut one way in the stream and another way in a history is
// one line.
func TestLogCursorCutLine(t *testing.T) {
	var c LogCursor
	long := strings.Repeat("y", 20<<10)
	at := time.Unix(5, 0)
	streamed := LogLine{DaemonID: "d", DataflowID: "df", NodeID: "a", Stream: Stdout, Time: at, Line: long[:16<<10] + " [cut; the node's log file has the whole line]"}
	history := streamed
	history.Line = long[:16<<10] + " [cut]"
	if !c.Next(history) || c.Next(streamed) {
		t.Fatal("a cut line counted twice")
	}
	other := streamed
	other.Line = "short"
	if !c.Next(other) {
		t.Fatal("another line at the same instant was taken for the cut one")
	}
}
