package remote

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KnownHosts checks server host keys against an OpenSSH known_hosts file
// with accept-new semantics: a host that has no entry is recorded on first
// contact; a host whose recorded key differs is refused. Safe for
// concurrent use by one process (appends are serialised).
type KnownHosts struct {
	path string
	mu   sync.Mutex
}

// NewKnownHosts uses the known_hosts file at path (created with mode 0600,
// and its directory with 0700, on first write).
func NewKnownHosts(path string) *KnownHosts { return &KnownHosts{path: path} }

// Path is the file this KnownHosts reads and appends to.
func (k *KnownHosts) Path() string { return k.path }

// HostKeyChangedError is returned when a host presents a key that differs
// from the one recorded for it: possibly an attack, possibly a reinstall.
type HostKeyChangedError struct {
	Host string
	File string
	Line int
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("host key for %s changed (recorded in %s:%d); refusing to connect: if the host was reinstalled, remove that line and retry", e.Host, e.File, e.Line)
}

// callback returns the ssh.HostKeyCallback for one dial.
func (k *KnownHosts) callback() ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		k.mu.Lock()
		defer k.mu.Unlock()
		check, err := k.loadLocked()
		if err != nil {
			return err
		}
		err = check(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return k.appendLocked(hostname, key)
		case errors.As(err, &ke):
			return &HostKeyChangedError{Host: hostname, File: ke.Want[0].Filename, Line: ke.Want[0].Line}
		default:
			return err
		}
	}
}

// algorithms returns the host key algorithms to offer for addr: those of the
// keys recorded for it (so that a host with an ed25519 entry is asked for
// its ed25519 key, not another type that would look like a change), or nil
// (the library default) when none is recorded.
func (k *KnownHosts) algorithms(addr string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	check, err := k.loadLocked()
	if err != nil {
		return nil, err
	}
	err = check(addr, &net.TCPAddr{}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil, nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		for _, a := range algorithmsForKeyType(w.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

func algorithmsForKeyType(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

// probeKey is a key no host has; checking it lists the recorded keys.
type probeKey struct{}

func (probeKey) Type() string                        { return "adora-probe" }
func (probeKey) Marshal() []byte                     { return []byte("adora-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

func (k *KnownHosts) loadLocked() (ssh.HostKeyCallback, error) {
	if _, err := os.Stat(k.path); errors.Is(err, os.ErrNotExist) {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(k.path)
	if err != nil {
		return nil, fmt.Errorf("read known hosts %s: %w", k.path, err)
	}
	return cb, nil
}

func (k *KnownHosts) appendLocked(hostname string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	f, err := os.OpenFile(k.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	var line bytes.Buffer
	// Make sure the new entry starts on its own line.
	if st, err := f.Stat(); err == nil && st.Size() > 0 && !endsWithNewline(k.path) {
		line.WriteByte('\n')
	}
	line.WriteString(knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
	line.WriteByte('\n')
	if _, err := f.Write(line.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("record host key in %s: %w", k.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("record host key in %s: %w", k.path, err)
	}
	return f.Close()
}

func endsWithNewline(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && len(b) > 0 && b[len(b)-1] == '\n'
}
