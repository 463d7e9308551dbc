package wire

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// h decodes a hex string written with spaces between bytes.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestVLE(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		hex string
	}{
		{0, "00"}, {1, "01"}, {127, "7f"}, {128, "80 01"}, {300, "ac 02"},
		{1<<14 - 1, "ff 7f"}, {1 << 14, "80 80 01"},
		{1 << 56, "80 80 80 80 80 80 80 80 01"},
		{1<<63 - 1, "ff ff ff ff ff ff ff ff 7f"},
		{1<<64 - 1, "ff ff ff ff ff ff ff ff ff"},
	} {
		got := AppendVLE(nil, tc.v)
		if !reflect.DeepEqual(got, h(tc.hex)) {
			t.Errorf("AppendVLE(%d) = % x, want %s", tc.v, got, tc.hex)
		}
		if VLELen(tc.v) != len(got) {
			t.Errorf("VLELen(%d) = %d, want %d", tc.v, VLELen(tc.v), len(got))
		}
		r := NewReader(got)
		if v := r.VLE(); v != tc.v || r.Err() != nil || r.Len() != 0 {
			t.Errorf("VLE(% x) = %d, %v", got, v, r.Err())
		}
	}
}

func TestVLERejects(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		want      error
	}{
		{"overlong zero", "80 00", ErrMalformed},
		{"overlong 3 bytes", "81 80 00", ErrMalformed},
		{"overlong 9 bytes", "80 80 80 80 80 80 80 80 00", ErrMalformed},
		{"truncated", "80 80", ErrShort},
		{"empty", "", ErrShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(h(tc.hex))
			r.VLE()
			if !errors.Is(r.Err(), tc.want) {
				t.Errorf("err = %v, want %v", r.Err(), tc.want)
			}
		})
	}
}

func TestBoundedFields(t *testing.T) {
	// A z16 expression id of 65536 is refused.
	r := NewReader(h("80 80 04"))
	r.VLEBounded(maxZ16, "expression id")
	if !errors.Is(r.Err(), ErrMalformed) {
		t.Fatalf("err = %v", r.Err())
	}
	// A slice whose length exceeds the bytes left fails without allocating.
	r = NewReader(h("ff ff ff ff 0f 01"))
	if b := r.Slice(maxZ32, "payload"); b != nil || !errors.Is(r.Err(), ErrShort) {
		t.Fatalf("Slice = %v, %v", b, r.Err())
	}
}

// Golden encodings, written by hand from the protocol definitions
// (commons/zenoh-protocol in eclipse-zenoh), not from our encoder.
func TestTransportGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		hex  string
		msg  TransportMessage
	}{
		{"INIT syn peer, defaults", AppendInit(nil, &Init{Version: 9, WhatAmI: Peer, ZID: []byte{1, 2}, Resolution: DefaultResolution, BatchSize: DefaultBatchSize}),
			"01 09 11 01 02",
			&Init{Version: 9, WhatAmI: Peer, ZID: []byte{1, 2}, Resolution: DefaultResolution, BatchSize: DefaultBatchSize}},
		{"INIT ack router, sizes, cookie", AppendInit(nil, &Init{Ack: true, Version: 9, WhatAmI: Router, ZID: []byte{0xaa}, Resolution: 0x0a, BatchSize: 49152, Cookie: []byte("ab")}),
			"61 09 00 aa 0a 00 c0 02 61 62",
			&Init{Ack: true, Version: 9, WhatAmI: Router, ZID: []byte{0xaa}, Resolution: 0x0a, BatchSize: 49152, Cookie: []byte("ab")}},
		{"OPEN syn lease in seconds", AppendOpen(nil, &Open{Lease: 10 * time.Second, InitialSN: 5, Cookie: []byte{1, 2}}),
			"42 0a 05 02 01 02", &Open{Lease: 10 * time.Second, InitialSN: 5, Cookie: []byte{1, 2}}},
		{"OPEN ack lease in ms", AppendOpen(nil, &Open{Ack: true, Lease: 1500 * time.Millisecond, InitialSN: 300}),
			"22 dc 0b ac 02", &Open{Ack: true, Lease: 1500 * time.Millisecond, InitialSN: 300}},
		{"CLOSE session expired", AppendClose(nil, &Close{Session: true, Reason: CloseExpired}),
			"23 05", &Close{Session: true, Reason: CloseExpired}},
		{"KEEPALIVE", AppendKeepAlive(nil), "04", &KeepAlive{}},
		{"FRAGMENT reliable more", append(AppendFragmentHeader(nil, true, true, 2), 0xde, 0xad),
			"66 02 de ad", &Fragment{Reliable: true, More: true, SN: 2, Body: []byte{0xde, 0xad}}},
		{"FRAGMENT best effort last", append(AppendFragmentHeader(nil, false, false, 128), 0x01),
			"06 80 01 01", &Fragment{SN: 128, Body: []byte{1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, h(tc.hex)) {
				t.Fatalf("encoded % x, want %s", tc.got, tc.hex)
			}
			var got []TransportMessage
			if err := DecodeBatch(h(tc.hex), func(m TransportMessage) error { got = append(got, m); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.msg) {
				t.Fatalf("decoded %#v, want %#v", got, tc.msg)
			}
		})
	}
}

func TestNetworkGolden(t *testing.T) {
	att := []byte("x")
	for _, tc := range []struct {
		name string
		got  []byte
		hex  string
		msg  NetworkMessage
	}{
		{"PUSH PUT named", AppendPush(nil, &Push{Key: WireExpr{Suffix: "a/b"}, Put: &Put{Payload: []byte("hi")}}),
			"3d 00 03 61 2f 62 01 02 68 69", &Push{Key: WireExpr{Suffix: "a/b"}, Put: &Put{Payload: []byte("hi")}}},
		{"PUSH PUT alias, attachment", AppendPush(nil, &Push{Key: WireExpr{Scope: 3, SenderMapping: true}, Put: &Put{Attachment: att, HasAttachment: true, Payload: []byte{}}}),
			"5d 03 81 43 01 78 00", &Push{Key: WireExpr{Scope: 3, SenderMapping: true}, Put: &Put{Attachment: att, HasAttachment: true, Payload: []byte{}}}},
		{"PUSH PUT timestamp, encoding", AppendPush(nil, &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Timestamp: &Timestamp{Time: 1, ID: []byte{0xaa}}, Encoding: &Encoding{ID: 0}, Payload: []byte{}}}),
			"3d 00 01 6b 61 01 01 aa 00 00", &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Timestamp: &Timestamp{Time: 1, ID: []byte{0xaa}}, Encoding: &Encoding{ID: 0}, Payload: []byte{}}}},
		{"PUSH PUT encoding with schema", AppendPush(nil, &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Encoding: &Encoding{ID: 2, Schema: []byte("s")}, Payload: []byte{}}}),
			"3d 00 01 6b 41 05 01 73 00", &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Encoding: &Encoding{ID: 2, Schema: []byte("s")}, Payload: []byte{}}}},
		{"PUSH PUT with QoS data+block", AppendPush(nil, &Push{Key: WireExpr{Suffix: "k"}, QoS: QoSPriorityData | QoSBlock, Put: &Put{Payload: []byte{}}}),
			"bd 00 01 6b 21 0d 01 00", &Push{Key: WireExpr{Suffix: "k"}, QoS: 0x0d, Put: &Put{Payload: []byte{}}}},
		{"PUSH DEL attachment", AppendPush(nil, &Push{Key: WireExpr{Suffix: "k"}, Del: &Del{Attachment: att, HasAttachment: true}}),
			"3d 00 01 6b 82 42 01 78", &Push{Key: WireExpr{Suffix: "k"}, Del: &Del{Attachment: att, HasAttachment: true}}},
		{"D_SUBSCRIBER", AppendDeclare(nil, &Declare{Kind: DeclSubscriber, ID: 7, Key: WireExpr{Suffix: "a/**"}, HasKey: true}),
			"1e 22 07 00 04 61 2f 2a 2a", &Declare{Kind: DeclSubscriber, ID: 7, Key: WireExpr{Suffix: "a/**"}, HasKey: true}},
		{"U_SUBSCRIBER with wire expr", AppendDeclare(nil, &Declare{Kind: UndeclSubscribe, ID: 7, Key: WireExpr{Suffix: "a/**"}, HasKey: true}),
			"1e 83 07 5f 06 01 00 61 2f 2a 2a", &Declare{Kind: UndeclSubscribe, ID: 7, Key: WireExpr{Suffix: "a/**"}, HasKey: true}},
		{"D_KEYEXPR", AppendDeclare(nil, &Declare{Kind: DeclKeyExpr, ID: 1, Key: WireExpr{Suffix: "demo/key"}, HasKey: true}),
			"1e 20 01 00 08 64 65 6d 6f 2f 6b 65 79", &Declare{Kind: DeclKeyExpr, ID: 1, Key: WireExpr{Suffix: "demo/key"}, HasKey: true}},
		{"U_KEYEXPR", AppendDeclare(nil, &Declare{Kind: UndeclKeyExpr, ID: 1}), "1e 01 01", &Declare{Kind: UndeclKeyExpr, ID: 1}},
		{"D_FINAL for interest 0", AppendDeclare(nil, &Declare{HasInterest: true, Kind: DeclFinal}),
			"3e 00 1a", &Declare{HasInterest: true, Kind: DeclFinal}},
		{"INTEREST current+future K|S", AppendInterest(nil, &Interest{ID: 1, Mode: InterestCurrentFuture, Options: InterestKeyExprs | InterestSubscribers}),
			"79 01 03", &Interest{ID: 1, Mode: InterestCurrentFuture, Options: 3}},
		{"INTEREST restricted", AppendInterest(nil, &Interest{ID: 2, Mode: InterestCurrent, Options: InterestSubscribers, Key: &WireExpr{Suffix: "a"}}),
			"39 02 32 00 01 61", &Interest{ID: 2, Mode: InterestCurrent, Options: 2, Key: &WireExpr{Suffix: "a"}}},
		{"INTEREST final", AppendInterest(nil, &Interest{ID: 2, Mode: InterestFinal}), "19 02", &Interest{ID: 2}},
		{"RESPONSE_FINAL", AppendResponseFinal(nil, &ResponseFinal{RequestID: 9}), "1a 09", &ResponseFinal{RequestID: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, h(tc.hex)) {
				t.Fatalf("encoded % x, want %s", tc.got, tc.hex)
			}
			r := NewReader(h(tc.hex))
			m := ReadNetworkMessage(r)
			if r.Err() != nil || r.Len() != 0 {
				t.Fatalf("decode: %v (%d left)", r.Err(), r.Len())
			}
			if !reflect.DeepEqual(m, tc.msg) {
				t.Fatalf("decoded %#v, want %#v", m, tc.msg)
			}
		})
	}
}

// Messages we only receive, as a Zenoh router or peer sends them.
func TestDecodeOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		want NetworkMessage
		err  error
	}{
		{"PUSH with NodeId (mandatory, known)", "bd 00 01 6b 33 00 01 00", &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Payload: []byte{}}}, nil},
		{"PUSH with QoS and timestamp", "bd 00 01 6b a1 05 42 03 01 01 aa 01 00", &Push{Key: WireExpr{Suffix: "k"}, QoS: 5, Put: &Put{Payload: []byte{}}}, nil},
		{"PUSH unknown optional extension skipped", "bd 00 01 6b 24 05 01 00", &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Payload: []byte{}}}, nil},
		{"PUSH unknown mandatory extension refused", "bd 00 01 6b 34 00 01 00", nil, ErrMalformed},
		{"PUSH reserved extension encoding", "bd 00 01 6b 64 01 00", nil, ErrMalformed},
		{"PUT with Shm (never negotiated)", "3d 00 01 6b 81 12 00", nil, ErrMalformed},
		{"PUT with source info", "3d 00 01 6b 81 41 03 00 aa 01 00", &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Payload: []byte{}}}, nil},
		{"REQUEST with parameters", "3c 05 00 01 71 43 03 61 3d 62", &Request{ID: 5, Key: WireExpr{Suffix: "q"}}, nil},
		{"REQUEST with target ext", "bc 05 00 01 71 34 01 03", &Request{ID: 5, Key: WireExpr{Suffix: "q"}}, nil},
		{"D_QUERYABLE with info", "1e a4 02 00 01 71 21 01", &Declare{Kind: DeclQueryable, ID: 2, Key: WireExpr{Suffix: "q"}, HasKey: true}, nil},
		{"D_TOKEN", "1e 26 03 00 01 74", &Declare{Kind: DeclToken, ID: 3, Key: WireExpr{Suffix: "t"}, HasKey: true}, nil},
		{"U_SUBSCRIBER empty wire expr", "1e 83 07 5f 02 00 00", &Declare{Kind: UndeclSubscribe, ID: 7, HasKey: true}, nil},
		{"DECLARE with NodeId", "be 01 33 00 1a", &Declare{HasInterest: true, InterestID: 1, Kind: DeclFinal}, nil},
		{"OAM linkstate zbuf", "5f 01 02 aa bb", &NetworkOAM{ID: 1}, nil},
		{"RESPONSE reply put", "3b 04 00 01 72 04 01 00", &Response{RequestID: 4}, nil},
		{"unknown network id", "18 00", nil, ErrMalformed},
		{"truncated payload", "3d 00 01 6b 01 05 61", nil, ErrShort},
		{"suffix not utf-8", "3d 00 01 ff 01 00", nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(h(tc.hex))
			m := ReadNetworkMessage(r)
			if tc.err != nil {
				if !errors.Is(r.Err(), tc.err) {
					t.Fatalf("err = %v, want %v", r.Err(), tc.err)
				}
				return
			}
			if r.Err() != nil || r.Len() != 0 {
				t.Fatalf("decode: %v (%d left)", r.Err(), r.Len())
			}
			if !reflect.DeepEqual(m, tc.want) {
				t.Fatalf("decoded %#v, want %#v", m, tc.want)
			}
		})
	}
}

func TestFrameBatch(t *testing.T) {
	// FRAME(reliable, sn 1){PUSH, D_FINAL} then KEEPALIVE in one batch.
	b := AppendFrameHeader(nil, true, 1)
	if !reflect.DeepEqual(b, h("25 01")) {
		t.Fatalf("frame header % x", b)
	}
	b = AppendPush(b, &Push{Key: WireExpr{Suffix: "k"}, Put: &Put{Payload: []byte("v")}})
	b = AppendDeclare(b, &Declare{HasInterest: true, Kind: DeclFinal})
	b = AppendKeepAlive(b)
	var got []TransportMessage
	if err := DecodeBatch(b, func(m TransportMessage) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d transport messages, want 2", len(got))
	}
	f, ok := got[0].(*Frame)
	if !ok || !f.Reliable || f.SN != 1 || len(f.Msgs) != 2 {
		t.Fatalf("frame = %#v", got[0])
	}
	if _, ok := got[1].(*KeepAlive); !ok {
		t.Fatalf("second = %#v", got[1])
	}
	// A FRAME whose QoS extension is present still decodes.
	if err := DecodeBatch(h("a5 01 31 05 1a 09"), func(TransportMessage) error { return nil }); err != nil {
		t.Fatalf("frame with QoS: %v", err)
	}
	// A broken network message in a FRAME fails the batch.
	if err := DecodeBatch(h("25 01 3d 00 09 61"), func(TransportMessage) error { return nil }); err == nil {
		t.Fatal("truncated message in frame decoded")
	}
}

func TestInitRejects(t *testing.T) {
	for _, tc := range []struct{ name, hex string }{
		{"whatami 3", "01 09 13 01 02"},
		{"zid truncated", "01 09 f1 01 02"},
		{"unknown mandatory ext", "81 09 01 01 11"},
		{"transport id 7 (JOIN)", "07"},
		{"OPEN lease too large", "42 ff ff ff ff ff ff ff ff 7f 00 00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := DecodeBatch(h(tc.hex), func(TransportMessage) error { return nil }); err == nil {
				t.Fatal("decoded")
			}
		})
	}
}

func TestSNMask(t *testing.T) {
	for code, want := range []uint64{127, 16383, 1<<28 - 1, 1<<63 - 1} {
		if got := SNMask(byte(code)); got != want {
			t.Errorf("SNMask(%d) = %d, want %d", code, got, want)
		}
		// Every SN within the mask fits 1, 2, 4 or 9 VLE bytes.
		if n := VLELen(want); n != []int{1, 2, 4, 9}[code] {
			t.Errorf("mask %d takes %d bytes", want, n)
		}
	}
}
