package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadState(t *testing.T) {
	dir := t.TempDir()
	state := `{"version": 1, "key": "/k", "user": "adora", "cluster": "/c.yml", "coordinator_addr": "10.77.1.1", "coordinator_port": 6013,
  "hosts": [{"name": "h1", "index": 1, "addr": "10.77.1.2", "host_addr": "10.77.1.1", "pid": 12},
            {"name": "h2", "index": 2, "addr": "10.77.2.2", "host_addr": "10.77.2.1", "pid": 0}]}`
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Hosts()) != 2 || b.User != "adora" || b.CoordinatorPort != 6013 {
		t.Fatalf("loaded %+v", b)
	}
	h, err := b.Host("h2")
	if err != nil || h.SSHAddr() != "10.77.2.2:22" {
		t.Fatalf("h2 = %+v, %v", h, err)
	}
	if b.Running("h2") {
		t.Fatal("a host with pid 0 reported running")
	}
	if _, err := b.Host("h9"); err == nil {
		t.Fatal("found a host that does not exist")
	}
}

func TestLoadRejectsOtherVersions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"version": 2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("accepted state version 2")
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("loaded a missing bed")
	}
}
