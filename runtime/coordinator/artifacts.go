package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

// MaxArtifactSize bounds one uploaded binary (1 GiB).
const MaxArtifactSize = 1 << 30

var validSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidArtifactID reports whether id can name an artifact's build or node:
// letters, digits, '.', '_' and '-', no "..", so it can never leave the
// artifact directory.
func ValidArtifactID(id string) bool {
	return proto.ValidID(id)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// artifactPath checks the ids of r and returns the artifact's file path.
func (c *Coordinator) artifactPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	if c.cfg.ArtifactsDir == "" {
		http.Error(w, "artifact store disabled", http.StatusServiceUnavailable)
		return "", false
	}
	build, node := r.PathValue("build"), r.PathValue("node")
	if !ValidArtifactID(build) || !ValidArtifactID(node) {
		http.Error(w, "invalid build or node id (use letters, digits, '.', '_' and '-')", http.StatusBadRequest)
		return "", false
	}
	return filepath.Join(c.cfg.ArtifactsDir, build, node), true
}

func (c *Coordinator) handleArtifactPut(w http.ResponseWriter, r *http.Request) {
	path, ok := c.artifactPath(w, r)
	if !ok {
		return
	}
	want := strings.ToLower(strings.TrimSpace(r.Header.Get(proto.HeaderSHA256)))
	if !validSHA256.MatchString(want) {
		http.Error(w, "missing or malformed "+proto.HeaderSHA256+" header (64 hex characters)", http.StatusBadRequest)
		return
	}
	size, got, err := storeArtifact(path, http.MaxBytesReader(w, r.Body, MaxArtifactSize), want)
	if err != nil {
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &mb):
			http.Error(w, "artifact too large", http.StatusRequestEntityTooLarge)
		case errors.Is(err, errChecksum):
			http.Error(w, fmt.Sprintf("sha256 mismatch: header says %s, body is %s", want, got), http.StatusBadRequest)
		default:
			c.log.Error("store artifact", "path", path, "err", err)
			http.Error(w, "cannot store artifact", http.StatusInternalServerError)
		}
		return
	}
	c.log.Info("artifact stored", "build", r.PathValue("build"), "node", r.PathValue("node"), "bytes", size, "sha256", got)
	writeJSON(w, http.StatusCreated, map[string]any{"sha256": got, "size": size})
}

var errChecksum = errors.New("sha256 mismatch")

// storeArtifact writes body next to path, verifies its sha256 and renames
// it into place with a sidecar path+".sha256".
func storeArtifact(path string, body io.Reader, want string) (int64, string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, "", err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return 0, "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, "", err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return n, got, errChecksum
	}
	if err := os.WriteFile(path+".sha256", []byte(got+"\n"), 0o600); err != nil {
		return n, got, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, got, err
	}
	return n, got, nil
}

func (c *Coordinator) handleArtifactGet(w http.ResponseWriter, r *http.Request) {
	path, ok := c.artifactPath(w, r)
	if !ok {
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "no such artifact", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "cannot read artifact", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "no such artifact", http.StatusNotFound)
		return
	}
	sum, err := os.ReadFile(path + ".sha256")
	if err != nil {
		http.Error(w, "artifact checksum missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set(proto.HeaderSHA256, strings.TrimSpace(string(sum)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	io.Copy(w, f)
}

// artifactGrace keeps fresh uploads that no dataflow references yet (the
// CLI uploads before it starts the dataflow).
const artifactGrace = time.Hour

// gcArtifacts removes build directories that no stored dataflow
// references and that are older than artifactGrace.
func (c *Coordinator) gcArtifacts(now time.Time) {
	if c.cfg.ArtifactsDir == "" {
		return
	}
	entries, err := os.ReadDir(c.cfg.ArtifactsDir)
	if err != nil {
		return // nothing uploaded yet
	}
	recs, err := c.store.Dataflows()
	if err != nil {
		c.log.Warn("artifact cleanup: read dataflows", "err", err)
		return
	}
	used := map[string]bool{}
	for _, r := range recs {
		for _, a := range r.Artifacts {
			used[a.BuildID] = true
		}
	}
	for _, e := range entries {
		if !e.IsDir() || used[e.Name()] {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < artifactGrace {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.cfg.ArtifactsDir, e.Name())); err != nil {
			c.log.Warn("artifact cleanup", "build", e.Name(), "err", err)
			continue
		}
		c.log.Info("artifact cleanup: removed unreferenced build", "build", e.Name())
	}
}
