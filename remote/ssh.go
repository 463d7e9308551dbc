package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DefaultConnectTimeout bounds the TCP connect and SSH handshake.
const DefaultConnectTimeout = 10 * time.Second

// DefaultKeepAlive is how often an open session probes its connection: a
// host that stops answering is given up after about four intervals.
const DefaultKeepAlive = 5 * time.Second

// dialAttempts is how many times Dial tries a host whose sshd drops the
// connection during the handshake (0.5 s, 1 s, 2 s apart).
const dialAttempts = 4

// LoginRefusedError is a login sshd ended with a message instead of a
// session: typically "System is booting up" (systemd's /run/nologin, which
// refuses every user but root while a machine boots or shuts down).
type LoginRefusedError struct {
	Message string // what sshd sent before closing, trimmed
	Err     error
}

func (e *LoginRefusedError) Error() string {
	return fmt.Sprintf("sshd refused the login and closed the connection, saying %q (if the machine is booting or shutting down, retry when it is up)", e.Message)
}

func (e *LoginRefusedError) Unwrap() error { return e.Err }

// transientDial reports whether a failed dial is worth retrying: sshd
// accepted the TCP connection and dropped it before the session was up.
// Authentication failures, host key changes and unreachable hosts are not.
func transientDial(err error) bool {
	var changed *HostKeyChangedError
	if errors.As(err, &changed) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// Dialer opens Machines. The zero value is not usable; use NewDialer.
type Dialer struct {
	// KnownHosts checks host keys (accept-new).
	KnownHosts *KnownHosts
	// ConnectTimeout bounds connect + handshake (default 10 s).
	ConnectTimeout time.Duration
	// Logger receives debug lines about connections (never secrets).
	Logger *slog.Logger
	// AgentSocket is the ssh-agent socket ("" = none).
	AgentSocket string
	// KeepAlive is the interval of the connection probes; three unanswered
	// probes close the connection (default DefaultKeepAlive, < 0 = off).
	KeepAlive time.Duration
	// DefaultKeys are tried when a target names no identity file and no
	// agent offers a key that works (default ~/.ssh/id_ed25519, id_rsa).
	DefaultKeys []string
}

// NewDialer returns a Dialer with the defaults: known hosts from
// $ADORA_KNOWN_HOSTS or ~/.ssh/known_hosts, the agent from SSH_AUTH_SOCK,
// ~/.ssh/id_ed25519 and ~/.ssh/id_rsa.
func NewDialer(log *slog.Logger) *Dialer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	home, _ := os.UserHomeDir()
	kh := os.Getenv("ADORA_KNOWN_HOSTS")
	if kh == "" {
		kh = filepath.Join(home, ".ssh", "known_hosts")
	}
	return &Dialer{
		KnownHosts:     NewKnownHosts(kh),
		ConnectTimeout: DefaultConnectTimeout,
		Logger:         log,
		AgentSocket:    os.Getenv("SSH_AUTH_SOCK"),
		DefaultKeys:    []string{filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_rsa")},
	}
}

// Dial connects to t: over SSH, or directly when t.Local. The caller owns
// the returned Machine and must Close it.
func (d *Dialer) Dial(ctx context.Context, t Target) (*Machine, error) {
	if t.Local {
		return &Machine{Target: t, exec: localExec{}, log: d.Logger}, nil
	}
	if err := ValidHost("host", t.Host); err != nil {
		return nil, fmt.Errorf("machine %s: %w", t.ID, err)
	}
	cl, err := d.dialRetry(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s): %w", t.ID, t, err)
	}
	ka := d.KeepAlive
	if ka == 0 {
		ka = DefaultKeepAlive
	}
	return &Machine{Target: t, exec: newSSHExec(cl, ka), log: d.Logger}, nil
}

// dialRetry is dialSSH, tried again while sshd drops the connection
// before the session is up (transientDial): it is starting, restarting,
// refusing logins while the machine boots, or shedding load
// (MaxStartups). It returns the last error.
func (d *Dialer) dialRetry(ctx context.Context, t Target) (*ssh.Client, error) {
	for attempt, wait := 1, time.Second/2; ; attempt, wait = attempt+1, wait*2 {
		cl, err := d.dialSSH(ctx, t)
		if err == nil || attempt == dialAttempts || !transientDial(err) {
			return cl, err
		}
		d.Logger.Debug("ssh connection dropped, retrying", "machine", t.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

func (d *Dialer) dialSSH(ctx context.Context, t Target) (*ssh.Client, error) {
	auths, closeAgent, err := d.auth(t)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	algos, err := d.KnownHosts.algorithms(t.Addr())
	if err != nil {
		return nil, err
	}
	timeout := d.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	var banner string
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              auths,
		HostKeyCallback:   d.KnownHosts.callback(),
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
		BannerCallback:    func(m string) error { banner += m; return nil },
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(dctx, "tcp", t.Addr())
	if err != nil {
		return nil, err
	}
	// Bound the handshake too; cleared once the session is up.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(dctx, func() { _ = conn.SetDeadline(time.Now()) })
	c, chans, reqs, err := ssh.NewClientConn(conn, t.Addr(), cfg)
	stop()
	if err != nil {
		conn.Close()
		var changed *HostKeyChangedError
		if errors.As(err, &changed) {
			return nil, changed
		}
		if b := strings.TrimSpace(banner); b != "" && errors.Is(err, io.EOF) {
			return nil, &LoginRefusedError{Message: b, Err: err}
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	d.Logger.Debug("ssh connected", "machine", t.ID, "target", t.String())
	return ssh.NewClient(c, chans, reqs), nil
}

// auth gathers the authentication methods for t: its identity file if it
// names one, else the agent's keys and the default key files. It never
// prompts: encrypted key files are skipped with a hint to use the agent.
func (d *Dialer) auth(t Target) ([]ssh.AuthMethod, func(), error) {
	noop := func() {}
	if t.IdentityFile != "" {
		s, err := loadKey(expandHome(t.IdentityFile))
		if err != nil {
			return nil, noop, err
		}
		return []ssh.AuthMethod{ssh.PublicKeys(s)}, noop, nil
	}
	var signers []ssh.Signer
	closeAgent := noop
	if d.AgentSocket != "" {
		if conn, err := net.Dial("unix", d.AgentSocket); err == nil {
			closeAgent = func() { conn.Close() }
			if ss, err := agent.NewClient(conn).Signers(); err == nil {
				signers = append(signers, ss...)
			}
		}
	}
	for _, p := range d.DefaultKeys {
		if s, err := loadKey(p); err == nil {
			signers = append(signers, s)
		}
	}
	if len(signers) == 0 {
		closeAgent()
		return nil, noop, errors.New("no SSH key: set identity_file in cluster.yml, start ssh-agent (SSH_AUTH_SOCK) or create ~/.ssh/id_ed25519")
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}

func loadKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("identity file %s is encrypted: load it into ssh-agent (ssh-add) instead", path)
	}
	if err != nil {
		return nil, fmt.Errorf("parse identity file %s: %w", path, err)
	}
	return s, nil
}

func expandHome(p string) string {
	if len(p) >= 2 && p[:2] == "~/" {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}
