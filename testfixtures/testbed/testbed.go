// Package testbed drives the multi-host test bed of testbed.sh from Go
// tests: it brings the bed up (or reads the one "make testbed-up" left),
// describes its hosts, and injects faults: clean poweroff, power cut,
// reboot, network partition. Exec runs commands on a host as root with the
// system ssh client, independent of the product's SSH layer, so tests can
// use it as an oracle.
//
// Operations that change a host shell out to testbed.sh and need root.
// A Bed is safe for concurrent reads; fault injection on one host at a time.
package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// DefaultDir is the run directory testbed.sh writes (ADORA_TESTBED_DIR).
const DefaultDir = "/run/adora-testbed"

// Host is one test host.
type Host struct {
	Name     string `json:"name"`      // h1, h2, ...: also its machine id in cluster.yml
	Index    int    `json:"index"`     // I in 10.77.I.0/24
	Addr     string `json:"addr"`      // guest address 10.77.I.2
	HostAddr string `json:"host_addr"` // this machine's side 10.77.I.1
	Netns    string `json:"netns"`
	Veth     string `json:"veth"`
	PID      int    `json:"pid"` // systemd-nspawn (0 when off)
	Upper    string `json:"upper"`
}

// SSHAddr is host:22.
func (h Host) SSHAddr() string { return net.JoinHostPort(h.Addr, "22") }

// Bed is a running test bed as described by its state file.
type Bed struct {
	Version         int    `json:"version"`
	Key             string `json:"key"`  // private ed25519 key for root and User
	User            string `json:"user"` // unprivileged user with passwordless sudo
	Cluster         string `json:"cluster"`
	CoordinatorAddr string `json:"coordinator_addr"`
	CoordinatorPort int    `json:"coordinator_port"`
	Rootfs          string `json:"rootfs"`
	HostList        []Host `json:"hosts"`

	dir    string
	script string
	mu     sync.Mutex
}

// Script is the path of testbed.sh next to this file.
func Script() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(f), "testbed.sh")
}

// Load reads the state file of a running bed in dir ("" = DefaultDir or
// $ADORA_TESTBED_DIR).
func Load(dir string) (*Bed, error) {
	if dir == "" {
		dir = os.Getenv("ADORA_TESTBED_DIR")
	}
	if dir == "" {
		dir = DefaultDir
	}
	b := &Bed{dir: dir, script: Script()}
	if err := b.reload(); err != nil {
		return nil, err
	}
	return b, nil
}

// Up boots a bed of n hosts with testbed.sh (reusing one that is already
// up with n hosts) and loads it. It needs root, and takes about a minute
// the first time (rootfs build) and seconds afterwards.
func Up(ctx context.Context, n int) (*Bed, error) {
	if out, err := run(ctx, Script(), "up", strconv.Itoa(n)); err != nil {
		return nil, fmt.Errorf("testbed up %d: %w\n%s", n, err, out)
	}
	return Load("")
}

// Down removes the bed.
func Down(ctx context.Context) error {
	if out, err := run(ctx, Script(), "down"); err != nil {
		return fmt.Errorf("testbed down: %w\n%s", err, out)
	}
	return nil
}

func (b *Bed) reload() error {
	raw, err := os.ReadFile(filepath.Join(b.dir, "state.json"))
	if err != nil {
		return fmt.Errorf("read test bed state (is it up? make testbed-up): %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var nb Bed
	if err := json.Unmarshal(raw, &nb); err != nil {
		return fmt.Errorf("parse test bed state: %w", err)
	}
	if nb.Version != 1 {
		return fmt.Errorf("test bed state version %d, want 1", nb.Version)
	}
	b.Version, b.Key, b.User, b.Cluster = nb.Version, nb.Key, nb.User, nb.Cluster
	b.CoordinatorAddr, b.CoordinatorPort, b.Rootfs, b.HostList = nb.CoordinatorAddr, nb.CoordinatorPort, nb.Rootfs, nb.HostList
	return nil
}

// Hosts returns the hosts in index order.
func (b *Bed) Hosts() []Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Host(nil), b.HostList...)
}

// Host returns the host called name.
func (b *Bed) Host(name string) (Host, error) {
	for _, h := range b.Hosts() {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("test bed has no host %q", name)
}

// Running reports whether name's systemd-nspawn process is alive.
func (b *Bed) Running(name string) bool {
	h, err := b.Host(name)
	if err != nil || h.PID == 0 {
		return false
	}
	return exec.Command("kill", "-0", strconv.Itoa(h.PID)).Run() == nil
}

// Start boots a stopped host and waits until systemd is running.
func (b *Bed) Start(ctx context.Context, name string) error { return b.host(ctx, "start", name) }

// Stop powers a host off cleanly (SIGTERM to systemd-nspawn: systemd shuts
// down its services) and waits for it to exit.
func (b *Bed) Stop(ctx context.Context, name string) error { return b.host(ctx, "stop", name) }

// PowerCut kills a host like a power loss (SIGKILL to systemd-nspawn).
func (b *Bed) PowerCut(ctx context.Context, name string) error { return b.host(ctx, "powercut", name) }

// Reboot stops a host cleanly and boots it again, waiting until systemd is
// running. Its disk (overlay upper dir) survives.
func (b *Bed) Reboot(ctx context.Context, name string) error { return b.host(ctx, "reboot", name) }

// Partition takes the host's link down: nothing reaches it, it reaches
// nothing, its processes keep running.
func (b *Bed) Partition(ctx context.Context, name string) error {
	return b.host(ctx, "partition", name)
}

// Heal undoes Partition.
func (b *Bed) Heal(ctx context.Context, name string) error { return b.host(ctx, "heal", name) }

func (b *Bed) host(ctx context.Context, verb, name string) error {
	if _, err := b.Host(name); err != nil {
		return err
	}
	if out, err := run(ctx, b.script, verb, name); err != nil {
		return fmt.Errorf("testbed %s %s: %w\n%s", verb, name, err, out)
	}
	return b.reload()
}

// Exec runs a shell command on host name as root over ssh (system client,
// host keys not checked) and returns its stdout. Stderr is in the error.
func (b *Bed) Exec(ctx context.Context, name, cmd string) (string, error) {
	return b.ExecAs(ctx, "root", name, cmd)
}

// ExecAs is Exec as user.
func (b *Bed) ExecAs(ctx context.Context, user, name, cmd string) (string, error) {
	h, err := b.Host(name)
	if err != nil {
		return "", err
	}
	c := exec.CommandContext(ctx, "ssh", "-i", b.Key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		user+"@"+h.Addr, cmd)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("%s on %s: %w: %s", cmd, name, err, errb.String())
	}
	return out.String(), nil
}

// WaitFor polls cond every interval until it returns nil or ctx ends; it
// returns the last error on timeout.
func WaitFor(ctx context.Context, interval time.Duration, cond func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, name, args...)
	return c.CombinedOutput()
}
