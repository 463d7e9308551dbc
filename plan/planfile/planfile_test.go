package planfile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/state"
)

func upgradePlan(t *testing.T) (*plan.Plan, *state.State, *state.Observed) {
	t.Helper()
	s := plantest.Scenarios()[2] // binary-upgrade
	p, err := plan.Compute(s.Prior, s.Observed, s.Desired)
	if err != nil {
		t.Fatal(err)
	}
	return p, s.Prior, s.Observed
}

func TestRoundTrip(t *testing.T) {
	p, _, _ := upgradePlan(t)
	path := filepath.Join(t.TempDir(), "tfplan")
	if err := Write(path, p); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Changes, p.Changes) || got.Prior != p.Prior || !reflect.DeepEqual(got.Preconditions, p.Preconditions) {
		t.Fatal("plan changed through the file")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan file mode %v; want 0600", fi.Mode().Perm())
	}
}

func TestCheck(t *testing.T) {
	p, prior, observed := upgradePlan(t)
	moved := plantest.Healthy(prior)
	m := moved.Machines["bot-01"]
	m.BinarySHA256 = "ffff"
	moved.Machines["bot-01"] = m
	later := prior.Clone()
	later.Serial++
	other := prior.Clone()
	other.Lineage = "another"
	tests := []struct {
		name    string
		current *state.State
		now     *state.Observed
		version string
		want    string // "" = accepted
	}{
		{"same state and world", prior, observed, "0.2.0", ""},
		{"not re-observed", prior, nil, "0.2.0", ""},
		{"serial moved", later, observed, "0.2.0", "serial 4 then, 5 now"},
		{"other lineage", other, observed, "0.2.0", "lineage another"},
		{"state deleted", nil, observed, "0.2.0", "lineage (none)"},
		{"precondition broken", prior, moved, "0.2.0", "machine.bot-01: binary_sha256 was a1a1"},
		{"other adora", prior, observed, "0.3.0", "made by adora 0.2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(p, tt.current, tt.now, tt.version)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check = %v; want accepted", err)
				}
				return
			}
			var stale *StaleError
			if !errors.As(err, &stale) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v; want a StaleError saying %q", err, tt.want)
			}
		})
	}
}

func TestFirstPlanAgainstNoStateIsRefusedOnceStateExists(t *testing.T) {
	// A plan made with no state must not be applied twice (Terraform's
	// duplicate-apply bug): once the first apply wrote state, serial moved.
	s := plantest.Scenarios()[0]
	p, err := plan.Compute(nil, nil, s.Desired)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(p, nil, nil, ""); err != nil {
		t.Fatalf("first apply refused: %v", err)
	}
	written := state.New("0.2.0")
	written.Serial = 1
	if err := Check(p, written, nil, ""); err == nil {
		t.Fatal("second apply of a plan made against no state was accepted")
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"garbage":      "zip",
		"other json":   `{"format_version": 1}`,
		"newer format": `{"format_version": 9, "kind": "adora-plan", "plan": {}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(in)); err == nil {
				t.Fatal("Decode accepted it")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"format_version": 1, "kind": "adora-plan", "plan": {"changes": []}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode(data)
		if err == nil && p == nil {
			t.Fatal("nil plan without error")
		}
	})
}
