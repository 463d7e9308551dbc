package shm

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/adora-rs/adora/transport"
	"github.com/adora-rs/adora/transport/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) (transport.Transport, transport.Transport) {
		path := filepath.Join(t.TempDir(), "hub.sock")
		h, err := NewHub(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := DialSession(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DialSession(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			a.Close()
			b.Close()
			h.Close()
		})
		return a, b
	})
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		expr, key string
		want      bool
	}{
		{"a/b", "a/b", true},
		{"a/*", "a/b", true},
		{"a/*", "a/b/c", false},
		{"a/**", "a", true},
		{"a/**", "a/b/c", true},
		{"**/c", "a/b/c", true},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/c", false},
		{"a/**/c", "a/c", true},
		{"a/b", "a/bb", false},
	} {
		if got := Matches(tc.expr, tc.key); got != tc.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", tc.expr, tc.key, got, tc.want)
		}
	}
}

// A subscriber that disconnects while its handler holds a shared sample
// releases it: the hub keeps no sample alive and the publisher gets its
// region back.
func TestHubReclaimsSamplesOfClosedSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.sock")
	h, err := NewHub(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pub, err := DialSession(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := DialSession(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	block := make(chan struct{})
	if _, err := sub.Subscribe("big/*", func(s transport.Sample) {
		close(entered)
		<-block
	}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), "big/x", make([]byte, 1<<20), nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	if n := h.Samples(); n != 1 {
		t.Fatalf("%d live samples while the handler holds one, want 1", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	close(block) // the reader returns; Close finishes
	<-closed
	deadline := time.Now().Add(5 * time.Second)
	for h.Samples() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d samples still live after the subscriber left", h.Samples())
		}
		time.Sleep(time.Millisecond)
	}
	// The region came back: the next large publish reuses it.
	deadline = time.Now().Add(5 * time.Second)
	for {
		pub.pmu.Lock()
		free := len(pub.free)
		pub.pmu.Unlock()
		if free == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publisher never got its region back")
		}
		time.Sleep(time.Millisecond)
	}
}
