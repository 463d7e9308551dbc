package command

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/placement"
)

// The golden files are rewritten with: go test ./command -run TestGraph
// -update. The flag is registered in init, after every package-level
// variable of the package, so a golden test elsewhere in this package that
// declares its own -update flag wins and both share it.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updatingGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func runCfgCmd(t *testing.T, c cli.Command, args ...string) (code int, out, errOut string) {
	t.Helper()
	ui := cli.NewMockUi()
	switch c := c.(type) {
	case *GraphCommand:
		c.Meta = &Meta{Ui: ui}
	case *ValidateCommand:
		c.Meta = &Meta{Ui: ui}
	}
	code = c.Run(args)
	return code, ui.OutputWriter.String(), ui.ErrorWriter.String()
}

func TestGraphGolden(t *testing.T) {
	const fx = "../testfixtures/"
	tests := []struct {
		name string
		args []string
	}{
		{"edge-ai-mermaid", []string{fx + "guide/edge-ai/dataflow.yml", "-cluster", fx + "guide/edge-ai/cluster.yml"}},
		{"edge-ai-dot", []string{"-format", "dot", "-cluster", fx + "guide/edge-ai/cluster.yml", fx + "guide/edge-ai/dataflow.yml"}},
		{"fleet-mermaid", []string{"--cluster", fx + "guide/fleet/cluster.yml", fx + "guide/fleet/dataflow.yml"}},
		{"full-mermaid", []string{fx + "hcl/full/dataflow.yml"}},
		{"full-dot", []string{fx + "hcl/full/dataflow.hcl", "-format=dot"}},
		{"edge-ai-json", []string{"-format", "json", "-cluster", fx + "guide/edge-ai/cluster.yml", fx + "guide/edge-ai/dataflow.yml"}},
		{"full-json", []string{"-format", "json", fx + "hcl/full/dataflow.yml"}},
		{"inline-by-name-mermaid", []string{"-cluster", fx + "hcl/inline/cluster.hcl", "edge-ai"}},
		{"full-fleet50-mermaid", []string{fx + "hcl/full/dataflow.hcl", "-cluster", fx + "hcl/fleet50/cluster.hcl", "-var", "robots=5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCfgCmd(t, &GraphCommand{}, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden := filepath.Join("testdata", "graph", tt.name+".golden")
			if updatingGolden() {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Fatalf("output differs from %s:\n%s", golden, out)
			}
		})
	}
}

func TestGraphErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no file", nil, "want exactly one DATAFLOW file"},
		{"two files", []string{"a.yml", "b.yml"}, "want exactly one DATAFLOW file"},
		{"bad format", []string{"-format", "png", "../testfixtures/guide/fleet/dataflow.yml"}, `unknown -format "png"; use mermaid, dot or json`},
		{"missing file", []string{"nope.yml"}, "nope.yml: error: file not found"},
		{"placement impossible", []string{"../testfixtures/guide/fleet/dataflow.yml", "-cluster", "../testfixtures/guide/edge-ai/cluster.yml"},
			`no machine matches labels {"lidar": "true"}`},
		{"unknown name", []string{"-cluster", "../testfixtures/hcl/inline/cluster.yml", "edge"},
			"edge is neither a file nor a dataflow of ../testfixtures/hcl/inline/cluster.yml (dataflows: edge-ai, logger)"},
		{"bad flag", []string{"-nope"}, "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCfgCmd(t, &GraphCommand{}, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, errOut, tt.want)
			}
		})
	}
}

func TestGraphEscaping(t *testing.T) {
	g := &dataflowGraph{name: `a"b`, groups: []graphGroup{{machine: `m"1`, nodes: []string{"x"}}}}
	if got := g.dot(); !strings.Contains(got, `digraph "a\"b"`) || !strings.Contains(got, `label="m\"1"`) {
		t.Fatalf("dot escaping:\n%s", got)
	}
	if got := g.mermaid(); !strings.Contains(got, `subgraph m0["m#quot;1"]`) {
		t.Fatalf("mermaid escaping:\n%s", got)
	}
}

func TestGraphCrossMachineEdges(t *testing.T) {
	df := &config.Dataflow{Nodes: []config.Node{
		{ID: "a", Outputs: []string{"o"}},
		{ID: "b", Outputs: []string{"o"}, Inputs: []config.Input{{ID: "o", Source: config.Source{Node: "a", Output: "o"}}}},
		{ID: "c", Inputs: []config.Input{{ID: "in", Source: config.Source{Node: "b", Output: "o"}}}},
	}}
	decisions := []placement.Decision{{Node: "a", MachineID: "m1"}, {Node: "b", MachineID: "m1"}, {Node: "c", MachineID: "m2"}}
	got := newDataflowGraph("x", df, decisions).mermaid()
	want := `%% dataflow x
flowchart LR
  subgraph m0["m1"]
    n0["a"]
    n1["b"]
  end
  subgraph m1["m2"]
    n2["c"]
  end
  n0 -->|"o"| n1
  n1 -.->|"o → in"| n2`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
