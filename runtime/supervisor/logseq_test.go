package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// seqs returns the Seq of every line stored at path, oldest first.
func seqs(t *testing.T, path string) []uint64 {
	t.Helper()
	lines, err := TailLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(lines))
	for i, l := range lines {
		out[i] = l.Seq
	}
	return out
}

func openLog(t *testing.T, path string, maxSize int64, keep int) *LogFile {
	t.Helper()
	l, err := OpenLogFile(path, maxSize, keep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func record(t *testing.T, l *LogFile, text string) LogLine {
	t.Helper()
	got, err := l.Record(LogLine{Time: time.Now(), Node: "n", Stream: Stdout, Line: text}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRecordNumbersLinesAsStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	l := openLog(t, path, 0, 0)
	var delivered []LogLine
	for i := range 5 {
		got, err := l.Record(LogLine{Time: time.Now(), Node: "n", Stream: Stderr, Line: fmt.Sprint(i)}, func(d LogLine) { delivered = append(delivered, d) })
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != uint64(i+1) || delivered[i] != got {
			t.Fatalf("line %d: returned %+v, delivered %+v", i, got, delivered[i])
		}
	}
	stored, err := TailLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 5 {
		t.Fatalf("stored %d lines", len(stored))
	}
	for i, s := range stored {
		if !s.Time.Equal(delivered[i].Time) || s.Seq != delivered[i].Seq || s.Line != delivered[i].Line {
			t.Fatalf("stored %+v, delivered %+v", s, delivered[i])
		}
	}
}

func TestRecordNumbersAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	l := openLog(t, path, 512, 3)
	for i := range 100 {
		if got := record(t, l, fmt.Sprintf("line %03d", i)); got.Seq != uint64(i+1) {
			t.Fatalf("line %d numbered %d", i, got.Seq)
		}
	}
	if _, err := os.Stat(path + ".2"); err != nil {
		t.Fatalf("no rotation: %v", err)
	}
	got := seqs(t, path)
	if got[len(got)-1] != 100 {
		t.Fatalf("last stored seq %d, want 100", got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("stored seqs not consecutive at %d: %v", i, got)
		}
	}
}

func TestReopenContinuesNumbering(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxSize int64
		lines   int
	}{
		{"one file", 0, 7},
		{"rotated", 300, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.jsonl")
			l, err := OpenLogFile(path, tc.maxSize, 5)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.lines {
				record(t, l, fmt.Sprint(i))
			}
			l.Close()
			// A new process knows only the files.
			forgetLogs(path)
			l2 := openLog(t, path, tc.maxSize, 5)
			if got := record(t, l2, "after").Seq; got != uint64(tc.lines+1) {
				t.Fatalf("after reopen: seq %d, want %d", got, tc.lines+1)
			}
		})
	}
}

// forgetLogs drops what this process remembers of path, as if it were a
// new process.
func forgetLogs(path string) {
	abs, _ := filepath.Abs(path)
	openLogs.mu.Lock()
	delete(openLogs.seq, abs)
	openLogs.mu.Unlock()
}

func TestReopenFindsSeqInRotatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	os.WriteFile(path+".2", []byte(`{"time":"2026-01-01T00:00:00Z","line":"a","seq":8}`+"\n"), 0o644)
	os.WriteFile(path+".1", []byte(`{"time":"2026-01-01T00:00:01Z","line":"b","seq":9}`+"\n"), 0o644)
	os.WriteFile(path, nil, 0o644) // just rotated
	l := openLog(t, path, 0, 0)
	if got := record(t, l, "c").Seq; got != 10 {
		t.Fatalf("seq %d, want 10", got)
	}
}

func TestReopenScansPastLongUnnumberedTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	var b strings.Builder
	b.WriteString(`{"time":"2026-01-01T00:00:00Z","line":"a","seq":41}` + "\n")
	// More than tailChunk of lines without seq (an older daemon wrote
	// after this one) hides the numbered line from the tail read.
	filler := `{"time":"2026-01-01T00:00:01Z","line":"` + strings.Repeat("x", 1000) + `"}` + "\n"
	for b.Len() <= tailChunk+len(filler) {
		b.WriteString(filler)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	l := openLog(t, path, 1<<30, 0)
	if got := record(t, l, "c").Seq; got != 42 {
		t.Fatalf("seq %d, want 42", got)
	}
}

func TestOldFormatReadsAsSeqZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	old := `{"time":"2026-01-01T00:00:00Z","node":"n","stream":"stdout","line":"old 1"}` + "\n" +
		`{"time":"2026-01-01T00:00:02Z","node":"n","stream":"stdout","line":"old 2"}` + "\n"
	os.WriteFile(path, []byte(old), 0o644)
	if got := seqs(t, path); len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Fatalf("old lines read with seqs %v", got)
	}
	l := openLog(t, path, 0, 0)
	// A clock behind the newest stored line does not put the new line
	// before it.
	got, err := l.Record(LogLine{Time: time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC), Line: "new"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || !got.Time.Equal(time.Date(2026, 1, 1, 0, 0, 2, 0, time.UTC)) {
		t.Fatalf("first numbered line %+v", got)
	}
	if s := seqs(t, path); fmt.Sprint(s) != "[0 0 1]" {
		t.Fatalf("seqs %v", s)
	}
}

func TestRecordKeepsTimesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	l := openLog(t, path, 0, 0)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i, off := range []int{0, 5, 3, 9, 1} {
		got, err := l.Record(LogLine{Time: t0.Add(time.Duration(off) * time.Millisecond), Line: fmt.Sprint(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]int{0: 0, 1: 5, 2: 5, 3: 9, 4: 9}[i]
		if !got.Time.Equal(t0.Add(time.Duration(want) * time.Millisecond)) {
			t.Fatalf("line %d at +%dms stamped %v", i, off, got.Time.Sub(t0))
		}
	}
}

// Handles on one path (a supervisor writing a node's output, a daemon
// writing lines about it) number in one sequence, and deliver in that
// order.
func TestHandlesShareOneSequence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.jsonl")
	a := openLog(t, path, 2048, 3)
	b := openLog(t, filepath.Join(dir, ".", "n.jsonl"), 0, 0)
	var (
		mu        sync.Mutex
		delivered []uint64
		wg        sync.WaitGroup
	)
	deliver := func(l LogLine) {
		mu.Lock()
		delivered = append(delivered, l.Seq)
		mu.Unlock()
	}
	for w, h := range []*LogFile{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if _, err := h.Record(LogLine{Time: time.Now(), Line: fmt.Sprintf("w%d %d", w, i)}, deliver); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i, s := range delivered {
		if s != uint64(i+1) {
			t.Fatalf("delivery %d has seq %d: %v", i, s, delivered)
		}
	}
	stored := seqs(t, path)
	if stored[len(stored)-1] != 400 {
		t.Fatalf("last stored seq %d", stored[len(stored)-1])
	}
	for i := 1; i < len(stored); i++ {
		if stored[i] != stored[i-1]+1 {
			t.Fatalf("stored out of order at %d: %v", i, stored)
		}
	}
}

func TestRecordAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	a := openLog(t, path, 0, 0)
	b := openLog(t, path, 0, 0)
	record(t, a, "one")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	var got LogLine
	if _, err := a.Record(LogLine{Line: "late"}, func(l LogLine) { got = l }); err == nil || got.Line != "late" || got.Seq != 0 {
		t.Fatalf("record after close: %v, delivered %+v", err, got)
	}
	if s := record(t, b, "two").Seq; s != 2 {
		t.Fatalf("other handle numbered %d, want 2", s)
	}
	b.Close()
	// The process remembers the last number even when the files lose it
	// (a line numbered but never stored).
	os.Truncate(path, 0)
	c := openLog(t, path, 0, 0)
	if s := record(t, c, "three").Seq; s != 3 {
		t.Fatalf("after reopen numbered %d, want 3", s)
	}
}

func TestCutLastLineIsEnded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.jsonl")
	os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","line":"whole","seq":3}`+"\n"+`{"time":"2026-01-01T00:00:01Z","li`), 0o644)
	l := openLog(t, path, 0, 0)
	record(t, l, "next")
	lines, err := TailLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[1].Line != "next" || lines[1].Seq != 4 {
		t.Fatalf("lines %+v", lines)
	}
}

func TestCoarseClockSharesTimestamps(t *testing.T) {
	logTimeResolution = 10 * time.Second
	t.Cleanup(func() { logTimeResolution = 0 })
	path := filepath.Join(t.TempDir(), "n.jsonl")
	l := openLog(t, path, 0, 0)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		got, err := l.Record(LogLine{Time: t0.Add(time.Duration(i) * time.Second), Line: "same"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Time.Equal(t0) || got.Seq != uint64(i+1) {
			t.Fatalf("line %d: %+v", i, got)
		}
	}
}

func TestRegistryForgetsRemovedLogs(t *testing.T) {
	dir := t.TempDir()
	kept, gone := filepath.Join(dir, "kept.jsonl"), filepath.Join(dir, "gone", "n.jsonl")
	for _, p := range []string{kept, gone} {
		l, err := OpenLogFile(p, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		record(t, l, "x")
		l.Close()
	}
	os.RemoveAll(filepath.Dir(gone))
	// Enough last closes of another path to start a sweep.
	other := filepath.Join(dir, "other.jsonl")
	for range sweepEvery {
		l, err := OpenLogFile(other, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	openLogs.mu.Lock()
	_, keptKnown := openLogs.seq[kept]
	_, goneKnown := openLogs.seq[gone]
	openLogs.mu.Unlock()
	if !keptKnown || goneKnown {
		t.Fatalf("after a sweep: kept known %v, removed known %v", keptKnown, goneKnown)
	}
}

// A node's stdout and stderr reach OnLog numbered, in numbering order,
// with the numbers its log file stores.
func TestNodeOutputNumberedInOrder(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "both.jsonl")
	s, rec := newTestSupervisor(t, Config{})
	spec := shNode("both", `i=0; while [ $i -lt 500 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`)
	spec.LogPath = logPath
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s, 30*time.Second)
	rec.mu.Lock()
	live := slices.Clone(rec.lines)
	rec.mu.Unlock()
	stored, err := TailLog(logPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1000 || len(stored) != 1000 {
		t.Fatalf("%d lines delivered, %d stored; want 1000", len(live), len(stored))
	}
	for i := range live {
		if live[i].Seq != uint64(i+1) || stored[i].Seq != live[i].Seq || stored[i].Line != live[i].Line || !stored[i].Time.Equal(live[i].Time) {
			t.Fatalf("line %d: delivered %+v, stored %+v", i, live[i], stored[i])
		}
	}
}
