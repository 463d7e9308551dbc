package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/adora-rs/adora/config"
)

// fakeFile is what fakeMachine knows of a file: its digest, mode and
// content.
type fakeFile struct {
	sha  string
	mode os.FileMode
	data []byte
}

// fakeMachine is an executor that answers the commands InstallDaemon runs
// (id, uname, $HOME, sha256sum, mv) from memory and records every command
// line, so a test can see what ran, in which order, and what was written.
type fakeMachine struct {
	mu    sync.Mutex
	arch  string
	users map[string]string // user -> uid
	files map[string]fakeFile
	cmds  []string
	// idStatus, when set, is the exit status of every id command.
	idStatus int
}

var (
	sumRE = regexp.MustCompile(`sha256sum ([^\s;]+)`)
	mvRE  = regexp.MustCompile(`^mv -f (\S+) (\S+)$`)
	idRE  = regexp.MustCompile(`^id -u (\S+)$`)
)

func (f *fakeMachine) run(_ context.Context, cmd string, _ io.Reader) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	if inner, ok := strings.CutPrefix(cmd, "sudo -n sh -c '"); ok {
		cmd = strings.TrimSuffix(inner, "'")
	}
	switch {
	case idRE.MatchString(cmd):
		u := idRE.FindStringSubmatch(cmd)[1]
		if uid, ok := f.users[u]; ok {
			return []byte(uid + "\n"), nil, nil
		}
		if f.idStatus != 0 {
			return nil, nil, &ExitError{Status: f.idStatus}
		}
		return nil, nil, &ExitError{Status: 1, Stderr: "id: '" + u + "': no such user"}
	case cmd == "uname -m":
		return []byte(f.arch + "\n"), nil, nil
	case strings.Contains(cmd, `"$HOME"`):
		return []byte("/home/tester"), nil, nil
	case mvRE.MatchString(cmd):
		m := mvRE.FindStringSubmatch(cmd)
		f.files[m[2]] = f.files[m[1]]
		delete(f.files, m[1])
	case sumRE.MatchString(cmd):
		p := sumRE.FindStringSubmatch(cmd)[1]
		if ff, ok := f.files[p]; ok {
			return []byte(ff.sha + "  " + p + "\n"), nil, nil
		}
	}
	return nil, nil, nil
}

type fakeWriter struct {
	bytes.Buffer
	f    *fakeMachine
	path string
	mode os.FileMode
}

func (w *fakeWriter) Sync() error { return nil }

func (w *fakeWriter) Close() error {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	sum := sha256.Sum256(w.Bytes())
	w.f.files[w.path] = fakeFile{sha: hex.EncodeToString(sum[:]), mode: w.mode, data: bytes.Clone(w.Bytes())}
	return nil
}

func (f *fakeMachine) create(p string, mode os.FileMode) (syncWriter, error) {
	return &fakeWriter{f: f, path: p, mode: mode}, nil
}

func (f *fakeMachine) close() error { return nil }

// newFakeMachine returns a machine (session user sessionUser) with users
// and the adora binary bin already installed, so that only the daemon's
// own files are written.
func newFakeMachine(t *testing.T, sessionUser string, users map[string]string) (*Machine, *fakeMachine, File) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := LocalFile(exe, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := FileArch(bin)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMachine{arch: arch, users: users, files: map[string]fakeFile{BinaryPath: {sha: bin.SHA256, mode: 0o755}}}
	return &Machine{Target: Target{ID: "h1", Host: "10.0.0.2", User: sessionUser}, exec: f}, f, bin
}

func indexOf(cmds []string, sub string) int {
	for i, c := range cmds {
		if strings.Contains(c, sub) {
			return i
		}
	}
	return -1
}

func TestInstallDaemonRunAsUser(t *testing.T) {
	for _, session := range []string{"root", "ubuntu"} {
		t.Run("session "+session, func(t *testing.T) {
			m, fm, bin := newFakeMachine(t, session, map[string]string{"root": "0", "ubuntu": "1000", "robot": "1001"})
			spec := DaemonSpec{MachineID: "h1", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, Token: "tok3n", RunAs: "robot"}
			res, err := InstallDaemon(context.Background(), m, spec, bin)
			if err != nil {
				t.Fatal(err)
			}
			if !res.UnitChanged || !res.EnvChanged || res.BinaryChanged || !res.Restarted {
				t.Fatalf("result %+v", res)
			}
			id, dirs := indexOf(fm.cmds, "id -u robot"), indexOf(fm.cmds, "install -d")
			if id < 0 || dirs < 0 || id > dirs {
				t.Fatalf("the user must be checked before anything is created:\n%s", strings.Join(fm.cmds, "\n"))
			}
			if fm.cmds[id] != "id -u robot" {
				t.Fatalf("the user check runs with sudo or extra words: %q", fm.cmds[id])
			}
			if d := fm.cmds[dirs]; !strings.Contains(d, "install -d -m 0755 /etc/adora /var/lib/adora /var/lib/adora/h1 /usr/local/bin && chown -R -h robot: /var/lib/adora/h1") {
				t.Fatalf("directories: %q", d)
			}
			if session != "root" && !strings.HasPrefix(fm.cmds[dirs], "sudo -n sh -c ") {
				t.Fatalf("directories are not created with sudo: %q", fm.cmds[dirs])
			}
			for _, c := range fm.cmds {
				if _, chown, ok := strings.Cut(c, "chown"); ok && strings.Contains(chown, EnvDir) {
					t.Fatalf("the environment file (the token) must stay root's: %q", c)
				}
			}
			env := fm.files[EnvPath("h1")]
			if env.mode != 0o600 || !strings.Contains(string(env.data), "ADORA_AUTH_TOKEN=tok3n") {
				t.Fatalf("environment file: mode %o\n%s", env.mode, env.data)
			}
			unit := string(fm.files[UnitPath("h1")].data)
			if !strings.Contains(unit, "\n[Service]\nType=simple\nUser=robot\n") || strings.Count(unit, "User=") != 1 {
				t.Fatalf("unit:\n%s", unit)
			}
			if strings.Contains(unit, "tok3n") {
				t.Fatal("the token is in the unit file")
			}
		})
	}
}

func TestInstallDaemonRunAsRoot(t *testing.T) {
	m, fm, bin := newFakeMachine(t, "root", map[string]string{"root": "0"})
	spec := DaemonSpec{MachineID: "h1", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, RunAs: RootUser}
	if _, err := InstallDaemon(context.Background(), m, spec, bin); err != nil {
		t.Fatal(err)
	}
	if unit := string(fm.files[UnitPath("h1")].data); strings.Contains(unit, "User=") || unit == "" {
		t.Fatalf("a root daemon's unit has no User= line:\n%s", unit)
	}
	// A home left by an earlier install as another user goes back to root.
	if i := indexOf(fm.cmds, "chown -R -h root: /var/lib/adora/h1"); i < 0 {
		t.Fatalf("the home is not given back to root:\n%s", strings.Join(fm.cmds, "\n"))
	}
}

func TestInstallDaemonMissingUserChangesNothing(t *testing.T) {
	m, fm, bin := newFakeMachine(t, "ubuntu", map[string]string{"root": "0", "ubuntu": "1000"})
	before := len(fm.files)
	spec := DaemonSpec{MachineID: "h1", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, Token: "tok3n", RunAs: "ghost"}
	_, err := InstallDaemon(context.Background(), m, spec, bin)
	var mu *MissingUserError
	if !errors.As(err, &mu) || mu.User != "ghost" || mu.Machine != "h1" {
		t.Fatalf("got %v, want a *MissingUserError", err)
	}
	if want := "machine h1: user ghost given by run_as does not exist; create it or set run_as"; err.Error() != want {
		t.Fatalf("message\n got %q\nwant %q", err, want)
	}
	if len(fm.cmds) != 1 || fm.cmds[0] != "id -u ghost" || len(fm.files) != before {
		t.Fatalf("a missing user must change nothing; ran:\n%s", strings.Join(fm.cmds, "\n"))
	}
}

func TestCheckRunAs(t *testing.T) {
	m, fm, _ := newFakeMachine(t, "ubuntu", map[string]string{"ubuntu": "1000", "odd": "not-a-uid"})
	ctx := context.Background()
	if err := CheckRunAs(ctx, m, "h1", "ubuntu"); err != nil {
		t.Fatal(err)
	}
	if err := CheckRunAs(ctx, m, "h1", "odd"); err == nil || !strings.Contains(err.Error(), "unexpected output of id -u") {
		t.Fatalf("odd id output: %v", err)
	}
	// id itself failing (not found: 127) is not a missing user.
	fm.idStatus = 127
	var mu *MissingUserError
	if err := CheckRunAs(ctx, m, "h1", "ghost"); err == nil || errors.As(err, &mu) || !strings.Contains(err.Error(), "machine h1: look up run_as user ghost: exit status 127") {
		t.Fatalf("id failing: %v", err)
	}
	fm.idStatus = 0
	n := len(fm.cmds)
	// A hostile name never reaches the shell.
	for _, bad := range []string{"", "a;reboot", "$(reboot)", "-r", "a b"} {
		if err := CheckRunAs(ctx, m, "h1", bad); err == nil || !strings.Contains(err.Error(), "run_as of machine h1") {
			t.Fatalf("CheckRunAs(%q) = %v", bad, err)
		}
	}
	if len(fm.cmds) != n {
		t.Fatalf("hostile names were run: %q", fm.cmds[n:])
	}
}

func TestRenderUnitUserLine(t *testing.T) {
	base := DaemonSpec{MachineID: "robot", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013}
	for runAs, want := range map[string]string{"ubuntu": "User=ubuntu\n", "john.doe": "User=john.doe\n", "_svc-1": "User=_svc-1\n", "root": ""} {
		s := base
		s.RunAs = runAs
		unit, err := RenderUnit(s)
		if err != nil {
			t.Fatal(err)
		}
		got := regexp.MustCompile(`(?m)^User=.*\n`).FindString(string(unit))
		if got != want {
			t.Errorf("run as %s: User line %q, want %q", runAs, got, want)
		}
	}
	_, err := RenderUnit(base)
	if err == nil || !strings.Contains(err.Error(), "set run_as, or run_as: root") {
		t.Fatalf("no run-as user: %v", err)
	}
	base.RunAs = "robot\nUser=root"
	if _, err := RenderUnit(base); err == nil || !strings.Contains(err.Error(), `run_as of machine robot: user name "robot\nUser=root" contains '\n'`) {
		t.Fatalf("hostile run_as: %v", err)
	}
}

func TestFleetSpecRunAs(t *testing.T) {
	c := &config.Cluster{Coordinator: config.Coordinator{Addr: "10.0.0.1"}, SSH: config.SSHDefaults{User: "ubuntu"},
		Machines: []config.Machine{
			{ID: "a", Host: "10.0.0.2"},
			{ID: "b", Host: "10.0.0.3", User: "nvidia"},
			{ID: "c", Host: "10.0.0.4", User: "root"},
			{ID: "d", Host: "10.0.0.5", User: "nvidia", RunAs: "robot"},
			{ID: "e", Host: "10.0.0.6", User: "ubuntu", RunAs: "root"},
		}}
	f := &Fleet{Cluster: c}
	want := map[string]string{"a": "ubuntu", "b": "nvidia", "c": "root", "d": "robot", "e": "root"}
	for _, m := range c.Machines {
		if got := f.Spec(m).RunAs; got != want[m.ID] {
			t.Errorf("machine %s runs as %q, want %q", m.ID, got, want[m.ID])
		}
	}
}

// FuzzRenderUnitRunAs: whatever run_as holds, a unit that renders has the
// lines of any other unit plus exactly one User= line carrying the name as
// given (none for root), and that name needs no shell quoting.
func FuzzRenderUnitRunAs(f *testing.F) {
	for _, s := range []string{"ubuntu", "root", "", "a\nUser=root", "%u", "a b", "-x", "0", "john.doe", "_svc", "ü", "a\x00b", "a\\nb"} {
		f.Add(s)
	}
	base := DaemonSpec{MachineID: "robot", CoordinatorAddr: "10.0.0.1", CoordinatorPort: 6013, RunAs: RootUser}
	rootUnit, err := RenderUnit(base)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, runAs string) {
		s := base
		s.RunAs = runAs
		unit, err := RenderUnit(s)
		if err != nil {
			return
		}
		if Quote(runAs) != runAs {
			t.Fatalf("run_as %q rendered but needs quoting", runAs)
		}
		want := string(rootUnit)
		if runAs != RootUser {
			want = strings.Replace(want, "Type=simple\n", "Type=simple\nUser="+runAs+"\n", 1)
		}
		if string(unit) != want {
			t.Fatalf("run_as %q:\n%s", runAs, unit)
		}
	})
}
