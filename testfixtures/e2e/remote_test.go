//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/remote"
)

// dialAs opens a product SSH session to host name as user, with its own
// known_hosts file.
func dialAs(t *testing.T, knownHosts, user, name string) (*remote.Machine, error) {
	t.Helper()
	h, err := bed.Host(name)
	if err != nil {
		t.Fatal(err)
	}
	d := remote.NewDialer(nil)
	d.KnownHosts = remote.NewKnownHosts(knownHosts)
	d.AgentSocket = ""
	d.DefaultKeys = nil
	return d.Dial(context.Background(), remote.Target{ID: name, Host: h.Addr, Port: 22, User: user, IdentityFile: bed.Key})
}

func TestRemoteKnownHostsAcceptNewThenRefuseChangedKey(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	m, err := dialAs(t, kh, bed.User, "h3")
	if err != nil {
		t.Fatalf("first contact (accept-new): %v", err)
	}
	m.Close()
	recorded := sh(t, "h3", "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")
	if b := readFile(t, kh); !strings.Contains(b, bedAddr("h3")+" "+recorded) {
		t.Fatalf("known_hosts does not record h3's key %q:\n%s", recorded, b)
	}
	m, err = dialAs(t, kh, bed.User, "h3")
	if err != nil {
		t.Fatalf("second contact with the recorded key: %v", err)
	}
	m.Close()

	// Give h3 a new host key, restore the old one afterwards.
	sh(t, "h3", "cp -a /etc/ssh/ssh_host_ed25519_key /root/hk && cp -a /etc/ssh/ssh_host_ed25519_key.pub /root/hk.pub && "+
		"rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && systemctl restart ssh")
	t.Cleanup(func() {
		sh(t, "h3", "mv -f /root/hk /etc/ssh/ssh_host_ed25519_key && mv -f /root/hk.pub /etc/ssh/ssh_host_ed25519_key.pub && systemctl restart ssh")
	})
	_, err = dialAs(t, kh, bed.User, "h3")
	var changed *remote.HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("changed host key: got %v, want HostKeyChangedError", err)
	}
	if !strings.Contains(err.Error(), "h3") || !strings.Contains(err.Error(), kh) {
		t.Fatalf("error should name the machine and the known_hosts file: %v", err)
	}
	if n := strings.Count(readFile(t, kh), "\n"); n != 1 {
		t.Fatalf("known_hosts changed after a refused key (%d lines)", n)
	}
}

// A machine that is booting (or shutting down) has systemd's /run/nologin:
// sshd refuses every user but root with its text. Dial retries, names the
// reason when the refusal lasts, and succeeds once logins are open.
func TestRemoteLoginRefusedWhileBooting(t *testing.T) {
	sh(t, "h3", "echo 'System is booting up. Unprivileged users are not permitted to log in yet.' >/run/nologin")
	t.Cleanup(func() { sh(t, "h3", "rm -f /run/nologin") })
	kh := filepath.Join(t.TempDir(), "kh")
	_, err := dialAs(t, kh, bed.User, "h3")
	var refused *remote.LoginRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("login while booting: got %v, want LoginRefusedError", err)
	}
	if !strings.Contains(err.Error(), "System is booting up") || !strings.Contains(err.Error(), "h3") {
		t.Fatalf("error should name the machine and give sshd's reason: %v", err)
	}

	// Logins open while Dial is retrying.
	opened := make(chan error, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		_, err := bed.Exec(context.Background(), "h3", "rm -f /run/nologin")
		opened <- err
	}()
	m, err := dialAs(t, kh, bed.User, "h3")
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("dial while logins open up: %v", err)
	}
	m.Close()
}

func TestRemoteInstallFileVerifiedAndAtomic(t *testing.T) {
	m, err := dialAs(t, filepath.Join(t.TempDir(), "kh"), bed.User, "h2")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	payload := make([]byte, 3<<20)
	rand.Read(payload)
	f := remote.BytesFile(payload, 0o755)

	sh(t, "h2", "rm -rf /opt/adora-e2e && install -d -m 0755 /opt/adora-e2e") // root-owned: needs sudo
	t.Cleanup(func() { sh(t, "h2", "rm -rf /opt/adora-e2e") })
	dst := "/opt/adora-e2e/blob"
	changed, err := m.InstallFile(ctx, f, dst)
	if err != nil || !changed {
		t.Fatalf("install into a root-owned directory as %s: changed=%v err=%v", bed.User, changed, err)
	}
	got := sh(t, "h2", "sha256sum /opt/adora-e2e/blob | cut -d' ' -f1; stat -c '%a %U' /opt/adora-e2e/blob; ls -A /opt/adora-e2e | wc -l; ls /tmp | grep -c adora-upload || true")
	want := f.SHA256 + "\n755 root\n1\n0"
	if got != want {
		t.Fatalf("on h2:\n%s\nwant:\n%s", got, want)
	}
	if changed, err := m.InstallFile(ctx, f, dst); err != nil || changed {
		t.Fatalf("reinstall of identical content: changed=%v err=%v", changed, err)
	}
	// Into the user's own directory: no sudo needed.
	home := sh(t, "h2", "getent passwd "+bed.User+" | cut -d: -f6")
	if _, err := m.InstallFile(ctx, remote.BytesFile([]byte("x"), 0o600), home+"/it's here"); err != nil {
		t.Fatal(err)
	}
	if got := sh(t, "h2", "stat -c '%a %U' "+remote.Quote(home+"/it's here")); got != "600 "+bed.User {
		t.Fatalf("user file: %s", got)
	}
}

func TestRemoteQuotingOfHostileValues(t *testing.T) {
	m, err := dialAs(t, filepath.Join(t.TempDir(), "kh"), bed.User, "h1")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	for _, s := range []string{"a b", "it's", "$(touch /tmp/pwned)", "`touch /tmp/pwned`", "x;touch /tmp/pwned", "new\nline", "$HOME", "*", "-n", `"q"`, "a\\b"} {
		out, err := m.Run(ctx, "printf '%s\\0' "+remote.Quote(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if out != s+"\x00" {
			t.Fatalf("remote shell read %q as %q", s, out)
		}
	}
	if got := sh(t, "h1", "ls /tmp/pwned 2>/dev/null | wc -l"); got != "0" {
		t.Fatal("a quoted value was executed on h1")
	}
}

func TestRemoteUnreachableHostNamed(t *testing.T) {
	ctx := context.Background()
	if err := bed.Partition(ctx, "h3"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Heal(context.Background(), "h3") })
	h, _ := bed.Host("h3")
	d := remote.NewDialer(nil)
	d.KnownHosts = remote.NewKnownHosts(filepath.Join(t.TempDir(), "kh"))
	d.ConnectTimeout = 2 * time.Second
	start := time.Now()
	_, err := d.Dial(ctx, remote.Target{ID: "h3", Host: h.Addr, Port: 22, User: bed.User, IdentityFile: bed.Key})
	if err == nil {
		t.Fatal("dial of a partitioned host succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("dial took %v with a 2 s connect timeout", el)
	}
	if !strings.Contains(err.Error(), "h3") || !strings.Contains(err.Error(), h.Addr) {
		t.Fatalf("error does not name the machine: %v", err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := osReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRemoteKeepAliveEndsHungSession: a host cut off in the middle of a
// command makes the command fail after a few unanswered probes instead of
// hanging.
func TestRemoteKeepAliveEndsHungSession(t *testing.T) {
	h, _ := bed.Host("h3")
	d := remote.NewDialer(nil)
	d.KnownHosts = remote.NewKnownHosts(filepath.Join(t.TempDir(), "kh"))
	d.KeepAlive = time.Second
	m, err := d.Dial(context.Background(), remote.Target{ID: "h3", Host: h.Addr, Port: 22, User: bed.User, IdentityFile: bed.Key})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	done := make(chan error, 1)
	go func() {
		_, err := m.Run(context.Background(), "sleep 60")
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if err := bed.Partition(context.Background(), "h3"); err != nil {
		t.Fatal(err)
	}
	defer bed.Heal(context.Background(), "h3")
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the command succeeded on a partitioned host")
		}
		if !errors.Is(err, remote.ErrConnectionLost) {
			t.Fatalf("got %v, want ErrConnectionLost", err)
		}
		t.Logf("gave up after %s: %v", time.Since(start).Round(100*time.Millisecond), err)
	case <-time.After(20 * time.Second):
		t.Fatal("the command still hangs 20 s after the host was cut off")
	}
}
