package store

import (
	"encoding/json"
	"fmt"
	"sync"
)

// Memory is a Store that lives in memory (tests, --store memory). Values
// are deep-copied through JSON so callers never share state with it.
type Memory struct {
	mu        sync.Mutex
	daemons   map[string][]byte
	dataflows map[string][]byte
	states    map[string][]byte
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{daemons: map[string][]byte{}, dataflows: map[string][]byte{}, states: map[string][]byte{}}
}

func (m *Memory) PutDaemon(r DaemonRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store daemon %s: %w", r.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.daemons[r.ID] = b
	return nil
}

func (m *Memory) DeleteDaemon(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.daemons, id)
	return nil
}

func (m *Memory) Daemons() ([]DaemonRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]DaemonRecord, 0, len(m.daemons))
	for _, b := range m.daemons {
		var r DaemonRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sortDaemons(out)
	return out, nil
}

func (m *Memory) PutDataflow(r DataflowRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.dataflows[r.ID]; ok {
		var prev DataflowRecord
		if err := json.Unmarshal(old, &prev); err == nil {
			r.Generation = prev.Generation + 1
		}
	} else {
		r.Generation = 1
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store dataflow %s: %w", r.ID, err)
	}
	m.dataflows[r.ID] = b
	return nil
}

func (m *Memory) Dataflow(id string) (DataflowRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r DataflowRecord
	b, ok := m.dataflows[id]
	if !ok {
		return r, fmt.Errorf("dataflow %s: %w", id, ErrNotFound)
	}
	err := json.Unmarshal(b, &r)
	return r, err
}

func (m *Memory) Dataflows() ([]DataflowRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dataflowsLocked()
}

func (m *Memory) dataflowsLocked() ([]DataflowRecord, error) {
	out := make([]DataflowRecord, 0, len(m.dataflows))
	for _, b := range m.dataflows {
		var r DataflowRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sortDataflows(out)
	return out, nil
}

func (m *Memory) Prune(keep int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.dataflowsLocked()
	if err != nil {
		return err
	}
	for _, id := range pruneList(rs, keep) {
		delete(m.dataflows, id)
	}
	return nil
}

func (m *Memory) State(workspace string) (StateRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r StateRecord
	b, ok := m.states[workspace]
	if !ok {
		return r, fmt.Errorf("state %s: %w", workspace, ErrNotFound)
	}
	err := json.Unmarshal(b, &r)
	return r, err
}

func (m *Memory) PutState(r StateRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store state %s: %w", r.Workspace, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[r.Workspace] = b
	return nil
}

func (m *Memory) Close() error { return nil }
