package statefile

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/adora-rs/adora/state"
)

// upgrader rewrites a decoded state document of format version N into
// version N+1. upgrades[N] upgrades from N; a document is passed through
// every step from its version to state.FormatVersion before it is decoded
// into state.State. Add a step here whenever state.FormatVersion grows.
type upgrader func(doc map[string]any) error

var upgrades = map[int]upgrader{}

// Decode parses a state document of any known format version and returns
// it in the current format.
func Decode(data []byte) (*state.State, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a state file: %w", err)
	}
	v, ok := doc["format_version"].(float64)
	if !ok {
		return nil, errors.New("not a state file: no format_version")
	}
	version := int(v)
	if version > state.FormatVersion {
		return nil, fmt.Errorf("state format version %d is newer than this adora supports (%d); upgrade adora", version, state.FormatVersion)
	}
	for ; version < state.FormatVersion; version++ {
		up, ok := upgrades[version]
		if !ok {
			return nil, fmt.Errorf("state format version %d cannot be upgraded: no upgrade step", version)
		}
		if err := up(doc); err != nil {
			return nil, fmt.Errorf("upgrade state from format version %d: %w", version, err)
		}
		doc["format_version"] = version + 1
	}
	if version != int(v) {
		upgraded, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("encode upgraded state: %w", err)
		}
		data = upgraded
	}
	return decodeCurrent(data)
}

func decodeCurrent(data []byte) (*state.State, error) {
	var st state.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if st.Lineage == "" {
		return nil, errors.New("decode state: no lineage")
	}
	if st.Machines == nil {
		st.Machines = map[string]state.Machine{}
	}
	if st.Dataflows == nil {
		st.Dataflows = map[string]state.Dataflow{}
	}
	return &st, nil
}
