package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/cli"
)

func TestBuildCommand(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "df.yml")
	os.WriteFile(df, []byte(`
env:
  WHO: dataflow
nodes:
  - id: made
    path: ./made
    build: |
      echo "building for $WHO" > made.log
      echo visible-output
  - id: other
    path: /bin/true
    build: touch other-built
`), 0o644)
	ui := cli.NewMockUi()
	c := &BuildCommand{Meta: &Meta{Ui: ui}}
	if code := c.Run([]string{df, "--node", "made"}); code != 0 {
		t.Fatalf("exit %d: %s%s", code, ui.OutputWriter, ui.ErrorWriter)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "made.log")); string(b) != "building for dataflow\n" {
		t.Fatalf("made.log = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "other-built")); err == nil {
		t.Fatal("--node made also built other")
	}
	if out := ui.OutputWriter.String(); !strings.Contains(out, "made  | visible-output") || !strings.Contains(out, "built 1 node(s)") {
		t.Fatalf("output %q", out)
	}

	ui = cli.NewMockUi()
	c = &BuildCommand{Meta: &Meta{Ui: ui}}
	if code := c.Run([]string{df, "--node", "nope"}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "--node nope: no such node") {
		t.Fatalf("unknown node: exit %d: %s", code, ui.ErrorWriter)
	}

	os.WriteFile(df, []byte("nodes:\n  - id: bad\n    path: ./bad\n    build: |\n      true\n      exit 4\n"), 0o644)
	ui = cli.NewMockUi()
	c = &BuildCommand{Meta: &Meta{Ui: ui}}
	if code := c.Run([]string{df}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), `build of node bad failed: line 2 "exit 4": exit status 4`) {
		t.Fatalf("failing build: exit %d: %s", code, ui.ErrorWriter)
	}
}

func TestRunStopsOnBuildFailure(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ADORA_HOME", filepath.Join(dir, "home"))
	df := filepath.Join(dir, "df.yml")
	os.WriteFile(df, []byte(`
nodes:
  - id: first
    path: /bin/sh
    args: -c "touch ran"
  - id: bad
    path: /bin/true
    build: exit 3
`), 0o644)
	ui := cli.NewMockUi()
	c := &RunCommand{Meta: &Meta{Ui: ui}}
	if code := c.Run([]string{df}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), `adora run: build of node bad failed: line 1 "exit 3": exit status 3`) {
		t.Fatalf("exit %d: %s", code, ui.ErrorWriter)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("a node ran although a build failed")
	}
	ui = cli.NewMockUi()
	c = &RunCommand{Meta: &Meta{Ui: ui}}
	if code := c.Run([]string{"--no-build", df}); code != 0 {
		t.Fatalf("--no-build: exit %d: %s%s", code, ui.OutputWriter, ui.ErrorWriter)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err != nil {
		t.Fatal("--no-build did not run the nodes")
	}
}

func TestBuildShipped(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "df.yml")
	os.WriteFile(df, []byte(`
nodes:
  - id: local
    path: /bin/true
    build: touch local-built
  - id: pushed
    path: ./pushed
    _unstable_deploy:
      machine: robot
      distribute: scp
    build: touch pushed-built
  - id: served
    path: ./served
    _unstable_deploy:
      machine: robot
      distribute: http
    build: touch served-built
`), 0o644)
	ui := cli.NewMockUi()
	if code := (&BuildCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--shipped", df}); code != 0 {
		t.Fatalf("exit %d: %s", code, ui.ErrorWriter)
	}
	for f, want := range map[string]bool{"local-built": false, "pushed-built": true, "served-built": true} {
		_, err := os.Stat(filepath.Join(dir, f))
		if got := err == nil; got != want {
			t.Errorf("%s exists: %v, want %v", f, got, want)
		}
	}
	os.Remove(filepath.Join(dir, "served-built"))
	ui = cli.NewMockUi()
	if code := (&BuildCommand{Meta: &Meta{Ui: ui}}).Run([]string{"--shipped", "--node", "local,served", df}); code != 0 {
		t.Fatalf("exit %d: %s", code, ui.ErrorWriter)
	}
	if _, err := os.Stat(filepath.Join(dir, "local-built")); err == nil {
		t.Error("--shipped --node local built a distribute: local node")
	}
	if _, err := os.Stat(filepath.Join(dir, "served-built")); err != nil {
		t.Error("--shipped --node served did not build it")
	}
}

// TestBuildAndRunRejectBadInput: adora build and adora run share their
// start (arguments, --build-timeout, loading the dataflow); each names
// itself in what it prints.
func TestBuildAndRunRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ADORA_HOME", filepath.Join(dir, "home"))
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, []byte("nodes:\n  - id: a\n    path: /bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("nodes:\n  - id: a\n  - id: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, newCmd := range map[string]func(cli.Ui) cli.Command{
		"build": func(ui cli.Ui) cli.Command { return &BuildCommand{Meta: &Meta{Ui: ui}} },
		"run":   func(ui cli.Ui) cli.Command { return &RunCommand{Meta: &Meta{Ui: ui}} },
	} {
		t.Run(name, func(t *testing.T) {
			ui := cli.NewMockUi()
			c := newCmd(ui)
			if code := c.Run([]string{"--build-timeout", "0s", good}); code != 1 ||
				!strings.HasPrefix(ui.ErrorWriter.String(), "adora "+name+": --build-timeout 0s: must be positive\n\n"+c.Help()) {
				t.Fatalf("--build-timeout 0s: exit %d: %q", code, ui.ErrorWriter)
			}
			ui = cli.NewMockUi()
			c = newCmd(ui)
			if code := c.Run([]string{bad}); code != 1 ||
				!strings.Contains(ui.ErrorWriter.String(), "adora "+name+": "+bad+" has errors; fix them and run again") {
				t.Fatalf("invalid dataflow: exit %d: %q", code, ui.ErrorWriter)
			}
		})
	}
}
