package command

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/runtime/daemon"
	"github.com/adora-rs/adora/runtime/supervisor"
)

// runKeepLogs is how many runs' log directories adora run keeps.
const runKeepLogs = 50

// RunCommand runs a dataflow on this machine without coordinator or daemon.
type RunCommand struct{ Meta *Meta }

func (c *RunCommand) Synopsis() string { return "Run a dataflow locally, in the foreground" }

func (c *RunCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora run DATAFLOW [options]

  Runs every node of DATAFLOW on this machine, in this process: no
  coordinator or daemon is needed. Node output goes to the terminal,
  prefixed by the node id (and to ADORA_HOME/run/logs/<uuid>/; the last
  50 runs are kept). Relative
  node paths resolve against the dataflow file's directory.
  _unstable_deploy sections are ignored (with a notice): every node runs
  here.

  First the build: lines of every node run here, one node after the other,
  each line through sh -c in the dataflow file's directory (see adora
  build); their output is printed like node output. A failing build exits
  1 before any node starts.

  Ctrl-C stops the dataflow gracefully (each node gets STOP, then SIGTERM
  after the grace period, then SIGKILL); a second Ctrl-C kills the nodes.

Options:
  --stop-after DURATION  Stop the dataflow gracefully after DURATION (e.g. 10s)
  --no-build             Do not run the nodes' build: lines first
  --build-timeout DURATION  Bound on each node's build (default 10m)
  --grace DURATION       Grace period of a stop before SIGTERM (default 10s)
  --quiet                Do not print adora's own lines about nodes (spawned, exited)

Environment:
  ADORA_LOG=debug|info|warn|error  Also print adora's own diagnostics to stderr

Exit status: 0 when every node succeeded (or was stopped), 1 when a node
failed or the dataflow could not start.
`)
}

func (c *RunCommand) Run(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	stopAfter := fs.Duration("stop-after", 0, "")
	grace := fs.Duration("grace", supervisor.DefaultGrace, "")
	quiet := fs.Bool("quiet", false, "")
	noBuild := fs.Bool("no-build", false, "")
	buildTimeout := fs.Duration("build-timeout", daemon.DefaultBuildTimeout, "")
	path, df, ok := loadDataflowArgs(c.Meta.Ui, fs, args, buildTimeout, c.Help)
	if !ok {
		return 1
	}
	for _, n := range df.Nodes {
		if n.Deploy.Pos != (config.Pos{}) || !n.Deploy.IsZero() || n.Deploy.WorkingDir != "" {
			c.Meta.Ui.Warn(fmt.Sprintf("notice: node %s: _unstable_deploy is ignored by adora run (local mode); the node runs on this machine", n.ID))
		}
	}
	home, err := paths.Home()
	if err != nil {
		c.Meta.Ui.Error("adora run: " + err.Error())
		return 1
	}
	abs, _ := filepath.Abs(path)
	out := newNodePrinter(c.Meta.Ui, df, *quiet)
	id := uuid.NewString()
	runDir := filepath.Join(home, "run")
	if !*noBuild {
		logPath := func(node string) string { return daemon.LogPath(runDir, id, node) }
		if _, err := runBuilds(df, filepath.Dir(abs), nil, *buildTimeout, logPath, out); err != nil {
			c.Meta.Ui.Error("adora run: " + err.Error())
			return 1
		}
	}
	flow, err := daemon.StartFlow(daemon.FlowConfig{
		ID:           id,
		Name:         strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)),
		Dataflow:     df,
		WorkingDir:   filepath.Dir(abs),
		IgnoreDeploy: true,
		StateDir:     filepath.Join(home, "run"),
		NewRouter:    daemon.DataplaneRouter,
		Logger:       runLogger(),
		OnEvent:      out.event,
		OnLog:        out.line,
	})
	if err != nil {
		c.Meta.Ui.Error("adora run: " + err.Error())
		return 1
	}
	c.wait(flow, *stopAfter, *grace)
	results := flow.Results()
	flow.Close()
	daemon.PruneLogs(filepath.Join(home, "run"), runKeepLogs, map[string]bool{id: true})
	if msg := daemon.Failure(results); msg != "" {
		c.Meta.Ui.Error(fmt.Sprintf("adora run: dataflow failed: %s\nlogs: %s", msg, filepath.Dir(daemon.LogPath(filepath.Join(home, "run"), id, "x"))))
		return 1
	}
	return 0
}

// wait runs the flow until its nodes end, stopping it on --stop-after, on
// the first interrupt (gracefully) and on the second (kill).
func (c *RunCommand) wait(flow *daemon.Flow, stopAfter, grace time.Duration) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var timer <-chan time.Time
	if stopAfter > 0 {
		t := time.NewTimer(stopAfter)
		defer t.Stop()
		timer = t.C
	}
	interrupts := 0
	for {
		select {
		case <-flow.Done():
			return
		case <-timer:
			c.Meta.Ui.Warn(fmt.Sprintf("adora run: --stop-after %v elapsed, stopping the dataflow", stopAfter))
			flow.Stop(grace, false)
		case <-sigs:
			interrupts++
			if interrupts == 1 {
				c.Meta.Ui.Warn("adora run: stopping the dataflow gracefully (Ctrl-C again to kill the nodes)")
				flow.Stop(grace, false)
			} else {
				c.Meta.Ui.Warn("adora run: killing the nodes")
				flow.Stop(grace, true)
			}
		}
	}
}

// loadDataflowArgs is the start shared by adora run and adora build (fs
// named "run" or "build"): parse args (options anywhere, one dataflow
// path; *buildTimeout, fs's --build-timeout, is read only after the parse
// and must be positive), then load the dataflow, printing its warnings and
// errors. On failure it has told ui why and returns false.
func loadDataflowArgs(ui cli.Ui, fs *flag.FlagSet, args []string, buildTimeout *time.Duration, help func() string) (string, *config.Dataflow, bool) {
	name := "adora " + fs.Name()
	path, err := parseInterspersed(fs, args)
	if err == nil && *buildTimeout <= 0 {
		err = fmt.Errorf("--build-timeout %v: must be positive", *buildTimeout)
	}
	if err != nil {
		ui.Error(fmt.Sprintf("%s: %v\n\n%s", name, err, help()))
		return "", nil, false
	}
	df, diags := config.LoadDataflow(path)
	for _, d := range diags.Warnings() {
		ui.Warn(d.String())
	}
	if err := diags.Err(); err != nil || df == nil {
		if err != nil {
			ui.Error(err.Error())
		}
		ui.Error(fmt.Sprintf("%s: %s has errors; fix them and run again", name, path))
		return "", nil, false
	}
	return path, df, true
}

// runLogger logs adora's own diagnostics to stderr when ADORA_LOG names a
// level (debug, info, warn, error); by default they are discarded.
func runLogger() *slog.Logger {
	var level slog.Level
	v := os.Getenv("ADORA_LOG")
	if v == "" || level.UnmarshalText([]byte(v)) != nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// parseInterspersed parses flags given before and after the one positional
// argument, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("missing DATAFLOW argument")
	}
	pos := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return pos, nil
}

// nodePrinter writes node output to the terminal, one line at a time,
// prefixed by the node id.
type nodePrinter struct {
	ui    cli.Ui
	width int
	quiet bool
	mu    sync.Mutex
}

func newNodePrinter(ui cli.Ui, df *config.Dataflow, quiet bool) *nodePrinter {
	p := &nodePrinter{ui: ui, quiet: quiet}
	for _, n := range df.Nodes {
		p.width = max(p.width, len(n.ID))
	}
	return p
}

func (p *nodePrinter) line(l supervisor.LogLine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf("%-*s | %s", p.width, l.Node, l.Line)
	if l.Stream == supervisor.Stderr {
		p.ui.Error(msg)
	} else {
		p.ui.Output(msg)
	}
}

func (p *nodePrinter) event(ev supervisor.Event) {
	var msg string
	switch ev.Kind {
	case supervisor.EventStarted:
		msg = fmt.Sprintf("spawned (pid %d)", ev.PID)
		if ev.Restarts > 0 {
			msg = fmt.Sprintf("spawned (pid %d, restart %d)", ev.PID, ev.Restarts)
		}
	case supervisor.EventExited:
		if ev.Signal != "" {
			msg = "killed by signal " + ev.Signal
		} else {
			msg = fmt.Sprintf("exited with code %d", ev.ExitCode)
		}
	case supervisor.EventRestarting:
		msg = fmt.Sprintf("%s; next start in %v", ev.Reason, ev.Delay)
	case supervisor.EventFailed:
		msg = "failed: " + ev.Reason
		p.mu.Lock()
		p.ui.Error(fmt.Sprintf("%-*s | [adora] %s", p.width, ev.Node, msg))
		p.mu.Unlock()
		return
	default:
		return
	}
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ui.Info(fmt.Sprintf("%-*s | [adora] %s", p.width, ev.Node, msg))
}
