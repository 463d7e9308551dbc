package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Default log rotation: a node's log file is rotated at DefaultLogMaxSize
// and DefaultLogKeep files are kept (the live one included).
const (
	DefaultLogMaxSize = 10 << 20
	DefaultLogKeep    = 5
)

// Stream names which output of a node a line came from.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// LogLine is one line a node printed. It is also the JSON line stored in
// the node's log file.
type LogLine struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Stream Stream    `json:"stream"`
	Line   string    `json:"line"`
}

// LogFile is a JSON-lines file rotated by size: path, path.1 (newer) ...
// path.(keep-1) (oldest). It is safe for concurrent use.
type LogFile struct {
	path    string
	maxSize int64
	keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenLogFile opens (appending) or creates the log file at path, creating
// its directory. maxSize <= 0 and keep <= 0 select the defaults.
func OpenLogFile(path string, maxSize int64, keep int) (*LogFile, error) {
	if maxSize <= 0 {
		maxSize = DefaultLogMaxSize
	}
	if keep <= 0 {
		keep = DefaultLogKeep
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open node log: %w", err)
	}
	l := &LogFile{path: path, maxSize: maxSize, keep: keep}
	if err := l.openLocked(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LogFile) openLocked() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open node log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open node log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends one line.
func (l *LogFile) Write(line LogLine) error {
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encode log line: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("write node log: file closed")
	}
	if l.size > 0 && l.size+int64(len(b)) > l.maxSize {
		if err := l.rotateLocked(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("write node log: %w", err)
	}
	return nil
}

func (l *LogFile) rotateLocked() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("rotate node log: %w", err)
	}
	l.f = nil
	for i := l.keep - 1; i >= 1; i-- {
		src := l.path
		if i > 1 {
			src = fmt.Sprintf("%s.%d", l.path, i-1)
		}
		err := os.Rename(src, fmt.Sprintf("%s.%d", l.path, i))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate node log: %w", err)
		}
	}
	if l.keep == 1 {
		if err := os.Truncate(l.path, 0); err != nil {
			return fmt.Errorf("rotate node log: %w", err)
		}
	}
	return l.openLocked()
}

// Close closes the file; later writes fail.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// TailLog returns the last n lines (n <= 0: all) stored in the log file at
// path and its rotated predecessors, oldest first. A missing file yields no
// lines and no error.
func TailLog(path string, n int) ([]LogLine, error) {
	var files []string
	for i := 64; i >= 1; i-- {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	files = append(files, path)
	var out []LogLine
	for _, p := range files {
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
