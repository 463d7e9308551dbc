package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestParseObservation(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	out := "arch=x86_64\nunit_present=1\nunit_active=active\nunit_enabled=enabled\n" +
		"unit_sha256=" + sum + "\nbinary_sha256=" + sum + "\nbinary_version=adora 1.2.3 (protocol 1, linux/amd64)\nadhoc_pid=42\nfuture_key=x\n"
	o, err := ParseObservation(out)
	if err != nil {
		t.Fatal(err)
	}
	if !o.UnitPresent || !o.Active() || !o.Enabled() || o.UnitSHA256 != sum || o.BinarySHA256 != sum ||
		o.EnvSHA256 != "" || o.AdhocPID != 42 || o.Arch != "x86_64" || !strings.HasPrefix(o.BinaryVer, "adora 1.2.3") {
		t.Fatalf("unexpected observation %+v", o)
	}

	o, err = ParseObservation("arch=aarch64\nunit_active=inactive\nunit_enabled=\n")
	if err != nil {
		t.Fatal(err)
	}
	if o.UnitPresent || o.Active() || o.Enabled() || o.AdhocPID != 0 {
		t.Fatalf("absent unit observed as %+v", o)
	}

	for _, bad := range []string{"", "unit_active=active\n", "arch=x\nadhoc_pid=-1\n", "arch=x\nbinary_sha256=zz\n"} {
		if _, err := ParseObservation(bad); err == nil {
			t.Errorf("ParseObservation(%q) succeeded", bad)
		}
	}
}

func FuzzParseObservation(f *testing.F) {
	f.Add("arch=x86_64\nunit_present=1\nadhoc_pid=3\n")
	f.Add("unit_sha256=\\" + strings.Repeat("0", 64) + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseObservation(s)
		if err == nil && o.Arch == "" {
			t.Fatal("accepted an observation without architecture")
		}
	})
}

func TestELFMachine(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := LocalFile(exe, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FileArch(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "riscv64": "riscv64"}[runtime.GOARCH]
	if got != want {
		t.Fatalf("test binary arch = %q, want %q", got, want)
	}

	hdr := func(class, data byte, typ, mach uint16) []byte {
		b := make([]byte, 64)
		copy(b, "\x7fELF")
		b[4], b[5] = class, data
		b[16], b[17] = byte(typ), byte(typ>>8)
		b[18], b[19] = byte(mach), byte(mach>>8)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"arm64", hdr(2, 1, 2, emARM64), "aarch64"},
		{"arm", hdr(1, 1, 3, emARM), "arm"},
		{"relocatable", hdr(2, 1, 1, emX86_64), ""},
		{"script", []byte("#!/bin/sh\nexit 1\n"), ""},
		{"short", []byte("\x7fELF"), ""},
		{"unknown machine", hdr(2, 1, 2, 9999), ""},
		{"bad byte order", hdr(2, 7, 2, emX86_64), ""},
	} {
		got, err := ELFMachine(tc.b)
		if (err == nil) != (tc.want != "") || got != tc.want {
			t.Errorf("%s: ELFMachine = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func FuzzELFMachine(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ELFMachine(b)
		if err == nil && (a == "" || len(b) < 20) {
			t.Fatalf("ELFMachine(%q) = %q without error", b, a)
		}
	})
}

func TestArchMatches(t *testing.T) {
	for _, tc := range []struct {
		elf, uname string
		ok         bool
	}{
		{"x86_64", "x86_64\n", true},
		{"aarch64", "arm64", true},
		{"aarch64", "aarch64", true},
		{"arm", "armv7l", true},
		{"arm", "arm64", false},
		{"x86_64", "aarch64", false},
		{"aarch64", "x86_64", false},
		{"i386", "i686", true},
	} {
		if got := ArchMatches(tc.elf, tc.uname); got != tc.ok {
			t.Errorf("ArchMatches(%q, %q) = %v", tc.elf, tc.uname, got)
		}
	}
}

func TestForEachBoundsParallelism(t *testing.T) {
	items := make([]int, 25)
	for i := range items {
		items[i] = i
	}
	var cur, peak atomic.Int32
	errs := ForEach(context.Background(), 3, items, func(_ context.Context, i int) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		cur.Add(-1)
		if i%5 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak parallelism %d, want 2..3", p)
	}
	for i, err := range errs {
		if (err != nil) != (i%5 == 0) {
			t.Fatalf("item %d: err %v", i, err)
		}
	}
}

func TestForEachStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Int32
	errs := ForEach(ctx, 1, []int{0, 1, 2, 3}, func(_ context.Context, i int) error {
		ran.Add(1)
		if i == 1 {
			cancel()
		}
		return nil
	})
	if ran.Load() > 3 {
		t.Fatalf("%d items ran after cancel", ran.Load())
	}
	if !errors.Is(errs[3], context.Canceled) {
		t.Fatalf("last item error %v, want context.Canceled", errs[3])
	}
}

func TestParseAdhocStart(t *testing.T) {
	for out, want := range map[string]AdhocResult{
		"systemd\n":    {Status: AdhocSystemd},
		"running 77\n": {Status: AdhocAlreadyRunning, PID: 77},
		"started 1234": {Status: AdhocStarted, PID: 1234},
		"started nope": {},
		"weird output": {},
		"running -3\n": {},
	} {
		got, err := parseAdhocStart(out, AdhocResult{})
		if (err != nil) != (want.Status == "") || got != want {
			t.Errorf("parseAdhocStart(%q) = %+v, %v; want %+v", out, got, err, want)
		}
	}
}

func TestParseSHA256Sum(t *testing.T) {
	d := strings.Repeat("0f", 32)
	for in, want := range map[string]string{
		"":                             "",
		d + "  /usr/local/bin/adora\n": d,
		"\\" + d + "  /weird\\nname":   d,
		strings.ToUpper(d) + "  x":     d,
	} {
		got, err := parseSHA256Sum(in)
		if err != nil || got != want {
			t.Errorf("parseSHA256Sum(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := parseSHA256Sum("sha256sum: x: No such file"); err == nil {
		t.Error("accepted an error message as a digest")
	}
}

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKnownHostsAcceptNew checks the decision logic on a file: unknown
// hosts are recorded, recorded keys accepted, changed keys refused. The
// handshake itself is exercised against real sshd in the e2e suite.
func TestKnownHostsAcceptNew(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "known_hosts")
	kh := NewKnownHosts(p)
	cb := kh.callback()
	addr := &net.TCPAddr{IP: net.ParseIP("10.77.1.2"), Port: 22}
	k1, k2 := newHostKey(t), newHostKey(t)

	if err := cb("10.77.1.2:22", addr, k1); err != nil {
		t.Fatalf("unknown host refused: %v", err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts mode %v, want 0600", st.Mode().Perm())
	}
	if err := cb("10.77.1.2:22", addr, k1); err != nil {
		t.Fatalf("recorded key refused: %v", err)
	}
	err = cb("10.77.1.2:22", addr, k2)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("changed key: got %v, want HostKeyChangedError", err)
	}
	if !strings.Contains(err.Error(), p+":1") || !strings.Contains(err.Error(), "10.77.1.2") {
		t.Fatalf("error does not name host and file line: %v", err)
	}
	// Another port of the same host is another entry ([host]:port).
	if err := cb("10.77.1.2:2222", &net.TCPAddr{IP: addr.IP, Port: 2222}, k2); err != nil {
		t.Fatalf("new port refused: %v", err)
	}
	algos, err := kh.algorithms("10.77.1.2:22")
	if err != nil || len(algos) != 1 || algos[0] != ssh.KeyAlgoED25519 {
		t.Fatalf("algorithms = %v, %v; want [ssh-ed25519]", algos, err)
	}
	if algos, _ := kh.algorithms("10.9.9.9:22"); algos != nil {
		t.Fatalf("algorithms for an unknown host = %v, want nil", algos)
	}
	b, _ := os.ReadFile(p)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Fatalf("known_hosts has %d lines, want 2:\n%s", n, b)
	}
}
