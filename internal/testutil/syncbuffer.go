// Package testutil holds small helpers shared by adora's tests. It is
// imported only from _test.go files.
package testutil

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: tests hand it to
// loggers and processes whose goroutines write while the test reads. The
// zero value is an empty buffer ready to use; a SyncBuffer must not be
// copied after first use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns a copy of what has been written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count returns how many non-overlapping times sub occurs in what has been
// written so far, as strings.Count does.
func (s *SyncBuffer) Count(sub string) int {
	return strings.Count(s.String(), sub)
}
