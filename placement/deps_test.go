package placement

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps placement pure: besides config it imports no
// adora package, and nothing that does I/O on a network or a database.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/adora-rs/adora/placement").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/adora-rs/adora") && dep != "github.com/adora-rs/adora/placement" && dep != "github.com/adora-rs/adora/config":
			t.Errorf("placement imports %s", dep)
		case dep == "net/http" || strings.Contains(dep, "websocket") || strings.Contains(dep, "bbolt") || strings.Contains(dep, "crypto/ssh"):
			t.Errorf("placement imports %s", dep)
		}
	}
}
