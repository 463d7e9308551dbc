package supervisor

import (
	"fmt"
	"time"

	"github.com/adora-rs/adora/config"
)

// maxBackoffShift bounds the exponent of the restart backoff:
// delay = restart_delay * 2^min(n-1, maxBackoffShift).
const maxBackoffShift = 16

// Decision is what the restart policy says after one process exit.
type Decision struct {
	Restart bool
	Delay   time.Duration // wait before the next spawn (Restart only)
	Attempt int           // restarts counted in the current window (Restart only)
	Reason  string        // for people: why (not) restarting
}

// tracker applies a node's restart policy exit after exit. It is pure: the
// caller passes the time, so it is tested without clocks or processes.
//
// Semantics (one evaluation per exit):
//  1. never: no restart; on-failure: restart only a failed exit; always: restart.
//  2. a stop request disables restarts.
//  3. window: if restart_window is set and now-windowStart > restart_window,
//     the count resets and the window starts now; then count += 1.
//  4. max_restarts > 0 && count > max_restarts: give up.
//  5. delay = restart_delay * 2^min(count-1, 16), capped by max_restart_delay.
type tracker struct {
	p           config.RestartPolicy
	windowStart time.Time
	count       int
}

// newTracker starts a node lifecycle at start (the restart window opens then).
func newTracker(p config.RestartPolicy, start time.Time) *tracker {
	return &tracker{p: p, windowStart: start}
}

// next decides what to do after an exit at now.
func (t *tracker) next(now time.Time, failed, stopping bool) Decision {
	mode := t.p.Mode
	if mode == "" {
		mode = config.RestartNever
	}
	switch {
	case stopping:
		return Decision{Reason: "stop requested"}
	case mode == config.RestartNever:
		return Decision{Reason: "restart_policy is never"}
	case mode == config.RestartOnFailure && !failed:
		return Decision{Reason: "exited successfully (restart_policy on-failure)"}
	}
	if t.p.RestartWindow > 0 && now.Sub(t.windowStart) > t.p.RestartWindow {
		t.count = 0
		t.windowStart = now
	}
	t.count++
	if t.p.MaxRestarts > 0 && t.count > t.p.MaxRestarts {
		return Decision{Reason: fmt.Sprintf("max restarts (%d) exceeded, giving up", t.p.MaxRestarts)}
	}
	d := Decision{Restart: true, Attempt: t.count, Delay: t.delay()}
	if failed {
		d.Reason = fmt.Sprintf("restarting node after failure (attempt %d)", t.count)
	} else {
		d.Reason = fmt.Sprintf("restarting node after successful exit (attempt %d)", t.count)
	}
	return d
}

func (t *tracker) delay() time.Duration {
	base := t.p.RestartDelay
	if base <= 0 {
		return 0
	}
	shift := min(t.count-1, maxBackoffShift)
	d := base
	for range shift {
		if d > (1<<62)/2 {
			break
		}
		d *= 2
	}
	if t.p.MaxRestartDelay > 0 && d > t.p.MaxRestartDelay {
		d = t.p.MaxRestartDelay
	}
	return d
}
