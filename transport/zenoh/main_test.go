package zenoh

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a Session starts must be gone after Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
