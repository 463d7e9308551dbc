package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func FuzzParsePIDFile(f *testing.F) {
	f.Add([]byte("1234 5678 b9bcf119-bf40-48d3-bb46-da6809d5cf8e\n"))
	f.Add([]byte("1 2 x"))
	f.Add([]byte("-5 2 x"))
	f.Add([]byte("99999999999999999999 2 x"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, _, boot, ok := parsePIDFile(b)
		if ok && (pid <= 1 || boot == "") {
			t.Fatalf("accepted pid %d boot %q", pid, boot)
		}
		if ok {
			again, _, _, ok2 := parsePIDFile([]byte(strconv.Itoa(pid) + " 0 " + boot))
			if !ok2 || again != pid {
				t.Fatalf("round trip of pid %d failed", pid)
			}
		}
	})
}

func FuzzTailLog(f *testing.F) {
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","node":"n","stream":"stdout","line":"hi"}` + "\n"))
	f.Add([]byte("not json\n{\"line\":\n"))
	f.Add([]byte{0xff, '\n', '{', '}'})
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","line":"a","seq":7}` + "\n" + `{"seq":`))
	f.Add([]byte(`{"seq":18446744073709551615}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "n.jsonl")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		lines, _ := TailLog(path, 3)
		if len(lines) > 3 {
			t.Fatalf("tail 3 returned %d lines", len(lines))
		}
		// Whatever the file holds, a line recorded after it reads back
		// last, with the number it was given.
		l, err := OpenLogFile(path, 1<<30, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		got, err := l.Record(LogLine{Line: "appended"}, nil)
		if err != nil || got.Seq == 0 {
			t.Fatalf("record: %+v, %v", got, err)
		}
		after, err := TailLog(path, 1)
		if err != nil {
			return // a line too long for the reader
		}
		if len(after) != 1 || after[0].Line != "appended" || after[0].Seq != got.Seq {
			t.Fatalf("read back %+v, recorded %+v", after, got)
		}
	})
}
