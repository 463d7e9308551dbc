package shm

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
)

func sampleMsgs() []*Msg {
	return []*Msg{
		{Type: MsgRegister, Version: ProtocolVersion, Dataflow: "df", Node: "n", Secret: "s"},
		{Type: MsgOutput, ID: "out", Meta: Meta{Timestamp: 42, TypeInfo: "t", Params: []byte(`{"a":1}`)}, Data: []byte("data")},
		{Type: MsgOutput, ID: "out", Shm: &ShmRef{Region: 3, Offset: 8, Len: 4096}},
		{Type: MsgRegion, Region: 7, Size: 8192},
		{Type: MsgAck, Count: 5},
		{Type: MsgRelease, Tokens: []uint64{1, 2, 1 << 60}},
		{Type: MsgCloseOutputs, IDs: []string{"a", "b"}},
		{Type: MsgSubscribe, Count: 2, ID: "a/**"},
		{Type: MsgUnsubscribe, Count: 2},
		{Type: MsgReady},
		{Type: MsgInput, ID: "in", Meta: Meta{Timestamp: -1}, Shm: &ShmRef{Region: 1, Len: 10}, Token: 99},
		{Type: MsgInput, ID: "in", Data: []byte{}},
		{Type: MsgInputClosed, ID: "in"},
		{Type: MsgInputRecovered, ID: "in"},
		{Type: MsgNodeRestarted, ID: "src", IDs: []string{"in"}},
		{Type: MsgNodeFailed, ID: "src", IDs: []string{"a", "b"}, Error: "exit 1"},
		{Type: MsgStop, ID: "MANUAL"},
		{Type: MsgAllInputsClosed},
		{Type: MsgDropped, Regions: []uint32{1, 2}},
		{Type: MsgRegionClosed, Region: 4},
		{Type: MsgError, Error: "no"},
		{Type: MsgRegister, Version: ProtocolVersion, Dataflow: "df", Node: "n", Secret: "s", Flags: FlagDirect},
		{Type: MsgReady, Count: 8, Flags: FlagDirect},
		{Type: MsgEdgeOut, Edge: 3, ID: "out", Node: "dst", Input: "in"},
		{Type: MsgEdgeIn, Edge: 3, ID: "in", Source: "src/out", QueueSize: 10, Policy: PolicyBackpressure},
		{Type: MsgCutover, Edge: 3},
		{Type: MsgRoutes, ID: "out", NeedsDaemon: true},
		{Type: MsgRoutes, ID: "out"},
		{Type: MsgStats, OutStats: []OutStat{{"out", 5}}, InStats: []InStat{{"in", 4, 1, 2}, {"x", 0, 0, 0}}},
		{Type: MsgStats},
		{Type: MsgRing, Count: 1, Size: 64 << 10},
		{Type: MsgRing, Count: RingOnSocket},
	}
}

// Frames of the direct-edge extension: old-format REGISTER and READY still
// decode (flags 0), a present zero flags field and out-of-range enums are
// refused.
func TestWireDirectExtension(t *testing.T) {
	old := AppendFrame(nil, &Msg{Type: MsgRegister, Version: 2, Dataflow: "df", Node: "n", Secret: "ab"})
	if m, err := Decode(old[4:]); err != nil || m.Flags != 0 {
		t.Fatalf("old REGISTER: %+v, %v", m, err)
	}
	// The byte examples of docs/node-protocol.md.
	for _, tc := range []struct {
		m   *Msg
		hex string
	}{
		{&Msg{Type: MsgReady, Count: 8, Flags: FlagDirect}, "09000000810800000001000000"},
		{&Msg{Type: MsgCutover, Edge: 3}, "050000000903000000"},
		{&Msg{Type: MsgRoutes, ID: "out"}, "070000008e03006f757400"},
		{&Msg{Type: MsgRing, Count: 1, Size: 65536}, "0d0000008f010000000000010000000000"},
	} {
		if got := hex.EncodeToString(AppendFrame(nil, tc.m)); got != tc.hex {
			t.Errorf("%s:\n got %s\nwant %s", tc.m.Type, got, tc.hex)
		}
	}
	for name, body := range map[string][]byte{
		"zero flags":   append(AppendFrame(nil, &Msg{Type: MsgReady, Count: 8})[4:], 0, 0, 0, 0),
		"short flags":  append(AppendFrame(nil, &Msg{Type: MsgReady, Count: 8})[4:], 1, 0),
		"bad policy":   append(AppendFrame(nil, &Msg{Type: MsgEdgeIn, ID: "in"})[4:len(AppendFrame(nil, &Msg{Type: MsgEdgeIn, ID: "in"}))-1], 2),
		"bad boolean":  {byte(MsgRoutes), 1, 0, 'o', 7},
		"stats counts": {byte(MsgStats), 5, 0},
	} {
		if m, err := Decode(body); err == nil {
			t.Errorf("%s: accepted as %+v", name, m)
		}
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		frame := AppendFrame(nil, m)
		got, err := Decode(frame[4:])
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		if len(got.Data) == 0 && len(m.Data) == 0 {
			got.Data, m.Data = nil, nil
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", m.Type, got, m)
		}
		// Every strict prefix of a body is rejected, never a panic.
		for i := 1; i < len(frame)-4; i++ {
			if _, err := Decode(frame[4 : 4+i]); err == nil && i < len(frame)-4 {
				optional := m.Flags != 0 && i == len(frame)-8 // the flags field may be left off
				if m.Type != MsgReady && m.Type != MsgAllInputsClosed && !optional {
					t.Fatalf("%s: truncated body of %d bytes accepted", m.Type, i)
				}
			}
		}
	}
	if _, err := Decode([]byte{0x7f}); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, err := Decode(append(AppendFrame(nil, &Msg{Type: MsgAck, Count: 1})[4:], 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		f.Add(AppendFrame(nil, m)[4:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		again := AppendFrame(nil, m)[4:]
		if !bytes.Equal(again, body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", body, again)
		}
	})
}

// The byte examples of docs/node-protocol.md.
func TestWireGoldenFrames(t *testing.T) {
	for _, tc := range []struct {
		m   *Msg
		hex string
	}{
		{&Msg{Type: MsgRegister, Version: 2, Dataflow: "df", Node: "n", Secret: "ab"}, "0e0000000102000200646601006e02006162"},
		{&Msg{Type: MsgReady, Count: 8}, "050000008108000000"},
		{&Msg{Type: MsgOutput, ID: "out", Meta: Meta{Timestamp: 1}, Data: []byte("hi")}, "1b0000000203006f7574010000000000000000000000000000020000006869"},
		{&Msg{Type: MsgInput, ID: "in", Meta: Meta{Timestamp: 1}, Shm: &ShmRef{Region: 3, Len: 4096}, Token: 7},
			"30000000820200696e01000000000000000000000000000103000000000000000000000000100000000000000700000000000000"},
		{&Msg{Type: MsgAck, Count: 4}, "050000000404000000"},
	} {
		if got := hex.EncodeToString(AppendFrame(nil, tc.m)); got != tc.hex {
			t.Errorf("%s:\n got %s\nwant %s", tc.m.Type, got, tc.hex)
		}
	}
}
