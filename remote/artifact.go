package remote

import (
	"context"
	"fmt"
	"path"
)

// PushArtifact delivers a node binary for distribute: scp: it creates dir
// (the node's working directory on the machine, absolute) and installs f
// as dir/name with the temp path, checksum and rename of InstallFile, as
// the SSH user (never with sudo). It returns the absolute path on the
// machine.
func PushArtifact(ctx context.Context, m *Machine, f File, dir, name string) (string, error) {
	if !path.IsAbs(dir) {
		return "", fmt.Errorf("push artifact %s: directory %q must be absolute", name, dir)
	}
	if err := validID(name); err != nil {
		return "", fmt.Errorf("push artifact: %w", err)
	}
	dst := path.Join(dir, name)
	// As the session user only: a node path must not reach system files.
	if _, err := m.Run(ctx, Command("mkdir", "-p", dir)); err != nil {
		return "", fmt.Errorf("push artifact %s to %s: %w", name, m.Target.ID, err)
	}
	if _, err := m.InstallUserFile(ctx, f, dst); err != nil {
		return "", fmt.Errorf("push artifact %s: %w", name, err)
	}
	return dst, nil
}
