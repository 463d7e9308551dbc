// Package planfile stores a plan for a later apply (adora plan -out FILE):
// a versioned JSON document holding the plan, the state lineage and serial
// it was made against, and the live preconditions it saw. Apply refuses
// the file when the state or a precondition moved since.
package planfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// FormatVersion is the plan file's layout version.
const FormatVersion = 1

type file struct {
	FormatVersion int        `json:"format_version"`
	Kind          string     `json:"kind"`
	Plan          *plan.Plan `json:"plan"`
}

const kind = "adora-plan"

// Write stores p at path atomically, readable by its owner only (the
// plan carries the dataflow environment).
func Write(path string, p *plan.Plan) error {
	data, err := json.MarshalIndent(file{FormatVersion: FormatVersion, Kind: kind, Plan: p}, "", " ")
	if err != nil {
		return fmt.Errorf("write plan file: %w", err)
	}
	if err := statefile.WriteAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write plan file: %w", err)
	}
	return nil
}

// Read loads the plan stored at path.
func Read(path string) (*plan.Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan file: %w", err)
	}
	p, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("read plan file %s: %w", path, err)
	}
	return p, nil
}

// Decode parses a plan file's content.
func Decode(data []byte) (*plan.Plan, error) {
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not an adora plan file: %w", err)
	}
	if f.Kind != kind || f.Plan == nil {
		return nil, errors.New("not an adora plan file")
	}
	if f.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("plan file format version %d is not supported (this adora reads %d); run adora plan again", f.FormatVersion, FormatVersion)
	}
	return f.Plan, nil
}

// StaleError says why a saved plan cannot be applied any more.
type StaleError struct {
	Reasons []string
}

func (e *StaleError) Error() string {
	return "saved plan is stale: " + strings.Join(e.Reasons, "; ") + "; run adora plan again and review the new plan"
}

// Check refuses p when current (nil: no state) is not the state p was made
// against, when p was made by another adora version, or when now (a fresh
// observation, nil to skip) breaks one of p's preconditions.
func Check(p *plan.Plan, current *state.State, now *state.Observed, adoraVersion string) error {
	var reasons []string
	cur := plan.StateRef{}
	if current != nil {
		cur = plan.StateRef{Lineage: current.Lineage, Serial: current.Serial}
	}
	switch {
	case p.Prior.Lineage != "" && cur.Lineage != p.Prior.Lineage:
		reasons = append(reasons, fmt.Sprintf("the plan was made for state lineage %s but the state has lineage %s", p.Prior.Lineage, orNone(cur.Lineage)))
	case cur.Serial != p.Prior.Serial:
		reasons = append(reasons, fmt.Sprintf("the state changed since the plan was made (serial %d then, %d now)", p.Prior.Serial, cur.Serial))
	}
	if p.AdoraVersion != "" && adoraVersion != "" && p.AdoraVersion != adoraVersion {
		reasons = append(reasons, fmt.Sprintf("the plan was made by adora %s, this is adora %s", p.AdoraVersion, adoraVersion))
	}
	if now != nil {
		for _, v := range plan.CheckPreconditions(p, now) {
			reasons = append(reasons, v.String())
		}
	}
	if reasons != nil {
		return &StaleError{Reasons: reasons}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
