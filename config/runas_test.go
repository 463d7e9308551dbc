package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidUserName(t *testing.T) {
	for _, ok := range []string{"root", "ubuntu", "adora", "_svc", "robot-01", "john.doe", "A", strings.Repeat("u", MaxUserNameLength)} {
		if err := ValidUserName(ok); err != nil {
			t.Errorf("ValidUserName(%q) = %v; want nil", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":                                       "must not be empty",
		strings.Repeat("u", MaxUserNameLength+1): "longer than 32 characters",
		"-oProxyCommand=x":                       "must start with a letter or '_'",
		"1000":                                   "must start with a letter or '_'",
		".hidden":                                "must start with a letter or '_'",
		"/root":                                  "must start with a letter or '_'",
		"a b":                                    `contains ' '`,
		"ubuntu\nExecStartPre=/bin/sh":           `contains '\n'`,
		"a%h":                                    `contains '%'`,
		"a;reboot":                               `contains ';'`,
		"a$(id)":                                 `contains '$'`,
		"user@domain":                            `contains '@'`,
		`DOMAIN\user`:                            `contains '\\'`,
		"a/b":                                    `contains '/'`,
		"ünï":                                    "must start with a letter or '_'",
		"uni\u00e9":                              `contains 'é'`,
	} {
		err := ValidUserName(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidUserName(%q) = %v; want an error containing %q", bad, err, want)
		}
	}
}

// TestRunAsYAMLAndHCL decodes run_as from both syntaxes into the same
// model; absent stays empty (the SSH user, resolved where the daemon is
// installed).
func TestRunAsYAMLAndHCL(t *testing.T) {
	pinUser(t, "tester")
	yml := `
coordinator: {addr: 10.0.0.1}
ssh: {user: ubuntu}
machines:
  - {id: cam, host: 10.0.0.2, run_as: robot}
  - {id: gpu, host: 10.0.0.3, run_as: root}
  - {id: edge, host: 10.0.0.4}
`
	hcl := `
coordinator { addr = "10.0.0.1" }
ssh { user = "ubuntu" }
machine "cam" {
  host   = "10.0.0.2"
  run_as = "robot"
}
machine "gpu" {
  host   = "10.0.0.3"
  run_as = "root"
}
machine "edge" { host = "10.0.0.4" }
`
	fromYAML, dy := ParseCluster([]byte(yml), "c.yml")
	fromHCL, dh := ParseCluster([]byte(hcl), "c.hcl")
	if len(dy) > 0 || len(dh) > 0 {
		t.Fatalf("diagnostics:\nYAML:\n%v\nHCL:\n%v", dy, dh)
	}
	StripPositions(fromYAML)
	StripPositions(fromHCL)
	if !reflect.DeepEqual(fromYAML, fromHCL) {
		t.Fatalf("YAML and HCL differ:\nYAML: %+v\nHCL:  %+v", fromYAML.Machines, fromHCL.Machines)
	}
	got := map[string]string{}
	for _, m := range fromYAML.Machines {
		got[m.ID] = m.RunAs
	}
	if want := map[string]string{"cam": "robot", "gpu": "root", "edge": ""}; !reflect.DeepEqual(got, want) {
		t.Fatalf("run_as = %v, want %v", got, want)
	}
	// The canonical YAML keeps run_as.
	b, err := FormatClusterYAML(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	back, diags := ParseCluster(b, "canon.yml")
	if len(diags) > 0 {
		t.Fatalf("%v\n%s", diags, b)
	}
	StripPositions(back)
	if !reflect.DeepEqual(back.Machines, fromYAML.Machines) {
		t.Fatalf("round trip through FormatClusterYAML:\n%s\ngot  %+v\nwant %+v", b, back.Machines, fromYAML.Machines)
	}
}

func TestRunAsDiagnostics(t *testing.T) {
	hint := " (" + runAsHint + ")"
	for _, tt := range []struct{ name, file, src, want string }{
		{"yaml space", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    run_as: a b\n",
			`f.yml:5:13: error: machine "a": run_as: user name "a b" contains ' '; only letters, digits, '_', '.' and '-' are allowed` + hint},
		{"yaml option", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    run_as: -x\n",
			`f.yml:5:13: error: machine "a": run_as: user name "-x" must start with a letter or '_'` + hint},
		{"yaml uid", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    run_as: 1000\n",
			`f.yml:5:13: error: machine "a": run_as: user name "1000" must start with a letter or '_'` + hint},
		{"yaml empty", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    run_as: \"\"\n",
			`f.yml:5:13: error: machine "a": run_as: user name must not be empty` + hint},
		{"yaml null", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    run_as:\n",
			`f.yml:5:12: error: machine "a": run_as: user name must not be empty` + hint},
		{"yaml list", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    run_as: [root]\n",
			`f.yml:5:13: error: machine "a": run_as must be a string, not a list`},
		{"yaml typo", "f.yml", "coordinator: {addr: 10.0.0.1}\nmachines:\n  - id: a\n    host: h\n    runas: root\n",
			`f.yml:5:5: error: machine "a": unknown field "runas" (did you mean "run_as"?)`},
		{"hcl newline", "f.hcl", "coordinator { addr = \"10.0.0.1\" }\nmachine \"a\" {\n  host = \"h\"\n  run_as = \"a\\nExecStartPre=/bin/sh\"\n}\n",
			`f.hcl:4:12: error: machine "a": run_as: user name "a\nExecStartPre=/bin/sh" contains '\n'; only letters, digits, '_', '.' and '-' are allowed` + hint},
		{"hcl number", "f.hcl", "coordinator { addr = \"10.0.0.1\" }\nmachine \"a\" {\n  host = \"h\"\n  run_as = 0\n}\n",
			`f.hcl:4:12: error: machine "a": run_as: user name "0" must start with a letter or '_'` + hint},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := ParseCluster([]byte(tt.src), tt.file)
			if !diags.HasErrors() {
				t.Fatalf("no error for:\n%s", tt.src)
			}
			found := false
			for _, d := range diags {
				found = found || d.String() == tt.want
				assertHuman(t, d)
			}
			if !found {
				t.Fatalf("diagnostics:\n%v\nwant a line equal to:\n%s", diags, tt.want)
			}
		})
	}
}

func TestRunAsOnLocalMachineWarns(t *testing.T) {
	c, diags := ParseCluster([]byte("coordinator: {addr: 127.0.0.1}\nmachines: [{id: me, local: true, run_as: robot}]\n"), "c.yml")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w := diags.Warnings()
	if len(w) != 1 || !strings.Contains(w[0].String(), `c.yml:2:12: warning: machine "me": run_as has no effect on the local machine`) {
		t.Fatalf("warnings %v", w)
	}
	if c.Machines[0].RunAs != "robot" {
		t.Fatalf("run_as = %q", c.Machines[0].RunAs)
	}
}

// TestRunAsDefaultNotAUserName: the daemon runs as the SSH user by
// default; one that cannot be (a domain login) gets a warning that says to
// set run_as, and run_as silences it.
func TestRunAsDefaultNotAUserName(t *testing.T) {
	src := "coordinator: {addr: 10.0.0.1}\nmachines:\n  - {id: a, host: h, user: bob@corp}\n  - {id: b, host: h, user: bob@corp, run_as: bob}\n  - {id: c, host: h, user: ubuntu}\n"
	_, diags := ParseCluster([]byte(src), "c.yml")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w := diags.Warnings()
	want := `c.yml:3:5: warning: machine "a": its daemon would run as the SSH user "bob@corp", which is not a plain user name: set run_as`
	if len(w) != 1 || w[0].String() != want {
		t.Fatalf("warnings %v\nwant %s", w, want)
	}
}
