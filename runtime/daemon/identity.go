package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/uuid"

	"github.com/adora-rs/adora/internal/atomicfile"
)

// identityVersion is the format version of the identity file.
const identityVersion = 1

// identityFile is the persisted identity of a daemon:
//
//	{"version": 1, "daemon_uuid": "<uuid>"}
type identityFile struct {
	Version    int    `json:"version"`
	DaemonUUID string `json:"daemon_uuid"`
}

// LoadIdentity returns the daemon uuid stored at path, creating it (written
// atomically: temp file, fsync, rename) on first use. The uuid never
// changes afterwards, so the coordinator recognises the daemon across
// restarts and reboots.
func LoadIdentity(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return parseIdentity(path, b)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("daemon identity: %w", err)
	}
	id := uuid.NewString()
	data, _ := json.Marshal(identityFile{Version: identityVersion, DaemonUUID: id})
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("daemon identity: %w", err)
	}
	return id, nil
}

func parseIdentity(path string, b []byte) (string, error) {
	var f identityFile
	if err := json.Unmarshal(b, &f); err != nil {
		// A bare uuid is accepted too.
		if u, perr := uuid.Parse(strings.TrimSpace(string(b))); perr == nil {
			return u.String(), nil
		}
		return "", fmt.Errorf("daemon identity %s: %v; delete the file to get a new identity", path, err)
	}
	if f.Version != identityVersion {
		return "", fmt.Errorf("daemon identity %s: format version %d, this adora reads %d", path, f.Version, identityVersion)
	}
	u, err := uuid.Parse(f.DaemonUUID)
	if err != nil {
		return "", fmt.Errorf("daemon identity %s: %v; delete the file to get a new identity", path, err)
	}
	return u.String(), nil
}
