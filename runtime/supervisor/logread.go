package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// maxRotated bounds the rotated predecessors (path.1 ... path.maxRotated)
// readers look for, whatever keep the writer used.
const maxRotated = 64

// TailLog returns the last n lines (n <= 0: all) stored in the log file at
// path and its rotated predecessors, oldest first. A missing file yields no
// lines and no error.
func TailLog(path string, n int) ([]LogLine, error) {
	var out []LogLine
	for _, p := range oldestFirst(path) {
		lines, err := readLogLines(p)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
		if n > 0 && len(out) > n {
			out = out[len(out)-n:]
		}
	}
	return out, nil
}

// oldestFirst lists the existing rotated files of path, oldest first, and
// path itself.
func oldestFirst(path string) []string {
	var files []string
	for i := maxRotated; i >= 1; i-- {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	return append(files, path)
}

func readLogLines(path string) ([]LogLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read node log: %w", err)
	}
	defer f.Close()
	var out []LogLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var l LogLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read node log %s: %w", path, err)
	}
	return out, nil
}

// maxSeq bounds the numbers a file can claim: 2^53 keeps them exact for
// JSON readers that use floating point, and lasts centuries at a million
// lines a second. A larger stored number is corrupt and ignored.
const maxSeq = 1 << 53

// lineMark is what numbering needs of a stored line.
type lineMark struct {
	Time time.Time `json:"time"`
	Seq  uint64    `json:"seq"`
}

// lastRecorded finds, in the log file at path and its rotated
// predecessors, the highest Seq stored (0: none) and the time of the
// newest line (zero: none). Lines are numbered in file order, so it reads
// the newest file's end and looks further back only when that holds no
// numbered line.
func lastRecorded(path string) (uint64, time.Time, error) {
	files := oldestFirst(path)
	var last time.Time
	for i := len(files) - 1; i >= 0; i-- {
		seq, t, err := lastInFile(files[i])
		if err != nil {
			return 0, time.Time{}, err
		}
		if last.IsZero() {
			last = t
		}
		if seq > 0 {
			return seq, last, nil
		}
	}
	return 0, last, nil
}

// tailChunk is how much of a file's end lastInFile reads first: several
// of the longest lines (64 KiB of text, escaped).
const tailChunk = 1 << 20

// lastInFile returns the Seq of the last numbered line of one file and
// the time of its last line. A missing file has neither.
func lastInFile(path string) (uint64, time.Time, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read node log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read node log: %w", err)
	}
	off := max(0, st.Size()-tailChunk)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return 0, time.Time{}, fmt.Errorf("read node log %s: %w", path, err)
	}
	if off > 0 {
		// The chunk starts inside a line: skip to the next one.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		} else {
			b = nil
		}
	}
	var last time.Time
	for len(b) > 0 {
		b = bytes.TrimRight(b, "\n")
		i := bytes.LastIndexByte(b, '\n')
		var m lineMark
		if json.Unmarshal(b[i+1:], &m) == nil {
			if last.IsZero() {
				last = m.Time
			}
			if m.Seq > 0 && m.Seq <= maxSeq {
				return m.Seq, last, nil
			}
		}
		b = b[:max(i, 0)]
	}
	if off == 0 {
		return 0, last, nil
	}
	seq, err := scanMaxSeq(f)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read node log %s: %w", path, err)
	}
	return seq, last, nil
}

// scanMaxSeq reads every line of f for the highest Seq (the end of the
// file held no numbered line: an older file, or very long lines).
func scanMaxSeq(f *os.File) (uint64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var seq uint64
	for {
		line, err := r.ReadBytes('\n')
		var m lineMark
		if len(line) > 0 && json.Unmarshal(line, &m) == nil && m.Seq <= maxSeq {
			seq = max(seq, m.Seq)
		}
		if err == io.EOF {
			return seq, nil
		}
		if err != nil {
			return seq, err
		}
	}
}
