package daemon

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// KeepLogs is how many dataflows' log directories a daemon keeps (the
// coordinator remembers about as many finished dataflows).
const KeepLogs = 200

// PruneLogs removes the oldest dataflow log directories under
// stateDir/logs beyond the newest keep (by modification time), skipping
// those of dataflows in active. It returns how many it removed.
func PruneLogs(stateDir string, keep int, active map[string]bool) int {
	root := filepath.Join(stateDir, "logs")
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	type dir struct {
		name string
		mod  time.Time
	}
	var dirs []dir
	for _, e := range ents {
		if !e.IsDir() || active[e.Name()] {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		dirs = append(dirs, dir{e.Name(), info.ModTime()})
	}
	if len(dirs) <= keep {
		return 0
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].mod.After(dirs[j].mod) })
	n := 0
	for _, d := range dirs[keep:] {
		if os.RemoveAll(filepath.Join(root, d.name)) == nil {
			n++
		}
	}
	return n
}
