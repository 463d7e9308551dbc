package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

const hclDir = "../testfixtures/hcl/"

// TestHCLEqualsYAML proves the two syntaxes decode to the same model.
func TestHCLEqualsYAML(t *testing.T) {
	pinUser(t, "tester")
	tests := []struct {
		name, yml, hcl string
		cluster        bool
	}{
		{"fleet cluster", "fleet/cluster.yml", "fleet/cluster.hcl", true},
		{"fleet dataflow", "fleet/dataflow.yml", "fleet/dataflow.hcl", false},
		{"fleet50 cluster", "fleet50/cluster.yml", "fleet50/cluster.hcl", true},
		{"full dataflow", "full/dataflow.yml", "full/dataflow.hcl", false},
		{"inline dataflow", "inline/cluster.yml", "inline/cluster.hcl", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fromYAML, fromHCL any
			var dy, dh Diagnostics
			if tt.cluster {
				fromYAML, dy = LoadCluster(hclDir + tt.yml)
				fromHCL, dh = LoadCluster(hclDir + tt.hcl)
			} else {
				fromYAML, dy = LoadDataflow(hclDir + tt.yml)
				fromHCL, dh = LoadDataflow(hclDir + tt.hcl)
			}
			if len(dy) > 0 || len(dh) > 0 {
				t.Fatalf("diagnostics:\nYAML:\n%v\nHCL:\n%v", dy, dh)
			}
			StripPositions(fromYAML)
			StripPositions(fromHCL)
			if !reflect.DeepEqual(fromYAML, fromHCL) {
				y, _ := json.MarshalIndent(fromYAML, "", "  ")
				h, _ := json.MarshalIndent(fromHCL, "", "  ")
				t.Fatalf("YAML and HCL differ:\nYAML: %s\nHCL:  %s", y, h)
			}
		})
	}
}

func pinUser(t *testing.T, name string) {
	t.Helper()
	old := currentUser
	currentUser = func() string { return name }
	t.Cleanup(func() { currentUser = old })
}

func TestHCLFleet50(t *testing.T) {
	pinUser(t, "tester")
	c, diags := LoadCluster(hclDir + "fleet50/cluster.hcl")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if len(c.Machines) != 51 {
		t.Fatalf("got %d machines, want 51", len(c.Machines))
	}
	bot10 := c.Machine("bot-10")
	if bot10 == nil || bot10.Host != "10.0.1.10" || bot10.Labels["lidar"] != "true" || bot10.User != "robot" || bot10.IdentityFile != "~/.ssh/fleet_ed25519" {
		t.Fatalf("bot-10 = %+v", bot10)
	}
	if m := c.Machine("bot-11"); m == nil || m.Labels["lidar"] != "" {
		t.Fatalf("bot-11 = %+v", m)
	}
	if c.Coordinator.Addr != "coordinator.fleet.example" || c.Coordinator.Port != 7000 {
		t.Fatalf("coordinator = %+v", c.Coordinator)
	}
}

func TestHCLVarsOverride(t *testing.T) {
	c, diags := LoadClusterOptions(hclDir+"fleet50/cluster.hcl", Options{Vars: map[string]string{"robots": "3", "ssh_user": "ops"}})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if len(c.Machines) != 4 || c.Machines[0].User != "ops" {
		t.Fatalf("got %d machines, first %+v", len(c.Machines), c.Machines[0])
	}
	_, diags = LoadClusterOptions(hclDir+"fleet50/cluster.hcl", Options{Vars: map[string]string{"robot": "3"}})
	if got := diags.Error(); !strings.Contains(got, `no variable "robot" is declared`) || !strings.Contains(got, `did you mean "robots"?`) {
		t.Fatalf("diagnostics = %q", got)
	}
	_, diags = LoadClusterOptions(hclDir+"fleet50/cluster.hcl", Options{Vars: map[string]string{"robots": "many"}})
	if got := diags.Error(); !strings.Contains(got, `-var robots: "many" is not a valid number`) {
		t.Fatalf("diagnostics = %q", got)
	}
}

func TestHCLDiagnostics(t *testing.T) {
	tests := []struct {
		name, src, want string
		cluster         bool
	}{
		{"syntax", "node \"a\" {\n  path = \n}\n", "x.hcl:2:", false},
		{"unknown attribute", "node \"a\" {\n  pathh = \"x\"\n}\n", `x.hcl:2:3: error: node "a": unknown field "pathh" (did you mean "path"?)`, false},
		{"unsupported", "node \"a\" {\n  path = \"x\"\n  operators = []\n}\n", `x.hcl:3:3: error: node "a": "operators" is not supported`, false},
		{"dangling input", "node \"a\" {\n  path = \"x\"\n  inputs = { i = \"b/o\" }\n}\n", `x.hcl:3:18: error: input "i" of node "a": source node "b" does not exist`, false},
		{"bad timer", "node \"a\" {\n  path = \"x\"\n  inputs = { i = \"adora/timer/minutes/3\" }\n}\n", `x.hcl:3:18: error: node "a": input "i": timer "adora/timer/minutes/3": timer unit must be millis, secs or hz`, false},
		{"count too big", "node \"a\" {\n  count = 100000\n  path = \"x\"\n}\n", `x.hcl:2:11: error: count must be an integer between 0 and 10000, not 100000`, false},
		{"bad node id", "node \"a b\" {\n  path = \"x\"\n}\n", `x.hcl:1:6: error: node id "a b" contains ' '`, false},
		{"undefined var", "node \"a\" {\n  path = var.nope\n}\n", `x.hcl:2:13: error: undefined variable "nope" (declare it: variable "nope" { default = ... })`, false},
		{"var typo", "variable \"robots\" {\n  default = 1\n}\nnode \"a\" {\n  path = var.robot\n}\n", `x.hcl:5:13: error: undefined variable "robot" (did you mean "robots"?)`, false},
		{"local typo", "locals {\n  bin = \"x\"\n}\nnode \"a\" {\n  path = local.bim\n}\n", `x.hcl:5:15: error: undefined local "bim" (did you mean "bin"?)`, false},
		{"unknown root", "node \"a\" {\n  path = vars.x\n}\n", `x.hcl:2:10: error: unknown variable (did you mean "var"?)`, false},
		{"variable without value", "variable \"v\" {}\nnode \"a\" {\n  path = var.v\n}\n", `x.hcl:1:10: error: variable "v" has no value`, false},
		{"locals cycle", "locals {\n  a = local.b\n  b = local.a\n}\nnode \"a\" {\n  path = \"x\"\n}\n", `x.hcl:2:3: error: local "a" cannot be evaluated`, false},
		{"for_each list", "node \"a\" {\n  for_each = [\"x\"]\n  path = \"x\"\n}\n", `x.hcl:2:14: error: for_each must be a map or a set of strings, not tuple`, false},
		{"machine without host", "coordinator {\n  addr = \"10.0.0.1\"\n}\nmachine \"m\" {}\n", `x.hcl:4:1: error: machine "m" host must not be empty`, true},
		{"no coordinator", "machine \"m\" {\n  host = \"h\"\n}\n", `x.hcl:1:1: error: cluster: missing coordinator`, true},
		{"node in cluster", "coordinator {\n  addr = \"a\"\n}\nnode \"n\" {}\n", `x.hcl:4:1: error: cluster: "node" is not supported`, true},
		{"bad label", "coordinator {\n  addr = \"a\"\n}\nmachine \"m\" {\n  host = \"h\"\n  labels = { \"a b\" = \"c\" }\n}\n", `x.hcl:6:14: error: labels: label key "a b" contains ' '`, true},
		{"empty path", "node \"a\" {\n  path = \"\"\n}\n", `x.hcl:2:10: error: node "a": path: path must not be empty`, false},
		{"deploy twice", "node \"a\" {\n  path = \"x\"\n  deploy {}\n  _unstable_deploy {}\n}\n", `x.hcl:4:3: error: node "a": deploy is set twice`, false},
		{"deploy as attribute", "node \"a\" {\n  path = \"x\"\n  deploy = {}\n}\n", `(deploy is a block: write deploy { ... })`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var diags Diagnostics
			if tt.cluster {
				_, diags = ParseCluster([]byte(tt.src), "x.hcl")
			} else {
				_, diags = ParseDataflow([]byte(tt.src), "x.hcl")
			}
			if !strings.Contains(diags.Error(), tt.want) {
				t.Fatalf("diagnostics:\n%v\nwant one containing %q", diags, tt.want)
			}
		})
	}
}

func TestHCLExpansion(t *testing.T) {
	src := `
node "worker" {
  count = 3
  path = "./worker"
  args = ["--shard", count.index]
  outputs = ["done"]
}
node "sink" {
  for_each = toset(["a", "b"])
  id = "sink-${each.key}"
  path = "./sink"
  inputs = { in = "worker-0/done" }
}
`
	df, diags := ParseDataflow([]byte(src), "x.hcl")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	var ids []string
	for _, n := range df.Nodes {
		ids = append(ids, n.ID)
	}
	if got := strings.Join(ids, ","); got != "worker-0,worker-1,worker-2,sink-a,sink-b" {
		t.Fatalf("ids = %s", got)
	}
	if got := df.Node("worker-2").Args; !reflect.DeepEqual(got, []string{"--shard", "2"}) {
		t.Fatalf("args = %q", got)
	}
	if in := df.Node("sink-b").Inputs[0]; in.Source.Node != "worker-0" || in.QueueSize != DefaultQueueSize {
		t.Fatalf("input = %+v", in)
	}
}

func TestHCLUnstableDeployAlias(t *testing.T) {
	df, diags := ParseDataflow([]byte("node \"a\" {\n  path = \"x\"\n  _unstable_deploy {\n    machine = \"m\"\n  }\n}\n"), "d.hcl")
	if len(diags) > 0 || df.Nodes[0].Deploy.Machine != "m" {
		t.Fatalf("%v %+v", diags, df)
	}
}

func TestInlineDataflowProject(t *testing.T) {
	for _, f := range []string{"inline/cluster.yml", "inline/cluster.hcl"} {
		c, dfs, diags := LoadProject(hclDir + f)
		if len(diags) > 0 {
			t.Fatalf("%s: %v", f, diags)
		}
		if got := DataflowNames(dfs); !reflect.DeepEqual(got, []string{"edge-ai", "logger"}) {
			t.Fatalf("%s: dataflows %v", f, got)
		}
		edge := dfs["edge-ai"]
		if edge.Source != hclDir+f || len(edge.Nodes) != 3 || edge.Env["RUST_LOG"] != "info" || edge.Node("inference").Inputs[0].QueueSize != DefaultQueueSize {
			t.Fatalf("%s: edge-ai = %+v", f, edge)
		}
		if c.Dataflows[0].Dataflow != edge || c.Dataflows[1].Dataflow != nil {
			t.Fatalf("%s: refs = %+v", f, c.Dataflows)
		}
	}
	_, diags := ParseCluster([]byte("coordinator: {addr: a}\nmachines: [{id: m, host: h}]\ndataflows:\n  - name: x\n    path: x.yml\n    nodes: [{id: a, path: ./a}]\n"), "c.yml")
	if got := diags.Error(); got != `c.yml:4:5: error: dataflow "x": set path or nodes, not both (keep path, or move the nodes to that file)` {
		t.Fatalf("path and nodes: %s", got)
	}
	_, diags = ParseCluster([]byte("coordinator: {addr: a}\nmachines: [{id: m, host: h}]\ndataflows:\n  - name: x\n    nodes:\n      - id: a\n        path: ./a\n        inputs: {i: b/o}\n"), "c.yml")
	if got := diags.Error(); got != `c.yml:8:21: error: input "i" of node "a": source node "b" does not exist` {
		t.Fatalf("inline wiring: %s", got)
	}
}

func TestHCLDurations(t *testing.T) {
	df, diags := LoadDataflow(hclDir + "full/dataflow.hcl")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	r := df.Node("lidar").Restart
	if r.RestartDelay != 500*time.Millisecond || r.RestartWindow != time.Minute || r.MaxRestartDelay != 8*time.Second {
		t.Fatalf("restart = %+v", r)
	}
}

func TestHCLUnknownFunctionHintIsStable(t *testing.T) {
	for i := 0; i < 20; i++ {
		_, diags := ParseDataflow([]byte(`node "a" { path = aa1("") }`), "d.hcl")
		if got := diags.Error(); got != `d.hcl:1:19: error: call to unknown function (did you mean "abs"?)` {
			t.Fatalf("run %d: %s", i, got)
		}
	}
}

func TestHCLTypedVarOverrides(t *testing.T) {
	src := []byte(`variable "zones" {
  type    = list(string)
  default = ["a"]
}
variable "gpu" {
  type    = bool
  default = false
}
coordinator {
  addr = "10.0.0.1"
}
machine "edge" {
  for_each = toset(var.zones)
  host     = "edge-${each.key}.example"
  labels   = { zone = each.key, gpu = var.gpu }
}
`)
	c, diags := ParseClusterOptions(src, "c.hcl", Options{Vars: map[string]string{"zones": `["x", "y"]`, "gpu": "true"}})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if len(c.Machines) != 2 || c.Machines[0].ID != "x" || c.Machines[1].Host != "edge-y.example" || c.Machines[1].Labels["gpu"] != "true" {
		t.Fatalf("machines = %+v", c.Machines)
	}
	_, diags = ParseClusterOptions(src, "c.hcl", Options{Vars: map[string]string{"gpu": "maybe"}})
	if got := diags.Error(); !strings.Contains(got, `-var gpu: "maybe" is not a valid bool`) {
		t.Fatalf("bad bool: %s", got)
	}
}
