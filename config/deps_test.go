package config

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps config a leaf: it may import the standard
// library and third-party parsers, never another adora package.
func TestImportDirection(t *testing.T) {
	checkDeps(t, "github.com/adora-rs/adora/config", nil)
}

// checkDeps fails when pkg depends on an adora package outside allowed.
func checkDeps(t *testing.T, pkg string, allowed []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	ok := map[string]bool{pkg: true}
	for _, a := range allowed {
		ok[a] = true
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/adora-rs/adora") && !ok[dep] {
			t.Errorf("%s imports %s", pkg, dep)
		}
	}
}
