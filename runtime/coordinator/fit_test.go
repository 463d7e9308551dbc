package coordinator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

func TestFitLinesKeepsNewestUnderTheFrameLimit(t *testing.T) {
	var lines []proto.LogLine
	for i := 0; i < 5000; i++ {
		lines = append(lines, proto.LogLine{DataflowID: "01a21ace-6182-7b5d-8f7a-3162af537556", NodeID: "camera", DaemonID: "378ad495-72b2-4e9a-bdeb-c2625ce0b871",
			Stream: proto.Stdout, Time: time.Unix(int64(i), 0), Line: strings.Repeat("x", 300)})
	}
	got := fitLines(lines, proto.MaxLogsReplyBytes)
	if len(got) >= len(lines) || got[len(got)-1].Time != lines[len(lines)-1].Time {
		t.Fatalf("kept %d of %d, last %v", len(got), len(lines), got[len(got)-1].Time)
	}
	if got[0].Stream != proto.System || !strings.Contains(got[0].Line, "earlier lines omitted") {
		t.Fatalf("first line = %+v", got[0])
	}
	e, err := proto.NewEnvelope(proto.TypeLogsReply, proto.LogsReply{DataflowID: "x", Lines: got})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.Encode(e); err != nil {
		t.Fatalf("fitted reply does not fit a frame: %v", err)
	}
	small := lines[:3]
	if got := fitLines(small, proto.MaxLogsReplyBytes); len(got) != 3 {
		t.Fatalf("small history changed: %d lines", len(got))
	}
	if b, _ := json.Marshal(fitLines(nil, 10)); string(b) != "[]" {
		t.Fatalf("nil history = %s", b)
	}
}

func TestFitMetricsTrimsToTheBudget(t *testing.T) {
	var ms []proto.NodeMetric
	for i := 0; i < 100; i++ {
		ms = append(ms, proto.NodeMetric{DataflowID: "df", NodeID: strings.Repeat("n", 50), Status: proto.NodeRunning})
	}
	one, _ := json.Marshal(ms[0])
	kept, omitted := fitMetrics(ms, 10*(len(one)+1))
	if len(kept) != 10 || omitted != 90 {
		t.Fatalf("kept %d, omitted %d; want 10 and 90", len(kept), omitted)
	}
	if kept, omitted := fitMetrics(ms, 1<<20); len(kept) != 100 || omitted != 0 {
		t.Fatalf("small report trimmed: %d, %d", len(kept), omitted)
	}
	if maxReplyBytes >= proto.MaxMessageSize {
		t.Fatal("reply budget leaves no room for the envelope")
	}
}
