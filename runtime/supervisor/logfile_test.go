package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLogFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	l, err := OpenLogFile(path, 1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := l.Write(LogLine{Time: time.Unix(int64(i), 0), Node: "n", Stream: Stdout, Line: fmt.Sprintf("line %03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > 1024 {
			t.Fatalf("%s is %d bytes, over the 1024 limit", p, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Fatalf("kept more than 3 files: %v", err)
	}
	tail, err := TailLog(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) != 5 {
		t.Fatalf("tail has %d lines", len(tail))
	}
	for i, l := range tail {
		if want := fmt.Sprintf("line %03d", 195+i); l.Line != want {
			t.Fatalf("tail[%d] = %q, want %q", i, l.Line, want)
		}
	}
	all, err := TailLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Line <= all[i-1].Line {
			t.Fatalf("lines out of order at %d: %q after %q", i, all[i].Line, all[i-1].Line)
		}
	}
	if all[len(all)-1].Line != "line 199" || len(all) >= 200 {
		t.Fatalf("all: %d lines, last %q", len(all), all[len(all)-1].Line)
	}
}

func TestTailLogMissing(t *testing.T) {
	lines, err := TailLog(filepath.Join(t.TempDir(), "none"), 10)
	if err != nil || len(lines) != 0 {
		t.Fatalf("TailLog = %v, %v", lines, err)
	}
}

func TestLogFileAppendsAcrossOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	for i := range 2 {
		l, err := OpenLogFile(path, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		l.Write(LogLine{Line: fmt.Sprint(i)})
		l.Close()
	}
	lines, _ := TailLog(path, 0)
	if len(lines) != 2 || lines[0].Line != "0" || lines[1].Line != "1" {
		t.Fatalf("lines %+v", lines)
	}
}

func TestMergeEnvAndResolvePath(t *testing.T) {
	got := MergeEnv([]string{"A=1", "B=1"}, []string{"B=2", "C=2"}, []string{"A=3"})
	want := []string{"A=3", "B=2", "C=2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("MergeEnv = %v, want %v", got, want)
	}
	t.Setenv("ADORA_AUTH_TOKEN", "secret")
	for _, kv := range BaseEnv() {
		if len(kv) >= 17 && kv[:17] == "ADORA_AUTH_TOKEN=" {
			t.Fatal("BaseEnv leaks the auth token")
		}
	}
	dir := t.TempDir()
	if p, _ := ResolvePath(dir, "./bin/x"); p != filepath.Join(dir, "bin/x") {
		t.Fatalf("relative path resolved to %s", p)
	}
	if p, _ := ResolvePath(dir, "/abs/x"); p != "/abs/x" {
		t.Fatalf("absolute path resolved to %s", p)
	}
	if p, err := ResolvePath(dir, "sh"); err != nil || !filepath.IsAbs(p) {
		t.Fatalf("PATH lookup: %s, %v", p, err)
	}
	if _, err := ResolvePath(dir, "no-such-program-adora"); err == nil {
		t.Fatal("missing program resolved")
	}
}
