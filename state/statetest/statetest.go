// Package statetest is the conformance suite every state.Backend passes:
// round trips, serial and lineage rules, and the lock contract.
package statetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/adora-rs/adora/state"
)

// Run runs the suite against fresh, empty backends made by newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) state.Backend) {
	t.Run("EmptyReadsNil", func(t *testing.T) {
		st, err := newBackend(t).Read(context.Background())
		if err != nil || st != nil {
			t.Fatalf("Read on empty backend = %v, %v; want nil, nil", st, err)
		}
	})
	t.Run("RoundTripBumpsSerial", func(t *testing.T) { roundTrip(t, newBackend(t)) })
	t.Run("RefusesOtherLineage", func(t *testing.T) {
		ctx := context.Background()
		b := newBackend(t)
		if err := b.Write(ctx, sample()); err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, state.New("test")); err == nil {
			t.Fatal("Write of a state with another lineage succeeded; want refusal")
		}
	})
	t.Run("LockNamesHolder", func(t *testing.T) { lockNamesHolder(t, newBackend(t)) })
	t.Run("LockWaitTimesOut", func(t *testing.T) {
		ctx := context.Background()
		b := newBackend(t)
		first := state.NewLockInfo("apply", "test", time.Now())
		if err := b.Lock(ctx, first); err != nil {
			t.Fatal(err)
		}
		err := state.LockWait(ctx, b, state.NewLockInfo("plan", "test", time.Now()), 10*time.Millisecond)
		var locked *state.LockedError
		if !errors.As(err, &locked) || locked.Holder.ID != first.ID {
			t.Fatalf("LockWait = %v; want LockedError naming %s", err, first.ID)
		}
	})
}

func sample() *state.State {
	st := state.New("test")
	st.Coordinator = state.Coordinator{Addr: "10.0.0.1", Port: 6013}
	st.Machines["bot-01"] = state.Machine{ID: "bot-01", Host: "10.0.0.2", DaemonMode: state.Systemd,
		BinaryVersion: "0.1.0", BinarySHA256: "aa", Labels: map[string]string{"gpu": "true"}, CoordinatorAddr: "10.0.0.1:6013"}
	st.Dataflows["app"] = state.Dataflow{Name: "app", DescriptorHash: "h1", UUID: "u1",
		Placements: map[string]string{"camera": "bot-01"}}
	return st
}

func roundTrip(t *testing.T, b state.Backend) {
	ctx := context.Background()
	st := sample()
	if err := b.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	if st.Serial != 1 {
		t.Fatalf("serial after first write = %d; want 1", st.Serial)
	}
	if err := b.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != 2 || got.Lineage != st.Lineage {
		t.Fatalf("read serial %d lineage %s; want 2 %s", got.Serial, got.Lineage, st.Lineage)
	}
	if got.Machines["bot-01"].Labels["gpu"] != "true" || got.Dataflows["app"].Placements["camera"] != "bot-01" {
		t.Fatalf("round trip lost data: %+v", got)
	}
}

func lockNamesHolder(t *testing.T, b state.Backend) {
	ctx := context.Background()
	first := state.NewLockInfo("apply", "test", time.Now())
	if err := b.Lock(ctx, first); err != nil {
		t.Fatal(err)
	}
	err := b.Lock(ctx, state.NewLockInfo("apply", "test", time.Now()))
	var locked *state.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("second Lock = %v; want *state.LockedError", err)
	}
	if locked.Holder.ID != first.ID || locked.Holder.Operation != "apply" || locked.Holder.Who == "" {
		t.Fatalf("holder = %+v; want %+v", locked.Holder, first)
	}
	if err := b.Unlock(ctx, "not-the-id"); !errors.Is(err, state.ErrLockIDMismatch) {
		t.Fatalf("Unlock with wrong ID = %v; want ErrLockIDMismatch", err)
	}
	if err := b.Unlock(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, first.ID); !errors.Is(err, state.ErrNotLocked) {
		t.Fatalf("second Unlock = %v; want ErrNotLocked", err)
	}
	if err := b.Lock(ctx, state.NewLockInfo("plan", "test", time.Now())); err != nil {
		t.Fatalf("Lock after Unlock = %v", err)
	}
}
