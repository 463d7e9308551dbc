package remote

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderUnitGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec DaemonSpec
	}{
		{"unit-robot.service", DaemonSpec{MachineID: "robot", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013,
			Labels: map[string]string{"gpu": "true", "arch": "arm64"}, Token: "0123abcd", RunAs: "ubuntu"}},
		{"unit-nolabels.service", DaemonSpec{MachineID: "gpu-server", CoordinatorAddr: "coord.example.org", CoordinatorPort: 7000, RunAs: "root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderUnit(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, got)
			if strings.Contains(string(got), tc.spec.Token) && tc.spec.Token != "" {
				t.Fatal("the unit file carries the token; it belongs in the environment file only")
			}
			again, _ := RenderUnit(tc.spec)
			if string(again) != string(got) {
				t.Fatal("RenderUnit is not deterministic")
			}
		})
	}
}

func TestRenderEnvGolden(t *testing.T) {
	s := DaemonSpec{MachineID: "robot", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, Token: "0123abcd"}
	got, err := RenderEnv(s, DaemonHome("robot"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "daemon-robot.env", got)
}

func TestRenderUnitRefusesHostileValues(t *testing.T) {
	base := DaemonSpec{MachineID: "robot", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, RunAs: "ubuntu"}
	if _, err := RenderUnit(base); err != nil {
		t.Fatalf("the base spec must render: %v", err)
	}
	for name, mut := range map[string]func(*DaemonSpec){
		"id with space":     func(s *DaemonSpec) { s.MachineID = "a b" },
		"id with newline":   func(s *DaemonSpec) { s.MachineID = "a\nExecStartPre=/bin/evil" },
		"id with specifier": func(s *DaemonSpec) { s.MachineID = "a%h" },
		"empty id":          func(s *DaemonSpec) { s.MachineID = "" },
		"addr injection":    func(s *DaemonSpec) { s.CoordinatorAddr = "1.2.3.4;reboot" },
		"addr option":       func(s *DaemonSpec) { s.CoordinatorAddr = "-x" },
		"port zero":         func(s *DaemonSpec) { s.CoordinatorPort = 0 },
		"port too big":      func(s *DaemonSpec) { s.CoordinatorPort = 70000 },
		"label key comma":   func(s *DaemonSpec) { s.Labels = map[string]string{"a,b": "c"} },
		"label value equal": func(s *DaemonSpec) { s.Labels = map[string]string{"a": "b=c"} },
		"token newline":     func(s *DaemonSpec) { s.Token = "abc\nADORA_X=1" },
		"relative binary":   func(s *DaemonSpec) { s.Binary = "adora" },
		"run_as empty":      func(s *DaemonSpec) { s.RunAs = "" },
		"run_as newline":    func(s *DaemonSpec) { s.RunAs = "ubuntu\nExecStartPre=/bin/evil" },
		"run_as space":      func(s *DaemonSpec) { s.RunAs = "ubuntu root" },
		"run_as specifier":  func(s *DaemonSpec) { s.RunAs = "%u" },
		"run_as option":     func(s *DaemonSpec) { s.RunAs = "-root" },
		"run_as uid":        func(s *DaemonSpec) { s.RunAs = "0" },
		"run_as path":       func(s *DaemonSpec) { s.RunAs = "/root" },
		"run_as shell":      func(s *DaemonSpec) { s.RunAs = "a;reboot" },
		"run_as too long":   func(s *DaemonSpec) { s.RunAs = strings.Repeat("u", 33) },
	} {
		t.Run(name, func(t *testing.T) {
			s := base
			mut(&s)
			if _, err := RenderUnit(s); err == nil {
				t.Fatalf("RenderUnit(%+v) succeeded; want a validation error", s)
			}
		})
	}
}

func TestDaemonArgsOrderAndLabels(t *testing.T) {
	s := DaemonSpec{MachineID: "h1", CoordinatorAddr: "10.77.1.1", CoordinatorPort: 6013,
		Labels: map[string]string{"zone": "a", "role": "robot", "flag": ""}}
	got := strings.Join(s.DaemonArgs(), " ")
	want := "daemon --machine-id h1 --coordinator-addr 10.77.1.1 --coordinator-port 6013 --labels flag=,role=robot,zone=a --quiet"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
