package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// deniedEnv are variables of the daemon's own environment that never reach
// node processes: the auth token and dynamic-loader injection.
var deniedEnv = map[string]bool{
	"ADORA_AUTH_TOKEN": true,
	"LD_PRELOAD":       true,
	"LD_AUDIT":         true,
}

// BaseEnv is the daemon's environment minus the variables nodes must not
// inherit (ADORA_AUTH_TOKEN, LD_PRELOAD, LD_AUDIT).
func BaseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !deniedEnv[k] {
			out = append(out, kv)
		}
	}
	return out
}

// MapEnv renders m as KEY=VALUE entries sorted by key.
func MapEnv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// MergeEnv merges KEY=VALUE layers; a later layer wins over an earlier one.
// The order of first appearance is kept.
func MergeEnv(layers ...[]string) []string {
	idx := map[string]int{}
	var out []string
	for _, layer := range layers {
		for _, kv := range layer {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// ResolvePath finds the executable of a node: absolute paths are used as
// they are, paths with a slash are relative to dir, and a bare name is a
// file in dir if one exists there, else looked up in PATH.
func ResolvePath(dir, path string) (string, error) {
	switch {
	case path == "":
		return "", errors.New("node has no path")
	case filepath.IsAbs(path):
		return path, nil
	case strings.ContainsRune(path, '/'):
		return filepath.Join(dir, path), nil
	}
	local := filepath.Join(dir, path)
	if st, err := os.Stat(local); err == nil && !st.IsDir() {
		return local, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("resolve node path %q: %w", path, err)
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("resolve node path %q: not in %s and not in PATH", path, dir)
	}
	return p, nil
}
