package proto

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	in := Spawn{
		DataflowID: "df-1",
		Name:       "my-app",
		Descriptor: []byte("nodes: []\n"),
		Dataflow: config.Dataflow{Nodes: []config.Node{{
			ID: "cam", Path: "./cam",
			Restart: config.RestartPolicy{Mode: config.RestartOnFailure, MaxRestarts: 3, RestartDelay: time.Second},
			Deploy:  config.Deploy{Machine: "robot", Distribute: config.DistributeHTTP},
		}}},
		Nodes:      []string{"cam"},
		Placements: []Placement{{NodeID: "cam", DaemonID: "u1", MachineID: "robot"}},
		Artifacts:  map[string]Artifact{"cam": {BuildID: "b", NodeID: "cam", SHA256: "ab"}},
	}
	e, err := NewEnvelope(TypeSpawn, in)
	if err != nil {
		t.Fatal(err)
	}
	e.ID = 7
	frame, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != TypeSpawn || got.ID != 7 || !got.IsRequest() || got.IsReply() {
		t.Fatalf("envelope = %+v", got)
	}
	var out Spawn
	if err := got.Into(&out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  string
	}{
		{"not json", "{", "unexpected end"},
		{"no type", `{"id":1}`, "missing type"},
		{"both ids", `{"type":"x","id":1,"reply_to":2}`, "both id and reply_to"},
		{"oversized", `{"type":"x","payload":"` + strings.Repeat("a", MaxMessageSize) + `"}`, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.frame))
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode error = %v, want malformed containing %q", err, tt.want)
			}
		})
	}
}

func TestIntoWithoutPayload(t *testing.T) {
	e := &Envelope{Type: TypeList}
	var l List
	if err := e.Into(&l); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Into = %v, want ErrMalformed", err)
	}
}

func TestCheckHello(t *testing.T) {
	if err := CheckHello(Hello{Protocol: ProtocolVersion, Version: "x"}); err != nil {
		t.Fatalf("same protocol refused: %v", err)
	}
	err := CheckHello(Hello{Protocol: ProtocolVersion + 1, Version: "9.9.9"})
	if err == nil || !strings.Contains(err.Error(), "protocol version mismatch") || !strings.Contains(err.Error(), "9.9.9") {
		t.Fatalf("mismatch error = %v", err)
	}
}

func TestFlowStatusActive(t *testing.T) {
	active := map[FlowStatus]bool{FlowPending: true, FlowRunning: true, FlowRecovering: true, FlowStopping: true,
		FlowStopped: false, FlowSucceeded: false, FlowFailed: false}
	for s, want := range active {
		if s.Active() != want {
			t.Errorf("%s.Active() = %v, want %v", s, s.Active(), want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"hello","id":1,"payload":{"protocol":1,"version":"0.1.0","role":"cli"}}`))
	f.Add([]byte(`{"type":"reply","reply_to":1,"error":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		e, err := Decode(frame)
		if err != nil {
			return
		}
		if e.Type == "" || (e.ID != 0 && e.ReplyTo != 0) {
			t.Fatalf("Decode accepted invalid envelope %+v", e)
		}
		again, err := Encode(e)
		if err != nil {
			if len(frame) < MaxMessageSize/2 {
				t.Fatalf("re-encode of accepted frame: %v", err)
			}
			return
		}
		e2, err := Decode(again)
		if err != nil {
			t.Fatalf("decode of re-encoded frame %q: %v", again, err)
		}
		if e2.Type != e.Type || e2.ID != e.ID || e2.ReplyTo != e.ReplyTo || e2.Error != e.Error || !bytes.Equal(e2.Payload, e.Payload) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", e, e2)
		}
	})
}
