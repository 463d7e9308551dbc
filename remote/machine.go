package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Machine is an open connection to one machine of the fleet: an SSH client
// (plus SFTP, opened on first use) or, for a local machine, this process.
// Methods may be called from several goroutines; Close releases it.
type Machine struct {
	Target Target
	exec   executor
	log    *slog.Logger
}

// executor is what the operations need from a machine.
type executor interface {
	// run runs cmd with sh -c semantics.
	run(ctx context.Context, cmd string, stdin io.Reader) (stdout, stderr []byte, err error)
	// create creates (truncates) path with mode for writing.
	create(path string, mode os.FileMode) (syncWriter, error)
	close() error
}

type syncWriter interface {
	io.WriteCloser
	Sync() error
}

// Close ends the session.
func (m *Machine) Close() error { return m.exec.close() }

// ExitError is a remote command that ran and exited non-zero.
type ExitError struct {
	Status int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if strings.Contains(msg, "sudo: a password is required") || strings.Contains(msg, "sudo: a terminal is required") {
		return fmt.Sprintf("exit status %d: %s (adora runs sudo -n: give the SSH user passwordless sudo, e.g. \"USER ALL=(ALL) NOPASSWD:ALL\" in /etc/sudoers.d/)", e.Status, firstLine(msg))
	}
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("exit status %d", e.Status)
	}
	return fmt.Sprintf("exit status %d: %s", e.Status, msg)
}

// Run runs a command line (built with Command/Quote) and returns its
// standard output. A non-zero exit is an *ExitError carrying stderr.
func (m *Machine) Run(ctx context.Context, cmd string) (string, error) {
	return m.RunInput(ctx, cmd, nil)
}

// RunInput is Run with stdin.
func (m *Machine) RunInput(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	out, _, err := m.exec.run(ctx, cmd, stdin)
	return string(out), err
}

// Sudo prefixes cmd with "sudo -n" unless the session user is root. The
// command is run by sh so that it may contain && and redirections.
func (m *Machine) Sudo(cmd string) string {
	if m.isRoot() {
		return cmd
	}
	return "sudo -n sh -c " + Quote(cmd)
}

func (m *Machine) isRoot() bool {
	if m.Target.Local {
		return os.Geteuid() == 0
	}
	return m.Target.User == "root"
}

// sshExec runs commands over one SSH client.
type sshExec struct {
	client *ssh.Client
	mu     sync.Mutex
	sftp   *sftp.Client

	kaStop chan struct{} // closed by close: ends keepalive
	kaDone chan struct{} // closed when keepalive returned
	lost   atomic.Bool   // keepalive gave the connection up
}

// ErrConnectionLost is a session whose host stopped answering.
var ErrConnectionLost = errors.New("connection lost: the host stopped answering keepalive probes")

// newSSHExec wraps client and, when interval > 0, probes it every interval
// (keepalive@openssh.com): after three unanswered probes the connection is
// closed, so a command on a host that vanished fails instead of hanging.
func newSSHExec(client *ssh.Client, interval time.Duration) *sshExec {
	e := &sshExec{client: client, kaStop: make(chan struct{}), kaDone: make(chan struct{})}
	if interval <= 0 {
		close(e.kaDone)
		return e
	}
	go e.keepalive(interval, 3)
	return e
}

func (e *sshExec) keepalive(interval time.Duration, maxMissed int) {
	defer close(e.kaDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-e.kaStop:
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		// Returns when answered or when the client is closed.
		go func() { _, _, err := e.client.SendRequest("keepalive@openssh.com", true, nil); res <- err }()
		select {
		case <-e.kaStop:
			return
		case err := <-res:
			if err != nil {
				e.lost.Store(true)
				e.client.Close()
				return
			}
			missed = 0
		case <-time.After(interval):
			if missed++; missed >= maxMissed {
				e.lost.Store(true)
				e.client.Close()
				return
			}
		}
	}
}

func (e *sshExec) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, []byte, error) {
	s, err := e.client.NewSession()
	if err != nil && e.lost.Load() {
		return nil, nil, ErrConnectionLost
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open ssh session: %w", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	if err := s.Start(cmd); err != nil {
		return nil, nil, fmt.Errorf("start remote command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		<-done
		return out.Bytes(), errb.Bytes(), ctx.Err()
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), errb.Bytes(), &ExitError{Status: ee.ExitStatus(), Stderr: errb.String()}
	}
	if err != nil && e.lost.Load() {
		return out.Bytes(), errb.Bytes(), ErrConnectionLost
	}
	if err != nil {
		return out.Bytes(), errb.Bytes(), fmt.Errorf("remote command: %w", err)
	}
	return out.Bytes(), errb.Bytes(), nil
}

func (e *sshExec) sftpClient() (*sftp.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sftp != nil {
		return e.sftp, nil
	}
	c, err := sftp.NewClient(e.client)
	if err != nil {
		return nil, fmt.Errorf("open sftp: %w", err)
	}
	e.sftp = c
	return c, nil
}

func (e *sshExec) create(path string, mode os.FileMode) (syncWriter, error) {
	c, err := e.sftpClient()
	if err != nil {
		return nil, err
	}
	f, err := c.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, fmt.Errorf("sftp create %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return nil, fmt.Errorf("sftp chmod %s: %w", path, err)
	}
	return f, nil
}

func (e *sshExec) close() error {
	e.mu.Lock()
	if e.sftp != nil {
		e.sftp.Close()
		e.sftp = nil
	}
	select {
	case <-e.kaStop:
	default:
		close(e.kaStop)
	}
	e.mu.Unlock()
	err := e.client.Close()
	<-e.kaDone
	return err
}

// localExec runs commands on this machine.
type localExec struct{}

func (localExec) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, []byte, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr, c.Stdin = &out, &errb, stdin
	err := c.Run()
	if ctx.Err() != nil {
		return out.Bytes(), errb.Bytes(), ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), errb.Bytes(), &ExitError{Status: ee.ExitCode(), Stderr: errb.String()}
	}
	return out.Bytes(), errb.Bytes(), err
}

func (localExec) create(path string, mode os.FileMode) (syncWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (localExec) close() error { return nil }
