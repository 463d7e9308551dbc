package supervisor

import (
	"testing"
	"time"

	"github.com/adora-rs/adora/config"
)

func TestTrackerModes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name             string
		mode             config.RestartMode
		failed, stopping bool
		want             bool
	}{
		{"default is never", "", true, false, false},
		{"never after failure", config.RestartNever, true, false, false},
		{"on-failure after failure", config.RestartOnFailure, true, false, true},
		{"on-failure after success", config.RestartOnFailure, false, false, false},
		{"always after success", config.RestartAlways, false, false, true},
		{"always after failure", config.RestartAlways, true, false, true},
		{"stop disables always", config.RestartAlways, false, true, false},
		{"stop disables on-failure", config.RestartOnFailure, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(config.RestartPolicy{Mode: tt.mode}, t0)
			d := tr.next(t0, tt.failed, tt.stopping)
			if d.Restart != tt.want {
				t.Fatalf("Restart = %v, want %v (reason %q)", d.Restart, tt.want, d.Reason)
			}
			if d.Reason == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

func TestTrackerMaxRestarts(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker(config.RestartPolicy{Mode: config.RestartOnFailure, MaxRestarts: 3}, t0)
	restarts := 0
	for i := range 10 {
		d := tr.next(t0.Add(time.Duration(i)*time.Second), true, false)
		if !d.Restart {
			if d.Reason != "max restarts (3) exceeded, giving up" {
				t.Fatalf("reason = %q", d.Reason)
			}
			break
		}
		restarts++
		if d.Attempt != restarts {
			t.Fatalf("attempt = %d, want %d", d.Attempt, restarts)
		}
	}
	if restarts != 3 {
		t.Fatalf("restarted %d times, want exactly 3", restarts)
	}
}

func TestTrackerUnlimited(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newTracker(config.RestartPolicy{Mode: config.RestartAlways}, t0)
	for i := range 1000 {
		if d := tr.next(t0, false, false); !d.Restart {
			t.Fatalf("exit %d: gave up with max_restarts 0 (unlimited): %s", i, d.Reason)
		}
	}
}

func TestTrackerWindowResets(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := config.RestartPolicy{Mode: config.RestartOnFailure, MaxRestarts: 2, RestartWindow: 10 * time.Second}
	tr := newTracker(p, t0)
	// Two restarts inside the window use it up.
	for i := 1; i <= 2; i++ {
		if d := tr.next(t0.Add(time.Duration(i)*time.Second), true, false); !d.Restart || d.Attempt != i {
			t.Fatalf("exit %d: %+v", i, d)
		}
	}
	// The window (started at t0) has passed: the count starts over.
	d := tr.next(t0.Add(11*time.Second), true, false)
	if !d.Restart || d.Attempt != 1 {
		t.Fatalf("after window: %+v, want restart attempt 1", d)
	}
	d = tr.next(t0.Add(12*time.Second), true, false)
	if !d.Restart || d.Attempt != 2 {
		t.Fatalf("second in new window: %+v", d)
	}
	if d := tr.next(t0.Add(13*time.Second), true, false); d.Restart {
		t.Fatalf("third in new window restarted: %+v", d)
	}
}

func TestTrackerBackoff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name string
		p    config.RestartPolicy
		want []time.Duration
	}{
		{"no delay", config.RestartPolicy{Mode: config.RestartAlways}, []time.Duration{0, 0, 0}},
		{"doubling", config.RestartPolicy{Mode: config.RestartAlways, RestartDelay: 100 * time.Millisecond},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}},
		{"capped", config.RestartPolicy{Mode: config.RestartAlways, RestartDelay: time.Second, MaxRestartDelay: 3 * time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tt.p, t0)
			for i, want := range tt.want {
				if d := tr.next(t0, true, false); d.Delay != want {
					t.Fatalf("restart %d: delay %v, want %v", i+1, d.Delay, want)
				}
			}
		})
	}
	t.Run("exponent bounded", func(t *testing.T) {
		tr := newTracker(config.RestartPolicy{Mode: config.RestartAlways, RestartDelay: time.Nanosecond}, t0)
		var d Decision
		for range 40 {
			d = tr.next(t0, true, false)
		}
		if want := time.Duration(1 << maxBackoffShift); d.Delay != want {
			t.Fatalf("delay %v, want %v", d.Delay, want)
		}
	})
}
