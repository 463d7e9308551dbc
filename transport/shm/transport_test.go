package shm

import (
	"path/filepath"
	"testing"

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
