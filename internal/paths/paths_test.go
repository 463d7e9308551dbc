package paths

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHomeAndFiles(t *testing.T) {
	t.Setenv(EnvHome, "")
	t.Setenv("HOME", "/home/robot")
	if h, err := Home(); err != nil || h != "/home/robot/.adora" {
		t.Fatalf("default Home = %q, %v", h, err)
	}
	dir := t.TempDir()
	t.Setenv(EnvHome, filepath.Join(dir, "h"))
	h, err := EnsureHome()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(h); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("EnsureHome made %v, %v", fi, err)
	}
	for name, f := range map[string]func() (string, error){
		"token": TokenFile, "coordinator.db": StoreFile, "artifacts": ArtifactsDir,
		"daemon.id":       func() (string, error) { return DaemonIDFile("") },
		"daemon-robot.id": func() (string, error) { return DaemonIDFile("robot") },
	} {
		if got, err := f(); err != nil || got != filepath.Join(h, name) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}
