// Package statefile is the local state backend: adora.state, a versioned
// JSON file next to cluster.yml, written atomically, with a lock file
// beside it.
//
//	adora.state         current state (format_version, lineage, serial, ...)
//	adora.state.backup  the state before the last write
//	adora.state.lock    present while an operation holds the lock (LockInfo)
package statefile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/adora-rs/adora/internal/atomicfile"
	"github.com/adora-rs/adora/state"
)

// DefaultName is the state file's name next to cluster.yml.
const DefaultName = "adora.state"

// Local stores state in a file. The zero value is not usable; use New.
type Local struct {
	path string
}

// New returns the local backend for the state file at path.
func New(path string) *Local { return &Local{path: path} }

// Path is the state file's path.
func (l *Local) Path() string { return l.path }

func (l *Local) lockPath() string { return l.path + ".lock" }

// Read returns the stored state, upgraded to the current format, or nil
// when the file does not exist.
func (l *Local) Read(ctx context.Context) (*state.State, error) {
	data, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	st, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", l.path, err)
	}
	return st, nil
}

// Write stores st atomically with the serial incremented past the stored
// one. It refuses to overwrite a state of another lineage.
func (l *Local) Write(ctx context.Context, st *state.State) error {
	prev, err := l.Read(ctx)
	if err != nil {
		return err
	}
	next := uint64(1)
	if prev != nil {
		if prev.Lineage != st.Lineage {
			return fmt.Errorf("write state %s: stored lineage %s differs from %s; refusing to overwrite another state", l.path, prev.Lineage, st.Lineage)
		}
		next = max(prev.Serial, st.Serial) + 1
	}
	out := st.Clone()
	out.Serial = next
	out.FormatVersion = state.FormatVersion
	data, err := Encode(out)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if prev != nil {
		if old, err := os.ReadFile(l.path); err == nil {
			if err := WriteAtomic(l.path+".backup", old, 0o600); err != nil {
				return fmt.Errorf("write state backup: %w", err)
			}
		}
	}
	if err := WriteAtomic(l.path, data, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	st.Serial = next
	return nil
}

// Encode renders st as indented JSON with sorted map keys.
func Encode(st *state.State) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteAtomic writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory. Readers see the
// old or the new content, never a mix.
func WriteAtomic(path string, data []byte, perm fs.FileMode) error {
	return atomicfile.WriteFile(path, data, perm)
}
