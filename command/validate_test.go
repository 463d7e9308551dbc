package command

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/cli"
	"github.com/posener/complete"
)

func TestValidate(t *testing.T) {
	const fx = "../testfixtures/"
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err []string
	}{
		{"guide project", []string{fx + "guide/edge-ai/cluster.yml", fx + "guide/edge-ai/dataflow.yml"}, 0,
			[]string{"OK  cluster ../testfixtures/guide/edge-ai/cluster.yml: 2 machines", "OK  dataflow dataflow (../testfixtures/guide/edge-ai/dataflow.yml): 3 nodes"}, nil},
		{"dataflow first, cluster detected", []string{fx + "guide/fleet/dataflow.yml", fx + "guide/fleet/cluster.yml"}, 0,
			[]string{"OK  cluster ../testfixtures/guide/fleet/cluster.yml: 3 machines"}, nil},
		{"placement shown", []string{"-placement", fx + "guide/fleet/cluster.yml", fx + "guide/fleet/dataflow.yml"}, 0,
			[]string{"\n    camera-driver -> bot-02: first daemon with the requested labels", "\n    lidar-driver -> bot-01: first daemon with the requested labels"}, nil},
		{"dataflow alone", []string{fx + "hcl/full/dataflow.hcl"}, 0, []string{"OK  dataflow ../testfixtures/hcl/full/dataflow.hcl: 3 nodes"}, nil},
		{"hcl cluster with vars", []string{"-var", "robots=5", fx + "hcl/fleet50/cluster.hcl"}, 0,
			[]string{"cluster ../testfixtures/hcl/fleet50/cluster.hcl: 6 machines", "dataflow navigation"}, nil},
		{"too few robots for a lidar", []string{fx + "hcl/fleet50/cluster.hcl", "-var=robots=4"}, 1, nil,
			[]string{`full/dataflow.yml:27:7: error: node "lidar": no machine matches labels {"lidar": "true"} (add the labels to a machine of cluster.hcl or change the requirement)`}},
		{"var nobody declares", []string{"-var", "robot=2", fx + "hcl/fleet50/cluster.hcl"}, 1, nil,
			[]string{`-var robot: no file of the project declares variable "robot" (did you mean "robots"?)`}},
		{"placement mismatch", []string{fx + "guide/edge-ai/cluster.yml", fx + "guide/fleet/dataflow.yml"}, 1, nil,
			[]string{`dataflow.yml:4:7: error: node "lidar-driver": no machine matches labels {"lidar": "true"}`, "2 errors found."}},
		{"two clusters", []string{fx + "guide/edge-ai/cluster.yml", fx + "guide/fleet/cluster.yml"}, 1, nil, []string{"are both cluster files; pass one"}},
		{"missing file", []string{"nope.yml"}, 1, nil, []string{"nope.yml: error: file not found"}},
		{"wrong extension", []string{"validate.go"}, 1, nil, []string{"validate.go: error: unknown file type"}},
		{"var for a dataflow alone", []string{"-var", "x=1", fx + "hcl/full/dataflow.hcl"}, 1, nil, []string{`error: -var x: no file declares variable "x"`}},
		{"bad var syntax", []string{"-var", "novalue"}, 1, nil, []string{`want NAME=VALUE, got "novalue"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCfgCmd(t, &ValidateCommand{}, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.err {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	code, out, errOut := runCfgCmd(t, &ValidateCommand{}, "-json", "../testfixtures/guide/edge-ai/cluster.yml", "../testfixtures/guide/fleet/dataflow.yml")
	if code != 1 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got struct {
		FormatVersion int               `json:"format_version"`
		Valid         bool              `json:"valid"`
		Cluster       string            `json:"cluster"`
		Dataflows     map[string]string `json:"dataflows"`
		Diagnostics   []struct {
			Pos struct {
				File      string
				Line, Col int
			}
			Severity, Summary, Detail string
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.FormatVersion != 1 || got.Valid || len(got.Diagnostics) != 2 || got.Dataflows["dataflow"] == "" {
		t.Fatalf("got %+v", got)
	}
	d := got.Diagnostics[0]
	if d.Severity != "error" || d.Pos.Line != 4 || d.Pos.Col != 7 || !strings.Contains(d.Summary, `no machine matches labels {"lidar": "true"}`) {
		t.Fatalf("diagnostic = %+v", d)
	}
	code, out, _ = runCfgCmd(t, &ValidateCommand{}, "-json", "../testfixtures/guide/fleet/dataflow.yml")
	if code != 0 || !strings.Contains(out, `"valid": true`) || !strings.Contains(out, `"diagnostics": []`) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestValidateDefaultFiles runs validate without arguments in a directory
// holding cluster.yml and the dataflow it lists.
func TestValidateDefaultFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cluster.yml": "coordinator: {addr: 10.0.0.1}\nmachines: [{id: robot, host: 10.0.0.2}]\ndataflows: [{name: app, path: app.yml}]\n",
		"app.yml":     "nodes:\n  - id: a\n    path: ./a\n    inputs: {tick: adora/timer/secs/1}\n    restart_delay: 1\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	code, out, errOut := runCfgCmd(t, &ValidateCommand{})
	if code != 0 || !strings.Contains(out, "OK  dataflow app (app.yml): 1 node") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "app.yml:2:5: warning: node \"a\": restart limits have no effect") {
		t.Fatalf("warning not printed:\n%s", errOut)
	}
	if err := os.Remove(filepath.Join(dir, "cluster.yml")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCfgCmd(t, &ValidateCommand{})
	if code != 1 || !strings.Contains(errOut, "no cluster.yml or cluster.hcl in the current directory") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

func TestAutocomplete(t *testing.T) {
	var _ cli.CommandAutocomplete = &ValidateCommand{}
	var _ cli.CommandAutocomplete = &GraphCommand{}
	if got := (&GraphCommand{}).AutocompleteFlags()["-format"].Predict(complete.Args{}); strings.Join(got, ",") != "mermaid,dot,json" {
		t.Fatalf("-format predictions = %v", got)
	}
}
