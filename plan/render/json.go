package render

import (
	"encoding/json"

	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// JSONFormatVersion is the version of the JSON plan document. Consumers
// must ignore unknown fields (minor bumps add them) and reject an unknown
// major version.
const JSONFormatVersion = "1.0"

// Document is the JSON plan, as documented in docs/plans.md.
type Document struct {
	FormatVersion string              `json:"format_version"`
	AdoraVersion  string              `json:"adora_version"`
	PriorState    plan.StateRef       `json:"prior_state"`
	Refreshed     bool                `json:"refreshed"`
	Destroy       bool                `json:"destroy"`
	Applyable     bool                `json:"applyable"`
	Summary       plan.Summary        `json:"summary"`
	Binary        plan.Binary         `json:"binary"`
	Coordinator   state.Coordinator   `json:"coordinator"`
	Changes       []plan.Change       `json:"changes"`
	Waves         []plan.Wave         `json:"waves"`
	Drift         []plan.Drift        `json:"drift"`
	Preconditions []plan.Precondition `json:"preconditions"`
	Targets       []string            `json:"targets,omitempty"`
	Excludes      []string            `json:"excludes,omitempty"`
}

// NewDocument builds the JSON document of p. No-op changes are kept so
// consumers see every resource the plan covers.
func NewDocument(p *plan.Plan) Document {
	d := Document{
		FormatVersion: JSONFormatVersion, AdoraVersion: p.AdoraVersion, PriorState: p.Prior,
		Refreshed: p.Refreshed, Destroy: p.Destroy, Applyable: p.HasChanges(), Summary: p.Summarize(),
		Binary: p.Binary, Coordinator: p.Coordinator,
		Changes: p.Changes, Waves: p.Waves, Drift: p.Drift, Preconditions: p.Preconditions, Targets: p.Targets, Excludes: p.Excludes,
	}
	d.Binary.Path = ""
	for _, s := range []*[]plan.Change{&d.Changes} {
		if *s == nil {
			*s = []plan.Change{}
		}
	}
	if d.Waves == nil {
		d.Waves = []plan.Wave{}
	}
	if d.Drift == nil {
		d.Drift = []plan.Drift{}
	}
	if d.Preconditions == nil {
		d.Preconditions = []plan.Precondition{}
	}
	return d
}

// JSON renders p as an indented JSON document ending in a newline.
func JSON(p *plan.Plan) ([]byte, error) {
	data, err := json.MarshalIndent(NewDocument(p), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
