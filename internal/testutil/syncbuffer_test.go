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
