// Package deptest keeps adora's import direction one way: leaves (config,
// state, proto) <- logic (plan, placement, transport) <- orchestration
// (apply, coordinator, daemon) <- command/main.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/adora-rs/adora"

// rules lists, per package pattern, import path prefixes it must never
// depend on (directly or transitively).
var rules = []struct {
	pkg       string
	forbidden []string
}{
	{module + "/plan/...", []string{"golang.org/x/crypto/ssh", "github.com/pkg/sftp", "github.com/gorilla/websocket", "go.etcd.io/bbolt", module + "/remote", module + "/runtime", module + "/apply", module + "/command"}},
	{module + "/placement/...", []string{"net/http", "golang.org/x/crypto/ssh", module + "/runtime", module + "/remote", module + "/command"}},
	{module + "/config/...", []string{"net/http", "golang.org/x/crypto/ssh", module + "/runtime", module + "/remote", module + "/plan", module + "/apply", module + "/command"}},
	{module + "/state/...", []string{"golang.org/x/crypto/ssh", "github.com/gorilla/websocket", module + "/remote", module + "/runtime", module + "/apply", module + "/command"}},
	{module + "/nodes/...", []string{module + "/plan", module + "/apply", module + "/runtime", module + "/command", module + "/remote", "github.com/gorilla/websocket", "go.etcd.io/bbolt"}},
	{module + "/transport/...", []string{module + "/plan", module + "/apply", module + "/runtime", module + "/command", module + "/remote"}},
	{module + "/runtime/...", []string{module + "/command", module + "/apply", module + "/plan"}},
	{module + "/apply/...", []string{module + "/command"}},
}

func TestImportDirection(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", r.pkg).CombinedOutput()
			if err != nil {
				if strings.Contains(string(out), "matched no packages") {
					return
				}
				t.Fatalf("go list %s: %v\n%s", r.pkg, err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range r.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s depends on %s (forbidden: %s)", r.pkg, dep, f)
					}
				}
			}
		})
	}
}
