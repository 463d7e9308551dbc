//go:build adora_coarse_log_clock

package supervisor

import "time"

// A build with this tag stamps log lines to 10 ms, like a machine whose
// clock ticks coarsely: many lines share a timestamp. Tests use it to
// show that followers rely on Seq, not on time.
func init() { logTimeResolution = 10 * time.Millisecond }
