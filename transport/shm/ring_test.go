package shm

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestRingOrderWrapAndFull(t *testing.T) {
	w, err := NewRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	mem, ev := w.Files()
	r, err := OpenRing(mem, ev, w.Size())
	if err != nil {
		t.Fatal(err)
	}
	sent, got := 0, 0
	for round := 0; round < 50; round++ {
		for {
			ok, err := w.Put(AppendFrame(nil, &Msg{Type: MsgAck, Count: uint32(sent)}))
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			sent++
		}
		for {
			b, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if b == nil {
				break
			}
			m, err := Decode(b)
			if err != nil || m.Count != uint32(got) {
				t.Fatalf("frame %d: %+v %v", got, m, err)
			}
			got++
		}
	}
	if got != sent || sent < 100 {
		t.Fatalf("sent %d, got %d", sent, got)
	}
}

// A hostile or broken producer cannot make the consumer read outside the
// ring: bad lengths and a head beyond the data are errors.
func TestRingMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		head uint64
		len  uint32
	}{
		{"zero length", 8, 0},
		{"past the end", 8, 1 << 20},
		{"longer than published", 8, 100},
	} {
		w, err := NewRing(4096)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(w.data, tc.len)
		*w.head() = tc.head
		if b, err := w.Next(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, %v; want ErrMalformed", tc.name, b, err)
		}
		w.Close()
	}
}
