package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/adora-rs/adora/runtime/proto"
)

// maxArtifactBytes bounds a downloaded node binary.
const maxArtifactBytes = 2 << 30

// fetchArtifacts downloads the binaries of nodes distributed over HTTP
// (only those that run here) and returns their local paths by node id.
func (d *Daemon) fetchArtifacts(m *proto.Spawn) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range m.Nodes {
		a, ok := m.Artifacts[id]
		if !ok {
			continue
		}
		p, err := d.fetchArtifact(a)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		out[id] = p
	}
	return out, nil
}

// fetchArtifact downloads one artifact to
// <state>/artifacts/<build>/<node>, verifies its sha256 and makes it
// executable; an already verified file is reused.
func (d *Daemon) fetchArtifact(a proto.Artifact) (string, error) {
	if _, err := uuid.Parse(a.BuildID); err != nil {
		return "", fmt.Errorf("artifact: invalid build id %q", a.BuildID)
	}
	if a.NodeID == "" || strings.ContainsAny(a.NodeID, `/\`) || strings.Contains(a.NodeID, "..") {
		return "", fmt.Errorf("artifact: invalid node id %q", a.NodeID)
	}
	dest := filepath.Join(d.stateDir, "artifacts", a.BuildID, a.NodeID)
	if sum, err := fileSHA256(dest); err == nil && sum == strings.ToLower(a.SHA256) {
		return dest, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	ep, err := d.coordinator()
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	url := ep.HTTPURL(proto.PathArtifacts + a.BuildID + "/" + a.NodeID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*proto.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	if ep.Token != "" {
		req.Header.Set("Authorization", "Bearer "+ep.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download artifact %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download artifact %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".download-*")
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, maxArtifactBytes+1))
	if err == nil && n > maxArtifactBytes {
		err = fmt.Errorf("larger than %d bytes", int64(maxArtifactBytes))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download artifact %s: %w", url, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(a.SHA256) {
		return "", fmt.Errorf("download artifact %s: sha256 %s does not match the expected %s", url, got, a.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	return dest, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
