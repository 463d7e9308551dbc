package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// The handshake messages of usrpwd, written by hand from the protocol
// definitions (INIT/OPEN Auth extension id 0x3 zbuf, inner usrpwd id 0x2).
var usrpwdGolden = []struct {
	name string
	hex  string
	msg  TransportMessage
}{
	{"INIT syn asks for usrpwd", "81 09 11 01 02 43 01 02",
		&Init{Version: 9, WhatAmI: Peer, ZID: []byte{1, 2}, Resolution: DefaultResolution, BatchSize: DefaultBatchSize, Auth: []byte{0x02}}},
	{"INIT ack carries the nonce", "a1 09 00 aa 02 61 62 43 02 22 2a",
		&Init{Ack: true, Version: 9, WhatAmI: Router, ZID: []byte{0xaa}, Resolution: DefaultResolution, BatchSize: DefaultBatchSize, Cookie: []byte("ab"), Auth: []byte{0x22, 0x2a}}},
	{"OPEN syn carries user and HMAC", "c2 0a 05 02 01 02 43 0b 42 09 05 61 64 6f 72 61 02 aa bb",
		&Open{Lease: 10 * time.Second, InitialSN: 5, Cookie: []byte{1, 2}, Auth: h("42 09 05 61 64 6f 72 61 02 aa bb")}},
	{"OPEN ack confirms", "a2 dc 0b ac 02 43 01 02",
		&Open{Ack: true, Lease: 1500 * time.Millisecond, InitialSN: 300, Auth: []byte{0x02}}},
}

func TestUsrPwdGolden(t *testing.T) {
	for _, tc := range usrpwdGolden {
		t.Run(tc.name, func(t *testing.T) {
			var enc []byte
			switch m := tc.msg.(type) {
			case *Init:
				enc = AppendInit(nil, m)
			case *Open:
				enc = AppendOpen(nil, m)
			}
			if !bytes.Equal(enc, h(tc.hex)) {
				t.Fatalf("encoded % x, want %s", enc, tc.hex)
			}
			m := ReadTransportMessage(NewReader(h(tc.hex)))
			if !reflect.DeepEqual(m, tc.msg) {
				t.Fatalf("decoded %#v, want %#v", m, tc.msg)
			}
		})
	}
	// The inner chains, through the helpers.
	if b := AppendAuthExts(nil, Ext{Key: UsrPwdInitAck, Value: 0x2a}); !bytes.Equal(b, h("22 2a")) {
		t.Errorf("InitAck ext % x", b)
	}
	body := AppendUsrPwdOpen(nil, &UsrPwdOpen{User: []byte("adora"), HMAC: []byte{0xaa, 0xbb}})
	if b := AppendAuthExts(nil, Ext{Key: UsrPwdOpenSyn, Body: body}); !bytes.Equal(b, h("42 09 05 61 64 6f 72 61 02 aa bb")) {
		t.Errorf("OpenSyn ext % x", b)
	}
	exts, err := DecodeAuthExts(h("42 09 05 61 64 6f 72 61 02 aa bb"))
	if err != nil || len(exts) != 1 {
		t.Fatalf("DecodeAuthExts: %v, %v", exts, err)
	}
	m, err := DecodeUsrPwdOpen(exts[0].Body)
	if err != nil || string(m.User) != "adora" || !bytes.Equal(m.HMAC, []byte{0xaa, 0xbb}) {
		t.Fatalf("DecodeUsrPwdOpen: %+v, %v", m, err)
	}
}

// An INIT without extensions has Auth nil; one with an empty Auth body
// has it empty, not nil, so the two can be told apart.
func TestAuthPresence(t *testing.T) {
	m := ReadTransportMessage(NewReader(h("01 09 11 01 02"))).(*Init)
	if m.Auth != nil {
		t.Errorf("Auth = %v, want nil", m.Auth)
	}
	m = ReadTransportMessage(NewReader(h("81 09 11 01 02 43 00"))).(*Init)
	if m.Auth == nil || len(m.Auth) != 0 {
		t.Errorf("Auth = %v, want empty", m.Auth)
	}
}

func TestDecodeAuthExts(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		n         int
		err       error
	}{
		{"empty", "", 0, nil},
		{"pubkey and usrpwd", "81 02", 2, nil},
		{"trailing bytes ignored", "02 ff ff", 1, nil},
		{"more bit without a next", "82", 0, ErrShort},
		{"reserved encoding", "62", 0, ErrMalformed},
		{"zbuf too long", "42 05 01", 0, ErrShort},
		{"z64 truncated", "22 80", 0, ErrShort},
		{"too many", "82 82 82 82 82 82 82 82 82 82 82 82 82 82 82 82 02", 0, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exts, err := DecodeAuthExts(h(tc.hex))
			if !errors.Is(err, tc.err) || len(exts) != tc.n {
				t.Fatalf("got %d exts, %v; want %d, %v", len(exts), err, tc.n, tc.err)
			}
		})
	}
	for _, in := range []string{"", "05 61", "05 61 64 6f 72 61 ff"} {
		if _, err := DecodeUsrPwdOpen(h(in)); err == nil {
			t.Errorf("DecodeUsrPwdOpen(%s) accepted", in)
		}
	}
}

func FuzzAuthExts(f *testing.F) {
	for _, s := range seedAuth {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAlloc(t, in, func() {
			exts, err := DecodeAuthExts(in)
			if err != nil {
				return
			}
			for _, e := range exts {
				if e.Key&extEncMask == ExtEncZBuf {
					DecodeUsrPwdOpen(e.Body)
				}
			}
			// What decodes re-encodes to a chain that decodes the same.
			again, err := DecodeAuthExts(AppendAuthExts(nil, exts...))
			if err != nil || len(again) != len(exts) {
				t.Fatalf("round trip: %v, %d of %d", err, len(again), len(exts))
			}
			for i := range exts {
				if again[i].Key != exts[i].Key || again[i].Value != exts[i].Value || !bytes.Equal(again[i].Body, exts[i].Body) {
					t.Fatalf("round trip of ext %d: %+v, want %+v", i, again[i], exts[i])
				}
			}
		})
	})
}

// seedAuth are Auth extension bodies: each usrpwd step, pubkey next to
// usrpwd, and near-valid ones.
var seedAuth = []string{
	"02", "22 2a", "22 ff ff ff ff ff ff ff ff ff", "42 09 05 61 64 6f 72 61 02 aa bb",
	"81 22 07", "41 02 00 00 c2 03 01 61 00 02", "42 05 01", "62",
}
