package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateReusesToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "token")
	tok, created, err := LoadOrCreate(p)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first LoadOrCreate = %q, %v, %v", tok, created, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreate(p)
	if err != nil || created || again != tok {
		t.Fatalf("second LoadOrCreate = %q, %v, %v; want the same token, not created", again, created, err)
	}
}

func TestReadRefusesOpenPermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(p)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "abc") {
		t.Fatalf("Read = %v; want a chmod hint without the token", err)
	}
}

func TestResolveOrder(t *testing.T) {
	home := t.TempDir()
	t.Setenv("ADORA_HOME", home)
	t.Setenv(EnvToken, "")
	if tok, err := Resolve(""); err != nil || tok != "" {
		t.Fatalf("Resolve with nothing = %q, %v", tok, err)
	}
	if err := os.WriteFile(filepath.Join(home, "token"), []byte("fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, _ := Resolve(""); tok != "fromfile" {
		t.Fatalf("Resolve file = %q", tok)
	}
	t.Setenv(EnvToken, "fromenv")
	if tok, _ := Resolve(""); tok != "fromenv" {
		t.Fatalf("Resolve env = %q", tok)
	}
	if tok, _ := Resolve("fromflag"); tok != "fromflag" {
		t.Fatalf("Resolve flag = %q", tok)
	}
}

func TestEqual(t *testing.T) {
	if !Equal("a", "a") || Equal("a", "b") || Equal("", "a") {
		t.Fatal("Equal is wrong")
	}
}
