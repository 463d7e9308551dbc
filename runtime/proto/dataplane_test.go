package proto

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func roundTrip[T any](t *testing.T, typ Type, in T) T {
	t.Helper()
	e, err := NewEnvelope(typ, in)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := got.Into(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNodeMetricsDataPlaneRoundTrip(t *testing.T) {
	in := NodeMetrics{
		Time:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Metrics: []NodeMetric{{DataflowID: "df", NodeID: "cam", Status: NodeRunning}},
		DataPlane: &DataPlaneReport{
			ZID:      "a1b2",
			Counters: DataPlaneCounters{MessagesSent: 1, MessagesReceived: 2, BytesSent: 3, BytesReceived: 4, Dropped: 5, LinksOpened: 6, LinksClosed: 7, AuthRefused: 8},
			Links:    []DataPlaneLink{{ZID: "c3", Remote: "10.0.0.2:7447", Initiator: true}},
		},
	}
	if out := roundTrip(t, TypeNodeMetrics, in); !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
}

func TestNodeMetricsWithoutDataPlane(t *testing.T) {
	// What a daemon that predates the data-plane report sends.
	old := `{"type":"node_metrics","payload":{"time":"2026-01-01T00:00:00Z","metrics":[{"dataflow_id":"df","node_id":"cam","cpu_percent":1.5,"memory_bytes":10,"restarts":0,"status":"running","drops":2}]}}`
	e, err := Decode([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	var m NodeMetrics
	if err := e.Into(&m); err != nil {
		t.Fatal(err)
	}
	if m.DataPlane != nil || len(m.Metrics) != 1 || m.Metrics[0].Drops != 2 {
		t.Fatalf("decoded %+v", m)
	}
	// And what a daemon without a data plane sends now: no new field.
	frame, err := Encode(mustEnvelope(t, TypeNodeMetrics, m))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(frame), "data_plane") {
		t.Fatalf("frame carries an empty data plane: %s", frame)
	}
}

func TestDaemonInfoAndTopDataPlane(t *testing.T) {
	st := DataPlaneStatus{DaemonID: "u1", MachineID: "robot", PeersUp: 1, PeersExpected: 2, Unreachable: []string{"gpu"}, Links: 1,
		Counters: DataPlaneCounters{Dropped: 3}, MessagesInPerSec: 1.5, BytesOutPerSec: 100}
	info := DaemonInfo{ID: "u1", MachineID: "robot", Version: "1", DataPlane: &st}
	if out := roundTrip(t, TypeReply, info); !reflect.DeepEqual(info, out) {
		t.Fatalf("daemon info:\n in %+v\nout %+v", info, out)
	}
	top := TopReply{Nodes: []NodeMetric{}, DataPlane: []DataPlaneStatus{st}}
	if out := roundTrip(t, TypeReply, top); !reflect.DeepEqual(top, out) {
		t.Fatalf("top:\n in %+v\nout %+v", top, out)
	}
	var oldTop TopReply
	e, err := Decode([]byte(`{"type":"reply","payload":{"time":"2026-01-01T00:00:00Z","nodes":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Into(&oldTop); err != nil || oldTop.DataPlane != nil {
		t.Fatalf("old top = %+v, %v", oldTop, err)
	}
	if !st.Degraded() || st.Name() != "robot" || (DataPlaneStatus{DaemonID: "u2", PeersUp: 1, PeersExpected: 1}).Degraded() {
		t.Fatal("Degraded or Name wrong")
	}
}

func mustEnvelope(t *testing.T, typ Type, v any) *Envelope {
	t.Helper()
	e, err := NewEnvelope(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
