package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/supervisor"
)

// DefaultBuildTimeout bounds the build of one node (all of its lines).
const DefaultBuildTimeout = 10 * time.Minute

// BuildStream marks the lines a build writes about itself ("build line 1:
// go build ...") in a node's log; the commands' own output keeps stdout
// and stderr.
const BuildStream supervisor.Stream = "system"

// BuildConfig describes the builds of some nodes of a dataflow.
type BuildConfig struct {
	// DataflowID is exported to the build as ADORA_DATAFLOW_ID ("" leaves
	// it out, for builds outside a run).
	DataflowID string
	Dataflow   *config.Dataflow
	// Nodes are the ids to build; nil means every node. Builds run one at
	// a time in the dataflow's node order, whatever the order here.
	Nodes []string
	// WorkingDir and IgnoreDeploy locate each node's directory exactly
	// as FlowConfig does: a build runs where the node will run.
	WorkingDir   string
	IgnoreDeploy bool
	// Timeout bounds each node's build; 0 means DefaultBuildTimeout.
	Timeout time.Duration
	// LogPath, if set, names the log file of a node; build output is
	// appended to it (the node's own output follows later).
	LogPath func(node string) string
	// OnLog receives every line (stdout, stderr, BuildStream) as it comes;
	// with a LogPath, numbered as stored (see supervisor.LogFile.Record:
	// it must return at once).
	OnLog  func(supervisor.LogLine)
	Logger *slog.Logger
}

// BuildError is a failed build line.
type BuildError struct {
	Node    string
	Line    int    // 1-based line number in the node's build string
	Command string // the line as written
	Err     error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("build of node %s failed: line %d %q: %v", e.Node, e.Line, e.Command, e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// BuildLine is one command of a node's build string.
type BuildLine struct {
	Number  int // 1-based, counting blank lines
	Command string
}

// BuildLines splits a build string into its commands: one per line, blank
// lines skipped, surrounding spaces trimmed.
func BuildLines(build string) []BuildLine {
	var out []BuildLine
	for i, l := range strings.Split(build, "\n") {
		if c := strings.TrimSpace(l); c != "" {
			out = append(out, BuildLine{Number: i + 1, Command: c})
		}
	}
	return out
}

// Build runs the build lines of the selected nodes, one node after the
// other, and stops at the first failure (a *BuildError). Each line runs as
// `sh -c LINE` in the node's working directory with the node's
// environment (the daemon's, minus denied variables, then the dataflow's
// env, then the node's). A shell is right here: the dataflow's author
// wrote the command, as they would in a Makefile, and nothing from
// elsewhere is interpolated into it. Each command runs in its own process
// group, killed as a whole on timeout or when ctx ends.
func Build(ctx context.Context, cfg BuildConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultBuildTimeout
	}
	want := map[string]bool{}
	for _, id := range cfg.Nodes {
		want[id] = true
	}
	base := supervisor.BaseEnv()
	dfEnv := supervisor.MapEnv(cfg.Dataflow.Env)
	for i := range cfg.Dataflow.Nodes {
		n := &cfg.Dataflow.Nodes[i]
		if cfg.Nodes != nil && !want[n.ID] {
			continue
		}
		lines := BuildLines(n.Build)
		if len(lines) == 0 {
			continue
		}
		dir, err := nodeDir(cfg.WorkingDir, n, cfg.IgnoreDeploy)
		if err != nil {
			return fmt.Errorf("build of node %s failed: %w", n.ID, err)
		}
		ids := []string{"ADORA_NODE_ID=" + n.ID}
		if cfg.DataflowID != "" {
			ids = append(ids, "ADORA_DATAFLOW_ID="+cfg.DataflowID)
		}
		env := supervisor.MergeEnv(base, dfEnv, supervisor.MapEnv(n.Env), ids)
		if err := buildNode(ctx, cfg, n.ID, dir, env, lines); err != nil {
			return err
		}
	}
	return nil
}

// buildNode runs one node's lines in order under one timeout.
func buildNode(ctx context.Context, cfg BuildConfig, node, dir string, env []string, lines []BuildLine) error {
	out := &buildOutput{node: node, onLog: cfg.OnLog}
	if cfg.LogPath != nil {
		if p := cfg.LogPath(node); p != "" {
			lf, err := supervisor.OpenLogFile(p, 0, 0)
			if err != nil {
				return fmt.Errorf("build of node %s failed: %w", node, err)
			}
			defer lf.Close()
			out.file = lf
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	for _, l := range lines {
		out.emit(BuildStream, fmt.Sprintf("build line %d: %s", l.Number, l.Command))
		cfg.Logger.Info("building node", "node", node, "line", l.Number, "command", l.Command, "dir", dir)
		if err := runBuildLine(ctx, dir, env, l.Command, out); err != nil {
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				err = fmt.Errorf("timed out after %v (raise the build timeout if the build needs longer)", cfg.Timeout)
			case ctx.Err() != nil:
				err = fmt.Errorf("cancelled: %w", ctx.Err())
			}
			be := &BuildError{Node: node, Line: l.Number, Command: l.Command, Err: err}
			out.emit(BuildStream, be.Error())
			return be
		}
	}
	out.emit(BuildStream, fmt.Sprintf("build done in %v", time.Since(start).Round(time.Millisecond)))
	return nil
}

func runBuildLine(ctx context.Context, dir string, env []string, line string, out *buildOutput) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A background child of the command may hold the pipes open.
	cmd.WaitDelay = buildWaitDelay
	stdout := &lineWriter{emit: func(s string) { out.emit(supervisor.Stdout, s) }}
	stderr := &lineWriter{emit: func(s string) { out.emit(supervisor.Stderr, s) }}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	stdout.flush()
	stderr.flush()
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
		// The line succeeded but left a background process holding its
		// output open (a compiler server, say): not a failure.
		out.emit(BuildStream, "a background process of this line keeps running; its further output is not captured")
		return nil
	}
	return err
}

// buildOutput delivers build lines to the log file and the callback.
type buildOutput struct {
	node  string
	file  *supervisor.LogFile
	onLog func(supervisor.LogLine)
	mu    sync.Mutex
}

func (o *buildOutput) emit(s supervisor.Stream, line string) {
	l := supervisor.LogLine{Time: time.Now(), Node: o.node, Stream: s, Line: line}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Record(l, o.onLog) // numbered as stored; a failed write still reaches onLog
		return
	}
	if o.onLog != nil {
		o.onLog(l)
	}
}

// buildWaitDelay is how long a finished line's output is still read when
// a background process it started holds the pipes open.
var buildWaitDelay = 5 * time.Second

// maxBuildLine cuts very long output lines (a partial line is emitted
// once it reaches this size).
const maxBuildLine = 64 << 10

// lineWriter splits a byte stream into lines.
type lineWriter struct {
	emit func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) >= maxBuildLine {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}
