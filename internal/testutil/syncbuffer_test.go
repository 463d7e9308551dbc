package testutil

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

var _ io.Writer = (*SyncBuffer)(nil)

// TestSyncBufferConcurrent writes from many goroutines while others read;
// under -race a missing lock is reported, and every write must arrive
// whole.
func TestSyncBufferConcurrent(t *testing.T) {
	const writers, lines = 8, 200
	var buf SyncBuffer
	var wg sync.WaitGroup
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-done:
					return
				default:
					_ = buf.String()
				}
			}
		}()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				line := fmt.Sprintf("w%d-%d\n", w, i)
				if n, err := buf.Write([]byte(line)); err != nil || n != len(line) {
					t.Errorf("Write = %d, %v; want %d, nil", n, err, len(line))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	readers.Wait()

	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("got %d lines, want %d", len(got), writers*lines)
	}
	seen := make(map[string]bool, len(got))
	for _, l := range got {
		seen[l] = true
	}
	for w := range writers {
		for i := range lines {
			if want := fmt.Sprintf("w%d-%d", w, i); !seen[want] {
				t.Fatalf("line %q missing or torn", want)
			}
		}
	}
}

func TestSyncBufferZeroValue(t *testing.T) {
	var buf SyncBuffer
	if s := buf.String(); s != "" {
		t.Fatalf("zero SyncBuffer holds %q", s)
	}
	fmt.Fprintf(&buf, "a%d", 1)
	buf.Write([]byte("b"))
	if s := buf.String(); s != "a1b" {
		t.Fatalf("String() = %q, want %q", s, "a1b")
	}
}

func TestSyncBufferCount(t *testing.T) {
	var buf SyncBuffer
	if n := buf.Count("x"); n != 0 {
		t.Fatalf("Count on an empty buffer = %d, want 0", n)
	}
	fmt.Fprint(&buf, "level=WARN msg=late\nlevel=INFO msg=ok\n")
	fmt.Fprint(&buf, "level=WARN msg=late\naaaa")
	for _, tc := range []struct {
		sub  string
		want int
	}{
		{"msg=late", 2},
		{"level=", 3},
		{"msg=ok\n", 1},
		{"absent", 0},
		{"aa", 2}, // non-overlapping, as strings.Count
	} {
		if n := buf.Count(tc.sub); n != tc.want {
			t.Errorf("Count(%q) = %d, want %d", tc.sub, n, tc.want)
		}
	}
}
