package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// LogLine is one line a node printed (or one a daemon wrote about it). It
// is also the JSON line stored in the node's log file:
//
//	{"time":"2026-11-27T05:00:00.123456789Z","node":"cam","stream":"stdout","line":"...","seq":42}
//
// Files written before lines were numbered lack "seq"; such lines read as
// Seq 0.
type LogLine struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Stream Stream    `json:"stream"`
	Line   string    `json:"line"`
	// Seq numbers the lines of one log file (its rotated predecessors
	// included): LogFile.Record gives each line the next number, strictly
	// increasing for as long as the files exist, across reopens and
	// process restarts. 0 means not numbered.
	Seq uint64 `json:"seq,omitempty"`
}

// LogFile is a handle on a JSON-lines log file rotated by size: path,
// path.1 (newer) ... path.(keep-1) (oldest). It is the one numbering
// point of the file's lines: every handle this process opens on the same
// path shares one file, one lock and one sequence (see Record), so a
// supervisor writing a node's output and a daemon writing its own lines
// about that node number them in one order. Handles are safe for
// concurrent use.
type LogFile struct {
	s      *sharedLog
	closed atomic.Bool
}

// sharedLog is the state of one open log path, shared by its handles.
type sharedLog struct {
	path    string
	maxSize int64
	keep    int
	refs    int // guarded by openLogs.mu

	mu   sync.Mutex
	f    *os.File
	size int64
	seq  uint64    // the last number given
	last time.Time // the time of the last line recorded
}

// openLogs is the registry of open log paths. Lock order: openLogs.mu,
// then a sharedLog's mu.
var openLogs = struct {
	mu   sync.Mutex
	open map[string]*sharedLog
	// seq remembers the last number given per path after its last handle
	// closed: a line numbered but not stored (a failed write) keeps its
	// number taken. Paths whose file is gone are forgotten now and then
	// (see sweepSeqLocked).
	seq    map[string]uint64
	closes int
}{open: map[string]*sharedLog{}, seq: map[string]uint64{}}

// sweepEvery is how many last closes pass between sweeps of openLogs.seq.
const sweepEvery = 256

// sweepSeqLocked forgets the numbers of paths whose file is gone (a
// pruned dataflow's logs), so the registry does not grow with every
// dataflow a daemon ever ran.
func sweepSeqLocked() {
	for p := range openLogs.seq {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			delete(openLogs.seq, p)
		}
	}
}

// logTimeResolution, when set, truncates the time of every recorded line
// (builds with the adora_coarse_log_clock tag set it, to test clocks that
// give many lines one timestamp).
var logTimeResolution time.Duration

// OpenLogFile opens a handle on the log file at path, creating the file
// and its directory. The first handle on a path opens the file
// (appending) and continues the numbering after the highest Seq stored in
// it and its rotated predecessors; later handles share that state, and
// their maxSize and keep are ignored. maxSize <= 0 and keep <= 0 select
// the defaults.
func OpenLogFile(path string, maxSize int64, keep int) (*LogFile, error) {
	if maxSize <= 0 {
		maxSize = DefaultLogMaxSize
	}
	if keep <= 0 {
		keep = DefaultLogKeep
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open node log: %w", err)
	}
	openLogs.mu.Lock()
	defer openLogs.mu.Unlock()
	if s := openLogs.open[abs]; s != nil {
		s.refs++
		return &LogFile{s: s}, nil
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("open node log: %w", err)
	}
	s := &sharedLog{path: abs, maxSize: maxSize, keep: keep, refs: 1}
	seq, last, err := lastRecorded(abs)
	if err != nil {
		return nil, fmt.Errorf("open node log: %w", err)
	}
	s.seq, s.last = max(seq, openLogs.seq[abs]), last
	if err := s.openLocked(); err != nil {
		return nil, err
	}
	openLogs.open[abs] = s
	return &LogFile{s: s}, nil
}

func (s *sharedLog) openLocked() error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open node log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open node log: %w", err)
	}
	s.f, s.size = f, st.Size()
	if err := s.endLineLocked(); err != nil {
		f.Close()
		s.f = nil
		return fmt.Errorf("open node log: %w", err)
	}
	return nil
}

// endLineLocked ends a last line cut short (a crash in the middle of a
// write), so that the next line starts on its own.
func (s *sharedLog) endLineLocked() error {
	if s.size == 0 {
		return nil
	}
	r, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer r.Close()
	b := make([]byte, 1)
	if _, err := r.ReadAt(b, s.size-1); err != nil {
		return err
	}
	if b[0] == '\n' {
		return nil
	}
	n, err := s.f.Write([]byte{'\n'})
	s.size += int64(n)
	return err
}

// Write records one line (Record without a delivery).
func (l *LogFile) Write(line LogLine) error {
	_, err := l.Record(line, nil)
	return err
}

// Record gives line the file's next Seq, appends it and, in the same
// order as the numbers, passes the numbered line to deliver (if not nil).
// deliver runs while the file is locked: it must not block, nor record
// to the same file. A line's time is never before the previous line's
// (an earlier one is raised to it), so that sorting the file's lines by
// time keeps their numbering order.
//
// The line is delivered and returned even when it cannot be stored (the
// error says why); after Close it is delivered unnumbered.
func (l *LogFile) Record(line LogLine, deliver func(LogLine)) (LogLine, error) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under s.mu: the last Close closes the file under it too.
	if l.closed.Load() {
		if deliver != nil {
			deliver(line)
		}
		return line, errors.New("write node log: file closed")
	}
	if logTimeResolution > 0 {
		line.Time = line.Time.Truncate(logTimeResolution)
	}
	if line.Time.Before(s.last) {
		line.Time = s.last
	}
	s.last = line.Time
	s.seq++
	line.Seq = s.seq
	err := s.writeLocked(line)
	if deliver != nil {
		deliver(line)
	}
	return line, err
}

func (s *sharedLog) writeLocked(line LogLine) error {
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encode log line: %w", err)
	}
	b = append(b, '\n')
	if s.f == nil {
		// A failed rotation left no file: try again.
		if err := s.openLocked(); err != nil {
			return err
		}
	}
	if s.size > 0 && s.size+int64(len(b)) > s.maxSize {
		if err := s.rotateLocked(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(b)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("write node log: %w", err)
	}
	return nil
}

func (s *sharedLog) rotateLocked() error {
	if err := s.f.Close(); err != nil {
		s.f = nil
		return fmt.Errorf("rotate node log: %w", err)
	}
	s.f = nil
	for i := s.keep - 1; i >= 1; i-- {
		src := s.path
		if i > 1 {
			src = fmt.Sprintf("%s.%d", s.path, i-1)
		}
		err := os.Rename(src, fmt.Sprintf("%s.%d", s.path, i))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate node log: %w", err)
		}
	}
	if s.keep == 1 {
		if err := os.Truncate(s.path, 0); err != nil {
			return fmt.Errorf("rotate node log: %w", err)
		}
	}
	return s.openLocked()
}

// Close releases the handle; its later records fail. The file closes
// with the last handle on its path. Close is idempotent.
func (l *LogFile) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	openLogs.mu.Lock()
	defer openLogs.mu.Unlock()
	s := l.s
	s.refs--
	if s.refs > 0 {
		return nil
	}
	delete(openLogs.open, s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	openLogs.seq[s.path] = s.seq
	if openLogs.closes++; openLogs.closes%sweepEvery == 0 {
		sweepSeqLocked()
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close node log: %w", err)
	}
	return nil
}
