package remote

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (fan-out, sessions) must be gone at exit.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
