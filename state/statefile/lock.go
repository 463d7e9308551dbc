package statefile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/adora-rs/adora/state"
)

// Lock creates the lock file exclusively. When it exists, the holder it
// names is returned in a *state.LockedError.
func (l *Local) Lock(ctx context.Context, info state.LockInfo) error {
	info.Path = l.path
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("lock state: %w", err)
	}
	f, err := os.OpenFile(l.lockPath(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		holder, rerr := l.Holder()
		if rerr != nil {
			return fmt.Errorf("lock state: %s exists but cannot be read: %w", l.lockPath(), rerr)
		}
		return &state.LockedError{Holder: holder, HolderGone: processGone(holder)}
	}
	if err != nil {
		return fmt.Errorf("lock state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(l.lockPath())
		return fmt.Errorf("lock state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(l.lockPath())
		return fmt.Errorf("lock state: %w", err)
	}
	return f.Close()
}

// Holder returns the info of the current lock holder.
func (l *Local) Holder() (state.LockInfo, error) {
	var info state.LockInfo
	data, err := os.ReadFile(l.lockPath())
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("decode lock file: %w", err)
	}
	return info, nil
}

// Unlock removes the lock when id matches the holder's.
func (l *Local) Unlock(ctx context.Context, id string) error {
	holder, err := l.Holder()
	if errors.Is(err, fs.ErrNotExist) {
		return state.ErrNotLocked
	}
	if err != nil {
		return fmt.Errorf("unlock state: %w", err)
	}
	if holder.ID != id {
		return fmt.Errorf("unlock state: %w (held by %s, ID %s)", state.ErrLockIDMismatch, holder.Who, holder.ID)
	}
	if err := os.Remove(l.lockPath()); err != nil {
		return fmt.Errorf("unlock state: %w", err)
	}
	return nil
}

var _ state.Backend = (*Local)(nil)

// processGone reports whether holder names a process of this machine that
// no longer exists.
func processGone(holder state.LockInfo) bool {
	host, err := os.Hostname()
	if err != nil || holder.PID <= 0 || !strings.HasSuffix(holder.Who, "@"+host) {
		return false
	}
	return errors.Is(syscall.Kill(holder.PID, 0), syscall.ESRCH)
}
