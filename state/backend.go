package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/google/uuid"
)

// Backend stores one State and its lock. Implementations: statefile.Local
// (a file next to cluster.yml) and a coordinator-held store. A Backend is
// safe for use by one goroutine at a time.
type Backend interface {
	// Read returns the stored state, or nil and no error when none exists.
	Read(ctx context.Context) (*State, error)
	// Write stores st with its serial incremented past the stored one and
	// updates st.Serial to the value written.
	Write(ctx context.Context, st *State) error
	// Lock takes the state lock for info.Operation. When the lock is held
	// it returns a *LockedError naming the holder.
	Lock(ctx context.Context, info LockInfo) error
	// Unlock releases the lock with the given ID (also used by
	// force-unlock).
	Unlock(ctx context.Context, id string) error
}

// LockInfo says who holds the state lock, since when and for what.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"`
	Who       string    `json:"who"`
	Version   string    `json:"version"`
	Created   time.Time `json:"created"`
	PID       int       `json:"pid,omitempty"`
	Path      string    `json:"path,omitempty"`
}

// NewLockInfo returns lock info for operation by the current user and
// process, with a fresh ID.
func NewLockInfo(operation, adoraVersion string, now time.Time) LockInfo {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		who += "@" + h
	}
	return LockInfo{
		ID: uuid.NewString(), Operation: operation, Who: who,
		Version: adoraVersion, Created: now.UTC(), PID: os.Getpid(),
	}
}

// LockedError is returned when the state lock is held by someone else.
type LockedError struct {
	Holder LockInfo
	// HolderGone is set when the holder ran on this machine and its
	// process no longer exists: the lock was left by a killed operation.
	HolderGone bool
}

func (e *LockedError) Error() string {
	h := e.Holder
	if e.HolderGone {
		return fmt.Sprintf("state is locked by %s since %s for %q (lock ID %s), but its process %d on this machine is gone; release the lock with: adora force-unlock %s",
			h.Who, h.Created.Format(time.RFC3339), h.Operation, h.ID, h.PID, h.ID)
	}
	return fmt.Sprintf("state is locked by %s since %s for %q (lock ID %s); if that operation is no longer running, run: adora force-unlock %s",
		h.Who, h.Created.Format(time.RFC3339), h.Operation, h.ID, h.ID)
}

// ErrLockIDMismatch is returned by Unlock when the ID does not match the
// held lock.
var ErrLockIDMismatch = errors.New("lock ID does not match the held lock")

// ErrNotLocked is returned by Unlock when no lock is held.
var ErrNotLocked = errors.New("state is not locked")

// LockWait takes the lock, retrying while it is held until timeout passes
// (timeout 0: one attempt). Retries back off from 1 s doubling to 16 s.
// The last *LockedError is returned when the wait runs out.
func LockWait(ctx context.Context, b Backend, info LockInfo, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := time.Second
	for {
		err := b.Lock(ctx, info)
		var locked *LockedError
		if err == nil || !errors.As(err, &locked) || timeout <= 0 {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for state lock: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, 16*time.Second)
	}
}
