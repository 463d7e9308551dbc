package command

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"gpu=true", map[string]string{"gpu": "true"}, ""},
		{"gpu=true, arch=arm64", map[string]string{"gpu": "true", "arch": "arm64"}, ""},
		{"flag=", map[string]string{"flag": ""}, ""},
		{"gpu", nil, `"gpu" is not key=value`},
		{"a=1,a=2", nil, `label "a" given twice`},
		{"bad key=1", nil, "label key"},
		{"k=v;rm", nil, "label value"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLabels(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseLabels(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDaemonFlagsConfig(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	t.Setenv("ADORA_AUTH_TOKEN", "")
	base := daemonFlags{addr: "10.0.0.1", port: 6013, machineID: "robot", labels: "gpu=true"}
	cfg, err := base.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MachineID != "robot" || cfg.Labels["gpu"] != "true" || cfg.Coordinator.Addr != "10.0.0.1" || cfg.Coordinator.Port != 6013 || cfg.Coordinator.Token != "" {
		t.Fatalf("config %+v", cfg)
	}
	withBuild := base
	withBuild.buildTO = 3 * time.Minute
	if cfg, err := withBuild.config(); err != nil || cfg.BuildTimeout != 3*time.Minute {
		t.Fatalf("build timeout: %v, %v", cfg.BuildTimeout, err)
	}
	tokenFile := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	withFile := base
	withFile.tokenFile = tokenFile
	if cfg, err := withFile.config(); err != nil || cfg.Coordinator.Token != "s3cret" {
		t.Fatalf("token file: %q, %v", cfg.Coordinator.Token, err)
	}
	t.Setenv("ADORA_AUTH_TOKEN", "from-env")
	if cfg, err := base.config(); err != nil || cfg.Coordinator.Token != "from-env" || cfg.TokenSource != nil {
		t.Fatalf("token from env: %q, %v (re-read: %v)", cfg.Coordinator.Token, err, cfg.TokenSource != nil)
	}
	for name, f := range map[string]daemonFlags{
		"bad machine id": {addr: "h", port: 1, machineID: "robot;rm"},
		"bad port":       {addr: "h", port: 70000},
		"empty addr":     {port: 6013},
		"open token":     {addr: "h", port: 1, tokenFile: writeMode(t, 0o644)},
		"negative build": {addr: "h", port: 1, buildTO: -time.Second},
	} {
		if _, err := f.config(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func writeMode(t *testing.T, mode os.FileMode) string {
	p := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(p, []byte("x\n"), mode)
	os.Chmod(p, mode)
	return p
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		pos     string
		stop    string
		wantErr bool
	}{
		{[]string{"df.yml"}, "df.yml", "", false},
		{[]string{"--stop-after", "5s", "df.yml"}, "df.yml", "5s", false},
		{[]string{"df.yml", "--stop-after", "5s"}, "df.yml", "5s", false},
		{[]string{}, "", "", true},
		{[]string{"a.yml", "b.yml"}, "", "", true},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		stop := fs.String("stop-after", "", "")
		pos, err := parseInterspersed(fs, tt.args)
		if (err != nil) != tt.wantErr || pos != tt.pos || *stop != tt.stop {
			t.Errorf("%v: pos %q stop %q err %v", tt.args, pos, *stop, err)
		}
	}
}

// TestDaemonTokenReread: a token from ADORA_HOME/token or --token-file is
// read again at each connection attempt (the daemon may start before the
// coordinator writes it); one from --token or the environment is not.
func TestDaemonTokenReread(t *testing.T) {
	home := t.TempDir()
	t.Setenv("ADORA_HOME", home)
	t.Setenv("ADORA_AUTH_TOKEN", "")
	base := daemonFlags{addr: "10.0.0.1", port: 6013}
	cfg, err := base.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Coordinator.Token != "" || cfg.TokenSource == nil {
		t.Fatalf("no token file yet: token %q, re-read %v", cfg.Coordinator.Token, cfg.TokenSource != nil)
	}
	if tok, err := cfg.TokenSource(); tok != "" || err != nil {
		t.Fatalf("no token file yet: %q, %v", tok, err)
	}
	if err := os.WriteFile(filepath.Join(home, "token"), []byte("written-later\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := cfg.TokenSource(); tok != "written-later" || err != nil {
		t.Fatalf("after the coordinator wrote its token: %q, %v", tok, err)
	}
	os.Chmod(filepath.Join(home, "token"), 0o644)
	if _, err := cfg.TokenSource(); err == nil {
		t.Fatal("a token file others can read was accepted")
	}

	tokenFile := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tokenFile, []byte("first\n"), 0o600)
	withFile := base
	withFile.tokenFile = tokenFile
	cfg, err = withFile.config()
	if err != nil || cfg.Coordinator.Token != "first" || cfg.TokenSource == nil {
		t.Fatalf("--token-file: %q, %v", cfg.Coordinator.Token, err)
	}
	os.WriteFile(tokenFile, []byte("second\n"), 0o600)
	if tok, err := cfg.TokenSource(); tok != "second" || err != nil {
		t.Fatalf("--token-file re-read: %q, %v", tok, err)
	}

	withFlag := base
	withFlag.token = "from-flag"
	if cfg, err := withFlag.config(); err != nil || cfg.Coordinator.Token != "from-flag" || cfg.TokenSource != nil {
		t.Fatalf("--token: %q, %v (re-read: %v)", cfg.Coordinator.Token, err, cfg.TokenSource != nil)
	}
}
