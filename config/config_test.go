package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDiagnosticString(t *testing.T) {
	tests := []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{Pos: Pos{File: "df.yml", Line: 14, Col: 7}, Summary: `unknown machine "robt"`, Detail: `did you mean "robot"?`},
			`df.yml:14:7: error: unknown machine "robt" (did you mean "robot"?)`},
		{Diagnostic{Pos: Pos{File: "c.yml", Line: 3}, Severity: Warning, Summary: "x"}, "c.yml:3: warning: x"},
		{Diagnostic{Pos: Pos{File: "c.yml"}, Summary: "x"}, "c.yml: error: x"},
		{Diagnostic{Summary: "x"}, "error: x"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestDiagnosticsErr(t *testing.T) {
	var none Diagnostics
	if none.Err() != nil || none.HasErrors() {
		t.Fatal("empty diagnostics are an error")
	}
	warn := Diagnostics{{Severity: Warning, Summary: "w"}}
	if warn.Err() != nil || warn.HasErrors() {
		t.Fatal("warnings alone are an error")
	}
	both := Diagnostics{{Severity: Warning, Summary: "w"}, {Summary: "e1"}, {Summary: "e2"}}
	err := both.Err()
	if err == nil || !both.HasErrors() {
		t.Fatal("errors not reported")
	}
	if err.Error() != "error: e1\nerror: e2" {
		t.Fatalf("Err() = %q", err)
	}
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 2 {
		t.Fatalf("Err() does not unwrap to Diagnostics: %#v", err)
	}
	if len(both.Warnings()) != 1 {
		t.Fatal("Warnings() wrong")
	}
}

func TestDiagnosticJSON(t *testing.T) {
	d := Diagnostic{Pos: Pos{File: "f.yml", Line: 2, Col: 3}, Severity: Warning, Summary: "s", Detail: "d"}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"pos":{"file":"f.yml","line":2,"col":3},"severity":"warning","summary":"s","detail":"d"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var back Diagnostic
	if err := json.Unmarshal(b, &back); err != nil || back != d {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"severity":"fatal"}`), &back); err == nil {
		t.Fatal("unknown severity accepted")
	}
}

func TestValidID(t *testing.T) {
	good := []string{"a", "robot", "gpu-server", "bot_01", "v1.2", "A-Z.z_9", strings.Repeat("a", 63)}
	for _, s := range good {
		if err := ValidID("machine id", s); err != nil {
			t.Errorf("ValidID(%q) = %v", s, err)
		}
	}
	bad := map[string]string{
		"":                      "machine id must not be empty",
		"-a":                    `machine id "-a" must not start with '-'`,
		".a":                    `machine id ".a" must not start with '.'`,
		"a b":                   `contains ' '`,
		"a/b":                   `contains '/'`,
		"a;b":                   `contains ';'`,
		"é":                     `contains 'é'`,
		"a\nb":                  `contains '\n'`,
		strings.Repeat("a", 64): "is 64 characters long; the limit is 63",
	}
	for s, want := range bad {
		err := ValidID("machine id", s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidID(%q) = %v, want it to contain %q", s, err, want)
		}
	}
	if ValidLabelValue("") != nil || ValidLabelValue("a b") == nil {
		t.Error("ValidLabelValue: empty must pass, spaces must fail")
	}
}

func TestParseSourceTimers(t *testing.T) {
	tests := []struct {
		in   string
		want Source
	}{
		{"adora/timer/millis/100", Source{Node: "adora", Output: "timer/millis/100", Timer: 100 * time.Millisecond}},
		{"adora/timer/secs/2", Source{Node: "adora", Output: "timer/secs/2", Timer: 2 * time.Second}},
		{"adora/timer/hz/30", Source{Node: "adora", Output: "timer/hz/30", Timer: time.Second / 30}},
		{"adora/timer/hz/0.5", Source{Node: "adora", Output: "timer/hz/0.5", Timer: 2 * time.Second}},
		{"adora/timer/hz/.5", Source{Node: "adora", Output: "timer/hz/.5", Timer: 2 * time.Second}},
		{"adora/timer/hz/1e3", Source{Node: "adora", Output: "timer/hz/1e3", Timer: time.Millisecond}},
		{"camera/frames", Source{Node: "camera", Output: "frames"}},
		{"runtime/op/out", Source{Node: "runtime", Output: "op/out"}},
	}
	for _, tt := range tests {
		got, _, err := parseSource(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseSource(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.IsTimer() != (tt.want.Node == TimerNode) {
			t.Errorf("%q: IsTimer = %v", tt.in, got.IsTimer())
		}
	}
	for _, in := range []string{"adora/timer/millis/0", "adora/timer/millis/-1", "adora/timer/millis/+5", "adora/timer/hz/0x1p4", "adora/timer/hz/+3", "adora/timer/hz/1_0", "adora/timer/hz/NaN", "adora/timer/hz/Inf",
		"adora/timer/hz/1e300", "adora/timer/secs/99999999999999", "adora/timer/secs/1.5", "a/", "/b", "a", "adora/x", "a b/c"} {
		if _, _, err := parseSource(in); err == nil {
			t.Errorf("parseSource(%q) accepted", in)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  a  b\tc ", []string{"a", "b", "c"}},
		{`--name "hello world"`, []string{"--name", "hello world"}},
		{`'single $x' "dq \"q\" \$x" a\ b`, []string{"single $x", `dq "q" $x`, "a b"}},
		{`a''b ""`, []string{"ab", ""}},
		{`"a\nb"`, []string{`a\nb`}},
	}
	for _, tt := range tests {
		got, err := splitArgs(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := splitArgs(in); err == nil {
			t.Errorf("splitArgs(%q) accepted", in)
		}
	}
}

func TestClusterDefaultsAndExtensions(t *testing.T) {
	pinUser(t, "alice")
	src := `
coordinator:
  addr: coord.example.com
ssh:
  user: ops
  port: 2200
  identity_file: ~/.ssh/fleet
machines:
  - id: a
    host: a.example.com
  - id: b
    host: 10.0.0.2
    user: root
    port: 22
    identity_file: /keys/b
    local: true
dataflows:
  - name: nav
    path: nav.yml
  - other.yml
`
	c, diags := ParseCluster([]byte(src), "c.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	StripPositions(c)
	want := &Cluster{
		Coordinator: Coordinator{Addr: "coord.example.com", Port: 6013},
		SSH:         SSHDefaults{User: "ops", Port: 2200, IdentityFile: "~/.ssh/fleet"},
		Machines: []Machine{
			{ID: "a", Host: "a.example.com", User: "ops", Port: 2200, IdentityFile: "~/.ssh/fleet"},
			{ID: "b", Host: "10.0.0.2", User: "root", Port: 22, IdentityFile: "/keys/b", Local: true},
		},
		Dataflows: []DataflowRef{{Name: "nav", Path: "nav.yml"}, {Name: "other", Path: "other.yml"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	c, _ = ParseCluster([]byte("coordinator: {addr: 10.0.0.1}\nmachines: [{id: a, host: h}]\n"), "c.yml")
	if m := c.Machines[0]; m.User != "alice" || m.Port != 22 {
		t.Fatalf("defaults not applied: %+v", m)
	}
}

func TestLocalMachineDefaultsHost(t *testing.T) {
	for _, tt := range []struct{ file, src string }{
		{"c.yml", "coordinator: {addr: 127.0.0.1}\nmachines: [{id: me, local: true}]\n"},
		{"c.hcl", "coordinator {\n  addr = \"127.0.0.1\"\n}\nmachine \"me\" {\n  local = true\n}\n"},
	} {
		c, diags := ParseCluster([]byte(tt.src), tt.file)
		if len(diags) > 0 {
			t.Fatalf("%s: %v", tt.file, diags)
		}
		if m := c.Machines[0]; m.Host != LocalHost || !m.Local {
			t.Fatalf("%s: machine = %+v", tt.file, m)
		}
	}
}

func TestCoordinatorReachWarnings(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"coordinator: {addr: 0.0.0.0}\nmachines: [{id: a, host: 10.0.0.2}]\n",
			"c.yml:1:21: warning: coordinator.addr 0.0.0.0 is not an address daemons can dial; use this machine's IP address or host name"},
		{"coordinator: {addr: 127.0.0.1}\nmachines: [{id: me, local: true}, {id: bot, host: 10.0.0.2}]\n",
			`c.yml:1:21: warning: coordinator.addr 127.0.0.1 is a loopback address, but machine "bot" (10.0.0.2) cannot reach it; use an address of this machine that bot can reach`},
		{"coordinator: {addr: localhost}\nmachines: [{id: a, host: 127.0.0.1}, {id: b, host: localhost}]\n", ""},
		{"coordinator: {addr: 10.0.0.1}\nmachines: [{id: a, host: 10.0.0.2}]\n", ""},
	}
	for _, tt := range tests {
		_, diags := ParseCluster([]byte(tt.src), "c.yml")
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got := diags.Error(); got != tt.want {
			t.Errorf("got %q\nwant %q", got, tt.want)
		}
	}
}

func TestDefaultCluster(t *testing.T) {
	c := DefaultCluster()
	if c.Coordinator.Addr != "127.0.0.1" || c.Coordinator.Port != DefaultCoordinatorPort {
		t.Fatalf("coordinator = %+v", c.Coordinator)
	}
	if len(c.Machines) != 1 || c.Machines[0].ID != "local" || c.Machines[0].Host != "127.0.0.1" || !c.Machines[0].Local {
		t.Fatalf("machines = %+v", c.Machines)
	}
	c.Machines[0].ID = "changed"
	if DefaultCluster().Machines[0].ID != "local" {
		t.Fatal("DefaultCluster shares state between calls")
	}
}

func TestCheckPlacement(t *testing.T) {
	c, diags := LoadCluster(guideDir + "fleet/cluster.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	src := `nodes:
  - id: a
    path: ./a
    _unstable_deploy:
      machine: bot-1
  - id: b
    path: ./b
    _unstable_deploy:
      labels:
        gpu: "true"
        fleet: warehouse
  - id: c
    path: ./c
    _unstable_deploy:
      machine: bot-01
  - id: d
    path: ./d
    _unstable_deploy:
      labels:
        lidar: "true"
        camera: rgbd
  - id: e
    path: ./e
    _unstable_deploy:
      machine: zeta
`
	df, diags := ParseDataflow([]byte(src), "df.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	got := CheckPlacement(c, df).Error()
	want := `df.yml:5:16: error: node "a": unknown machine "bot-1" (did you mean "bot-01"?)
df.yml:9:7: error: node "b": no machine matches labels {"fleet": "warehouse", "gpu": "true"} (add the labels to a machine of cluster.yml or change the requirement)
df.yml:25:16: error: node "e": unknown machine "zeta" (machines are "bot-01", "bot-02", "bot-03")`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFiles2(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadProject(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"cluster.yml":   "coordinator: {addr: 10.0.0.1}\nmachines: [{id: robot, host: h}]\ndataflows:\n  - name: app\n    path: flows/app.yml\n",
		"flows/app.yml": "nodes:\n  - id: a\n    path: ./a\n    _unstable_deploy: {machine: robot}\n",
		"extra.yml":     "nodes:\n  - id: b\n    path: ./b\n    _unstable_deploy: {machine: robto}\n",
	})
	c, dfs, diags := LoadProject(filepath.Join(dir, "cluster.yml"), filepath.Join(dir, "extra.yml"))
	if c == nil || len(c.Machines) != 1 {
		t.Fatalf("cluster = %+v", c)
	}
	if got := DataflowNames(dfs); !reflect.DeepEqual(got, []string{"app", "extra"}) {
		t.Fatalf("dataflows = %v", got)
	}
	if len(diags) != 1 || !strings.Contains(diags[0].String(), `extra.yml:4:33: error: node "b": unknown machine "robto" (did you mean "robot"?)`) {
		t.Fatalf("diagnostics:\n%v", diags)
	}

	_, dfs, diags = LoadProject(filepath.Join(dir, "cluster.yml"), filepath.Join(dir, "flows", "..", "flows", "app.yml"))
	if len(diags) > 0 || len(dfs) != 1 || dfs["app"] == nil {
		t.Fatalf("a listed dataflow passed again must load once under its listed name: %v %v", DataflowNames(dfs), diags)
	}
	writeFiles2(t, dir, map[string]string{"other/app.yml": "nodes:\n  - id: z\n    path: ./z\n"})
	_, _, diags = LoadProject(filepath.Join(dir, "cluster.yml"), filepath.Join(dir, "other/app.yml"))
	if !strings.Contains(diags.Error(), `two dataflows are named "app"`) {
		t.Fatalf("duplicate names not reported:\n%v", diags)
	}
	_, _, diags = LoadProject(filepath.Join(dir, "missing.yml"))
	if !strings.Contains(diags.Error(), "missing.yml: error: file not found") {
		t.Fatalf("missing file:\n%v", diags)
	}
	c, dfs, diags = LoadProject("", filepath.Join(dir, "flows/app.yml"))
	if !strings.Contains(diags.Error(), `unknown machine "robot"`) || c.Machines[0].ID != "local" || dfs["app"] == nil {
		t.Fatalf("default cluster project: %v %v", c, diags)
	}
}

func TestReadFileLimits(t *testing.T) {
	dir := t.TempDir()
	_, diags := LoadDataflow(dir)
	if got := diags.Error(); got != dir+": error: is a directory (pass a cluster or dataflow file)" {
		t.Fatalf("directory: %s", got)
	}
	big := filepath.Join(dir, "big.yml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, diags = LoadDataflow(big)
	if !strings.Contains(diags.Error(), "configuration files are limited to") {
		t.Fatalf("big file: %v", diags)
	}
	bom := filepath.Join(dir, "bom.hcl")
	if err := os.WriteFile(bom, []byte("\xef\xbb\xbfnode \"a\" {\n  path = \"./a\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, diags = LoadDataflow(bom); len(diags) > 0 {
		t.Fatalf("BOM: %v", diags)
	}
}

func TestLoadProjectMissingListedDataflow(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"cluster.yml": "coordinator: {addr: 10.0.0.1}\nmachines: [{id: a, host: h}]\ndataflows:\n  - name: app\n    path: app.yml\n",
	})
	_, _, diags := LoadProject(filepath.Join(dir, "cluster.yml"))
	want := filepath.Join(dir, "cluster.yml") + `:4:5: error: dataflow "app": file ` + filepath.Join(dir, "app.yml") + " not found (paths are relative to the cluster file)"
	if diags.Error() != want {
		t.Fatalf("got  %s\nwant %s", diags.Error(), want)
	}
}

func TestNodeEnvMerge(t *testing.T) {
	df, diags := ParseDataflow([]byte("env: {A: '1', B: '2'}\nnodes:\n  - id: a\n    path: ./a\n    env: {B: three, C: true}\n"), "f.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	got := df.NodeEnv(df.Node("a"))
	want := map[string]string{"A": "1", "B": "three", "C": "true"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("NodeEnv = %v, want %v", got, want)
	}
	if df.Node("zz") != nil {
		t.Fatal("Node(missing) != nil")
	}
}

func TestRestartWarning(t *testing.T) {
	df, diags := ParseDataflow([]byte("nodes:\n  - id: a\n    path: ./a\n    max_restarts: 3\n"), "f.yml")
	if df == nil || diags.HasErrors() || len(diags) != 1 || diags[0].Severity != Warning {
		t.Fatalf("want one warning, got:\n%v", diags)
	}
	if !strings.Contains(diags[0].String(), "restart limits have no effect") {
		t.Fatalf("warning = %s", diags[0])
	}
}

func TestStripPositions(t *testing.T) {
	df := &Dataflow{Source: "x", Nodes: []Node{{ID: "a", Pos: Pos{File: "f", Line: 1}, Inputs: []Input{{ID: "i", Pos: Pos{Line: 2}}},
		Deploy: Deploy{Pos: Pos{Line: 3}}}}}
	StripPositions(df)
	want := &Dataflow{Nodes: []Node{{ID: "a", Inputs: []Input{{ID: "i"}}}}}
	if !reflect.DeepEqual(df, want) {
		t.Fatalf("got %+v", df)
	}
	m := map[string]*Dataflow{"x": {Source: "s", Nodes: []Node{{Pos: Pos{Line: 1}}}}}
	StripPositions(m)
	if m["x"].Source != "" || m["x"].Nodes[0].Pos != (Pos{}) {
		t.Fatalf("map not stripped: %+v", m["x"])
	}
}

func TestYAMLAnchorsAndAliases(t *testing.T) {
	src := "env: &e {A: '1'}\nnodes:\n  - id: a\n    path: ./a\n    env: *e\n    outputs: [o]\n  - id: b\n    path: ./b\n    inputs: {x: a/o}\n"
	df, diags := ParseDataflow([]byte(src), "f.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if df.Node("a").Env["A"] != "1" {
		t.Fatalf("alias not resolved: %+v", df.Node("a").Env)
	}
}

func TestDetectKind(t *testing.T) {
	tests := []struct {
		file, src string
		want      Kind
	}{
		{"c.yml", "coordinator: {addr: a}\n", KindCluster},
		{"c.yaml", "machines: []\n", KindCluster},
		{"d.yml", "nodes: []\n", KindDataflow},
		{"d.yml", "env: {}\nnodes: []\n", KindDataflow},
		{"x.yml", "foo: 1\n", KindUnknown},
		{"x.yml", "[1, 2]\n", KindUnknown},
		{"x.yml", "a: [\n", KindUnknown},
		{"c.hcl", "machine \"a\" {}\n", KindCluster},
		{"d.hcl", "env = {}\nnode \"a\" {}\n", KindDataflow},
		{"x.hcl", "a = 1\n", KindUnknown},
		{"x.hcl", "a = {\n", KindUnknown},
	}
	for _, tt := range tests {
		if got := DetectKind([]byte(tt.src), tt.file); got != tt.want {
			t.Errorf("DetectKind(%q, %q) = %q, want %q", tt.src, tt.file, got, tt.want)
		}
	}
}

func TestCheckDataflowAndCluster(t *testing.T) {
	df := &Dataflow{Nodes: []Node{
		{ID: "b", Path: "./b", Inputs: []Input{{ID: "z", Source: Source{Node: "a", Output: "o"}}, {ID: "t", Source: Source{Node: TimerNode, Output: "timer/secs/1", Timer: time.Second}}}},
		{ID: "a", Path: "./a", Outputs: []string{"o"}},
	}}
	if diags := CheckDataflow(df); len(diags) > 0 {
		t.Fatal(diags)
	}
	b := df.Node("b")
	if b.Inputs[0].ID != "t" || b.Inputs[1].QueueSize != DefaultQueueSize || b.Inputs[1].QueuePolicy != DropOldest || b.Restart.Mode != RestartNever || b.Deploy.Distribute != DistributeLocal {
		t.Fatalf("defaults not applied: %+v", b)
	}
	bad := &Dataflow{Nodes: []Node{{ID: "a b", Path: "x", Inputs: []Input{{ID: "i", Source: Source{Node: "nope", Output: "o"}}}}, {Path: "y"}}}
	got := CheckDataflow(bad).Error()
	for _, want := range []string{`node id "a b" contains ' '`, "node id must not be empty", `source node "nope" does not exist`} {
		if !strings.Contains(got, want) {
			t.Errorf("CheckDataflow: %q lacks %q", got, want)
		}
	}
	c := &Cluster{Coordinator: Coordinator{Addr: "10.0.0.1"}, Machines: []Machine{{ID: "a", Host: "h"}, {ID: "a", Host: "h"}, {ID: "b;c", Host: "h"}}}
	got = CheckCluster(c).Error()
	if !strings.Contains(got, `duplicate machine id "a"`) || !strings.Contains(got, `machine id "b;c" contains ';'`) || c.Coordinator.Port != DefaultCoordinatorPort || c.Machines[0].Port != DefaultSSHPort {
		t.Fatalf("CheckCluster: %s / %+v", got, c)
	}
}
