package statefile

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statetest"
)

func TestLocalConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Backend {
		return New(filepath.Join(t.TempDir(), DefaultName))
	})
}

func TestWriteKeepsBackupAndNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	l := New(filepath.Join(dir, DefaultName))
	ctx := context.Background()
	st := state.New("test")
	for range 3 {
		if err := l.Write(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	backup, err := Decode(mustRead(t, l.Path()+".backup"))
	if err != nil {
		t.Fatal(err)
	}
	if backup.Serial != 2 {
		t.Fatalf("backup serial = %d; want 2", backup.Serial)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
	if fi, _ := os.Stat(l.Path()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode = %v; want 0600", fi.Mode().Perm())
	}
}

func TestDecodeRefusesNewerAndGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"newer":      `{"format_version": 99, "lineage": "x"}`,
		"no version": `{"lineage": "x"}`,
		"garbage":    `not json`,
		"no lineage": `{"format_version": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(in)); err == nil {
				t.Fatalf("Decode(%s) succeeded; want error", in)
			}
		})
	}
}

func TestDecodeRunsUpgradeSteps(t *testing.T) {
	// A format-0 document kept machines as a list; the step keys them by ID.
	saved := upgrades
	t.Cleanup(func() { upgrades = saved })
	upgrades = map[int]upgrader{0: func(doc map[string]any) error {
		list, _ := doc["machines"].([]any)
		byID := map[string]any{}
		for _, m := range list {
			mm := m.(map[string]any)
			byID[mm["id"].(string)] = mm
		}
		doc["machines"] = byID
		return nil
	}}
	old := `{"format_version": 0, "lineage": "L", "serial": 4,
	  "machines": [{"id": "bot-01", "host": "10.0.0.2", "binary_version": "0.1.0"}]}`
	st, err := Decode([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if st.FormatVersion != state.FormatVersion || st.Serial != 4 || st.Machines["bot-01"].Host != "10.0.0.2" {
		t.Fatalf("upgraded state = %+v", st)
	}
	upgrades = map[int]upgrader{}
	if _, err := Decode([]byte(old)); err == nil || !strings.Contains(err.Error(), "no upgrade step") {
		t.Fatalf("Decode without a step = %v; want no upgrade step error", err)
	}
}

func TestStateFileIsVersionedJSON(t *testing.T) {
	l := New(filepath.Join(t.TempDir(), DefaultName))
	if err := l.Write(context.Background(), state.New("9.9.9")); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(mustRead(t, l.Path()), &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"format_version", "lineage", "serial", "adora_version"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("state file has no %q", key)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLockOfAGoneProcessSaysSo(t *testing.T) {
	l := New(filepath.Join(t.TempDir(), DefaultName))
	info := state.NewLockInfo("apply", "test", time.Now())
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	info.PID = cmd.Process.Pid // exited and reaped
	if err := l.Lock(context.Background(), info); err != nil {
		t.Fatal(err)
	}
	err := l.Lock(context.Background(), state.NewLockInfo("plan", "test", time.Now()))
	var locked *state.LockedError
	if !errors.As(err, &locked) || !locked.HolderGone || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("Lock = %v; want a LockedError saying the holder is gone", err)
	}
	live := state.NewLockInfo("apply", "test", time.Now()) // this test process
	l2 := New(filepath.Join(t.TempDir(), DefaultName))
	l2.Lock(context.Background(), live)
	err = l2.Lock(context.Background(), state.NewLockInfo("plan", "test", time.Now()))
	if !errors.As(err, &locked) || locked.HolderGone {
		t.Fatalf("Lock = %v; a live holder must not be called gone", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"format_version": 1, "lineage": "L", "serial": 3, "machines": {"a": {"id": "a"}}}`))
	f.Add([]byte(`{"format_version": 0}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Decode(data)
		if err != nil {
			return
		}
		if st.Lineage == "" || st.Machines == nil || st.Dataflows == nil {
			t.Fatalf("Decode accepted an incomplete state: %+v", st)
		}
		if _, err := Encode(st); err != nil {
			t.Fatal(err)
		}
	})
}
