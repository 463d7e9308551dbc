package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// File is content to install on a machine.
type File struct {
	// Open returns the content; it is called once per installation.
	Open func() (io.ReadCloser, error)
	// SHA256 is the lowercase hex digest of the content.
	SHA256 string
	Mode   os.FileMode
}

// BytesFile is a File holding b.
func BytesFile(b []byte, mode os.FileMode) File {
	sum := sha256.Sum256(b)
	return File{
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		SHA256: hex.EncodeToString(sum[:]),
		Mode:   mode,
	}
}

// LocalFile is a File read from path on this machine; its digest is
// computed now.
func LocalFile(p string, mode os.FileMode) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return File{}, fmt.Errorf("read %s: %w", p, err)
	}
	return File{
		Open:   func() (io.ReadCloser, error) { return os.Open(p) },
		SHA256: hex.EncodeToString(h.Sum(nil)),
		Mode:   mode,
	}, nil
}

// RemoteSHA256 returns the sha256 of file p on the machine, or "" when it
// does not exist. It reads with sudo when needed.
func (m *Machine) RemoteSHA256(ctx context.Context, p string) (string, error) {
	out, err := m.Run(ctx, m.Sudo("if [ -e "+Quote(p)+" ]; then sha256sum "+Quote(p)+"; fi"))
	if err != nil {
		return "", fmt.Errorf("checksum %s: %w", p, err)
	}
	return parseSHA256Sum(out)
}

// parseSHA256Sum reads the digest from sha256sum's output ("" if empty).
func parseSHA256Sum(out string) (string, error) {
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", nil
	}
	d := strings.TrimPrefix(f[0], `\`)
	if len(d) != 64 {
		return "", fmt.Errorf("unexpected sha256sum output %q", firstLine(out))
	}
	if _, err := hex.DecodeString(d); err != nil {
		return "", fmt.Errorf("unexpected sha256sum output %q", firstLine(out))
	}
	return strings.ToLower(d), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// ChecksumMismatchError is an installed temp file whose digest differs from
// the source: the rename was not done.
type ChecksumMismatchError struct {
	Path      string
	Want, Got string
}

func (e *ChecksumMismatchError) Error() string {
	return fmt.Sprintf("checksum mismatch for %s: want sha256 %s, got %s", e.Path, e.Want, e.Got)
}

// InstallFile puts f at dst atomically: it uploads to a temporary path,
// fsyncs it, verifies the sha256 on the machine, then renames it over dst
// (with sudo -n when the session user cannot write dst's directory). It
// reports whether dst changed; when dst already has the digest it does
// nothing. The directory must exist.
func (m *Machine) InstallFile(ctx context.Context, f File, dst string) (changed bool, err error) {
	return m.installFileAs(ctx, f, dst, true)
}

// InstallUserFile is InstallFile without sudo: dst's directory must be
// writable by the session user. Node artifacts use it, so that a path in a
// dataflow can never replace a system file.
func (m *Machine) InstallUserFile(ctx context.Context, f File, dst string) (changed bool, err error) {
	return m.installFileAs(ctx, f, dst, false)
}

func (m *Machine) installFileAs(ctx context.Context, f File, dst string, sudo bool) (changed bool, err error) {
	if !path.IsAbs(dst) {
		return false, fmt.Errorf("install %s: destination must be an absolute path", dst)
	}
	cur, err := m.RemoteSHA256(ctx, dst)
	if err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	if cur == f.SHA256 {
		return false, nil
	}
	if !sudo && !m.isRoot() && !m.writable(ctx, path.Dir(dst)) {
		return false, fmt.Errorf("install %s on %s: %s cannot write %s (no sudo for this file)", dst, m.Target.ID, m.Target.User, path.Dir(dst))
	}
	if err := m.installFile(ctx, f, dst); err != nil {
		return false, fmt.Errorf("install %s on %s: %w", dst, m.Target.ID, err)
	}
	return true, nil
}

func (m *Machine) installFile(ctx context.Context, f File, dst string) error {
	dir, base := path.Split(dst)
	suffix, err := randSuffix()
	if err != nil {
		return err
	}
	tmp := path.Join(dir, "."+base+".adora-tmp-"+suffix)
	direct := m.isRoot() || m.writable(ctx, dir)
	stage := tmp
	if !direct {
		out, err := m.Run(ctx, "mktemp /tmp/adora-upload.XXXXXXXX")
		if err != nil {
			return fmt.Errorf("create staging file: %w", err)
		}
		stage = strings.TrimSpace(out)
		defer m.Run(context.WithoutCancel(ctx), "rm -f "+Quote(stage)) //nolint:errcheck // best effort
	}
	if err := m.upload(f, stage); err != nil {
		return err
	}
	if !direct {
		// Copy into the destination directory as root, keeping the mode.
		cp := fmt.Sprintf("install -m %o %s %s", f.Mode.Perm(), Quote(stage), Quote(tmp))
		if _, err := m.Run(ctx, m.Sudo(cp)); err != nil {
			return fmt.Errorf("copy into %s: %w", dir, err)
		}
	}
	cleanup := func() { m.Run(context.WithoutCancel(ctx), m.Sudo("rm -f "+Quote(tmp))) } //nolint:errcheck // best effort
	got, err := m.syncAndSum(ctx, tmp)
	if err != nil {
		cleanup()
		return err
	}
	if got != f.SHA256 {
		cleanup()
		return &ChecksumMismatchError{Path: dst, Want: f.SHA256, Got: got}
	}
	if _, err := m.Run(ctx, m.Sudo("mv -f "+Quote(tmp)+" "+Quote(dst))); err != nil {
		cleanup()
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

// syncAndSum flushes p to disk and returns its sha256 as read back from disk.
func (m *Machine) syncAndSum(ctx context.Context, p string) (string, error) {
	out, err := m.Run(ctx, m.Sudo("sync "+Quote(p)+" && sha256sum "+Quote(p)))
	if err != nil {
		return "", fmt.Errorf("verify %s: %w", p, err)
	}
	sum, err := parseSHA256Sum(out)
	if err == nil && sum == "" {
		err = fmt.Errorf("verify %s: no checksum", p)
	}
	return sum, err
}

func (m *Machine) writable(ctx context.Context, dir string) bool {
	_, err := m.Run(ctx, "test -w "+Quote(dir))
	return err == nil
}

// upload writes f to p with SFTP (or locally) and fsyncs it.
func (m *Machine) upload(f File, p string) error {
	src, err := f.Open()
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	w, err := m.exec.create(p, f.Mode.Perm())
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if _, err := io.Copy(w, src); err != nil {
		w.Close()
		return fmt.Errorf("upload to %s: %w", p, err)
	}
	if err := w.Sync(); err != nil && !isUnsupported(err) {
		w.Close()
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("upload to %s: %w", p, err)
	}
	return nil
}

// isUnsupported reports an SFTP server without the fsync extension; the
// remote "sync FILE" that follows covers it.
func isUnsupported(err error) bool {
	return strings.Contains(err.Error(), "unsupported") || strings.Contains(err.Error(), "not supported")
}

func randSuffix() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
