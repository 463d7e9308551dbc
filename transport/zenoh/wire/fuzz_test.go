package wire

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unicode/utf8"
)

var writeCorpus = flag.Bool("write-corpus", false, "write the seed vectors to testdata/fuzz")

// seedBatches are valid and near-valid batches: the golden vectors plus a
// few compound ones.
var seedBatches = []string{
	"01 09 11 01 02", "61 09 00 aa 0a 00 c0 02 61 62", "42 0a 05 02 01 02", "22 dc 0b ac 02",
	"23 05", "04", "66 02 de ad", "06 80 01 01",
	"25 01 3d 00 03 61 2f 62 01 02 68 69 04",
	"25 01 1e 22 07 00 04 61 2f 2a 2a 3e 00 1a",
	"a5 01 31 05 1a 09", "25 01 bd 00 01 6b a1 05 42 03 01 01 aa 01 00",
	"25 01 3c 05 00 01 71 43 03 61 3d 62 79 01 03 5f 01 02 aa bb",
	// the usrpwd handshake (wire/auth_test.go)
	"81 09 11 01 02 43 01 02", "a1 09 00 aa 02 61 62 43 02 22 2a",
	"c2 0a 05 02 01 02 43 0b 42 09 05 61 64 6f 72 61 02 aa bb", "a2 dc 0b ac 02 43 01 02",
}

var seedNetwork = []string{
	"3d 00 03 61 2f 62 01 02 68 69", "5d 03 81 43 01 78 00", "3d 00 01 6b 61 01 01 aa 00 00",
	"3d 00 01 6b 82 42 01 78", "1e 83 07 5f 06 01 00 61 2f 2a 2a", "1e 20 01 00 08 64 65 6d 6f 2f 6b 65 79",
	"39 02 32 00 01 61", "bc 05 00 01 71 34 01 03", "1e a4 02 00 01 71 21 01",
	"3b 04 00 01 72 04 01 00", "be 01 33 00 1a",
}

// checkAlloc fails if decoding in allocated far more than its input: every
// length must be checked against the bytes left before allocating.
func checkAlloc(t *testing.T, in []byte, decode func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	decode()
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > uint64(64*len(in)+64<<10) {
		t.Fatalf("decoding %d bytes allocated %d bytes", len(in), d)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range seedBatches {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAlloc(t, in, func() {
			DecodeBatch(in, func(m TransportMessage) error {
				if m == nil {
					t.Fatal("nil message without error")
				}
				return nil
			})
		})
	})
}

func FuzzNetworkMessage(f *testing.F) {
	for _, s := range seedNetwork {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAlloc(t, in, func() {
			r := NewReader(in)
			m := ReadNetworkMessage(r)
			if r.Err() == nil && m == nil {
				t.Fatal("nil message without error")
			}
			if r.Offset() > len(in) {
				t.Fatal("read past the end")
			}
		})
	})
}

func FuzzVLE(f *testing.F) {
	for _, s := range []string{"00", "7f", "80 01", "ff ff ff ff ff ff ff ff ff", "80 00"} {
		f.Add(h(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		v := r.VLE()
		if r.Err() != nil {
			return
		}
		// Accepted encodings are canonical: re-encoding gives the same bytes.
		if enc := AppendVLE(nil, v); !bytes.Equal(enc, in[:r.Offset()]) {
			t.Fatalf("VLE % x decoded to %d, which encodes as % x", in[:r.Offset()], v, enc)
		}
	})
}

// FuzzPushRoundTrip encodes a PUSH from fuzzed fields and decodes it.
func FuzzPushRoundTrip(f *testing.F) {
	f.Add("demo/key", []byte("payload"), []byte("att"), true, uint16(0))
	f.Add("k", []byte{}, []byte(nil), false, uint16(7))
	f.Fuzz(func(t *testing.T, key string, payload, att []byte, hasAtt bool, scope uint16) {
		w := WireExpr{Scope: scope, Suffix: key, SenderMapping: scope != 0}
		in := &Push{Key: w, Put: &Put{Payload: payload, Attachment: att, HasAttachment: hasAtt}}
		b := AppendPush(nil, in)
		r := NewReader(b)
		m := ReadNetworkMessage(r)
		if r.Err() != nil {
			if utf8.ValidString(key) && len(key) <= 0xffff {
				t.Fatalf("decode: %v", r.Err())
			}
			return
		}
		p := m.(*Push)
		if p.Key.Suffix != key || p.Key.Scope != scope || !bytes.Equal(p.Put.Payload, payload) || p.Put.HasAttachment != hasAtt || (hasAtt && !bytes.Equal(p.Put.Attachment, att)) {
			t.Fatalf("round trip: %#v", p)
		}
	})
}

// TestSeedCorpus checks that the seed vectors are in testdata/fuzz, as
// the kept corpus; with -write-corpus it (re)writes them.
func TestSeedCorpus(t *testing.T) {
	check := func(target string, seeds []string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *writeCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range seeds {
			name := filepath.Join(dir, fmt.Sprintf("seed%02d", i))
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", h(s))
			if *writeCorpus {
				if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(name)
			if err != nil || string(got) != body {
				t.Errorf("%s is missing or stale (go test ./transport/zenoh/wire -run TestSeedCorpus -write-corpus): %v", name, err)
			}
		}
	}
	check("FuzzDecodeBatch", seedBatches)
	check("FuzzNetworkMessage", seedNetwork)
	check("FuzzAuthExts", seedAuth)
}
