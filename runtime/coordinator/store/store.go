// Package store owns the coordinator's persistent state: the daemons it has
// seen and the dataflows it runs or ran. Two implementations: Bolt (bbolt
// file, the default) and Memory (tests, --store memory). Both pass the same
// conformance tests.
//
// Bolt schema (one file, all values JSON):
//
//	meta/
//	  version          -> "1"            (SchemaVersion; newer: refuse, older: migrate)
//	daemons/
//	  <daemon uuid>    -> DaemonRecord
//	dataflows/
//	  <dataflow uuid>  -> DataflowRecord
//	states/
//	  <workspace>      -> StateRecord     (adora plan/apply state kept here)
//
// Records are written whole; Generation increases by one on every write of
// a dataflow, so readers can tell stale copies apart.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
)

// SchemaVersion is the version of the bolt layout described above.
const SchemaVersion = 1

// ErrNotFound is returned for a missing record.
var ErrNotFound = errors.New("not found")

// DaemonRecord is a daemon the coordinator has registered.
type DaemonRecord struct {
	ID             string            `json:"id"`
	MachineID      string            `json:"machine_id,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Version        string            `json:"version"`
	Hostname       string            `json:"hostname,omitempty"`
	OS             string            `json:"os,omitempty"`
	Arch           string            `json:"arch,omitempty"`
	ZenohEndpoints []string          `json:"zenoh_endpoints,omitempty"`
	FirstSeen      time.Time         `json:"first_seen"`
	LastSeen       time.Time         `json:"last_seen"`
}

// DataflowRecord is one started dataflow.
type DataflowRecord struct {
	ID         string                    `json:"id"`
	Name       string                    `json:"name"`
	Descriptor []byte                    `json:"descriptor"`
	Dataflow   config.Dataflow           `json:"dataflow"`
	WorkingDir string                    `json:"working_dir,omitempty"`
	Placements []proto.Placement         `json:"placements"`
	Artifacts  map[string]proto.Artifact `json:"artifacts,omitempty"`
	Status     proto.FlowStatus          `json:"status"`
	Error      string                    `json:"error,omitempty"`
	CreatedAt  time.Time                 `json:"created_at"`
	UpdatedAt  time.Time                 `json:"updated_at"`
	Generation uint64                    `json:"generation"`
	// RestartedAs names the dataflow that replaced this one on restart.
	RestartedAs string `json:"restarted_as,omitempty"`
}

// DescriptorSHA256 is the hex sha256 of the descriptor bytes.
func (r DataflowRecord) DescriptorSHA256() string {
	s := sha256.Sum256(r.Descriptor)
	return hex.EncodeToString(s[:])
}

// NodesOn returns the ids of the nodes placed on daemon id, sorted.
func (r DataflowRecord) NodesOn(daemonID string) []string {
	var out []string
	for _, p := range r.Placements {
		if p.DaemonID == daemonID {
			out = append(out, p.NodeID)
		}
	}
	sort.Strings(out)
	return out
}

// StateRecord is one workspace's deployment state (adora plan/apply),
// stored opaquely: Data is the state file's bytes, Serial and Lineage are
// copies of its fields so writes can be checked without decoding it.
type StateRecord struct {
	Workspace string          `json:"workspace"`
	Serial    uint64          `json:"serial"`
	Lineage   string          `json:"lineage"`
	Data      []byte          `json:"data,omitempty"`
	Lock      json.RawMessage `json:"lock,omitempty"` // the holder's lock info; empty when unlocked
	UpdatedAt time.Time       `json:"updated_at"`
}

// Store persists daemons and dataflows. Implementations are safe for
// concurrent use.
type Store interface {
	PutDaemon(DaemonRecord) error
	DeleteDaemon(id string) error
	Daemons() ([]DaemonRecord, error)
	// PutDataflow writes r, setting Generation to the stored one plus 1.
	PutDataflow(r DataflowRecord) error
	Dataflow(id string) (DataflowRecord, error)
	// Dataflows returns every record sorted by CreatedAt then ID.
	Dataflows() ([]DataflowRecord, error)
	// Prune deletes the oldest finished dataflows beyond keep.
	Prune(keep int) error
	// State returns a workspace's state record (ErrNotFound if none).
	State(workspace string) (StateRecord, error)
	PutState(StateRecord) error
	Close() error
}

// Kind is a store backend.
type Kind string

const (
	KindFile   Kind = "file"
	KindMemory Kind = "memory"
)

// ParseSpec parses a --store value: "file", "file:PATH", "memory", and
// "redb"/"redb:PATH" as aliases of file. An empty PATH means the default
// (ADORA_HOME/coordinator.db), returned as "".
func ParseSpec(spec string) (Kind, string, error) {
	kind, path, _ := strings.Cut(spec, ":")
	switch kind {
	case "", "file", "redb", "bolt":
		if strings.HasPrefix(spec, ":") {
			return "", "", fmt.Errorf("--store %q: expected file[:PATH] or memory", spec)
		}
		return KindFile, path, nil
	case "memory":
		if path != "" {
			return "", "", fmt.Errorf("--store %q: memory takes no path", spec)
		}
		return KindMemory, "", nil
	}
	return "", "", fmt.Errorf("--store %q: unknown store (expected file[:PATH], redb[:PATH] or memory)", spec)
}

func sortDataflows(rs []DataflowRecord) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].CreatedAt.Equal(rs[j].CreatedAt) {
			return rs[i].CreatedAt.Before(rs[j].CreatedAt)
		}
		return rs[i].ID < rs[j].ID
	})
}

func sortDaemons(rs []DaemonRecord) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
}

// pruneList returns the ids of finished records to delete so that at most
// keep finished ones remain (oldest go first).
func pruneList(rs []DataflowRecord, keep int) []string {
	sortDataflows(rs)
	var finished []string
	for _, r := range rs {
		if !r.Status.Active() {
			finished = append(finished, r.ID)
		}
	}
	if len(finished) <= keep {
		return nil
	}
	return finished[:len(finished)-keep]
}
