package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/daemon"
	"github.com/adora-rs/adora/runtime/supervisor"
)

// BuildCommand runs the build lines of a dataflow's nodes on this machine.
type BuildCommand struct{ Meta *Meta }

func (c *BuildCommand) Synopsis() string { return "Run the build: lines of a dataflow's nodes here" }

func (c *BuildCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora build DATAFLOW [options]

  Runs the build: lines of the nodes of DATAFLOW on this machine, one node
  after the other in the file's order, each line through sh -c in the
  directory of the dataflow file, with the dataflow's and the node's env.
  Output is printed prefixed by the node id. The first failing line stops
  the build.

  Where builds run:
    adora run      builds every node here first (--no-build skips it)
    adora start    each daemon builds its distribute: local nodes (the
                   default) in the node's working directory on its machine,
                   before their first spawn
    adora build    this command: builds here. Use it for nodes with
                   distribute: scp or http, whose binaries are built on the
                   CLI's machine and shipped, and as a check.

Options:
  --node ID[,ID]            Build only these nodes
  --shipped                 Build only the nodes with distribute: scp or http
                            (what adora start ships from this machine)
  --build-timeout DURATION  Bound on each node's build (default 10m)

Exit status: 0 when every build succeeded, 1 otherwise.
`)
}

func (c *BuildCommand) Run(args []string) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	only := fs.String("node", "", "")
	shipped := fs.Bool("shipped", false, "")
	timeout := fs.Duration("build-timeout", daemon.DefaultBuildTimeout, "")
	path, df, ok := loadDataflowArgs(c.Meta.Ui, fs, args, timeout, c.Help)
	if !ok {
		return 1
	}
	var nodes []string
	if *only != "" {
		for _, id := range strings.Split(*only, ",") {
			id = strings.TrimSpace(id)
			if df.Node(id) == nil {
				c.Meta.Ui.Error(fmt.Sprintf("adora build: --node %s: no such node in %s", id, path))
				return 1
			}
			nodes = append(nodes, id)
		}
	}
	if *shipped {
		if nodes == nil {
			nodes = shippedNodes(df)
		} else {
			nodes = slices.DeleteFunc(nodes, func(id string) bool { return !slices.Contains(shippedNodes(df), id) })
		}
		if len(nodes) == 0 {
			c.Meta.Ui.Info("adora build: no node to build (none is distributed by scp or http)")
			return 0
		}
	}
	abs, _ := filepath.Abs(path)
	out := newNodePrinter(c.Meta.Ui, df, false)
	start := time.Now()
	n, err := runBuilds(df, filepath.Dir(abs), nodes, *timeout, nil, out)
	if err != nil {
		c.Meta.Ui.Error("adora build: " + err.Error())
		return 1
	}
	c.Meta.Ui.Info(fmt.Sprintf("adora build: built %d node(s) in %v", n, time.Since(start).Round(time.Millisecond)))
	return 0
}

// shippedNodes lists the nodes whose binary is built where the CLI runs
// and shipped to the target (distribute: scp or http), in file order.
func shippedNodes(df *config.Dataflow) []string {
	out := []string{}
	for _, n := range df.Nodes {
		if d := n.Deploy.Distribute; d == config.DistributeSCP || d == config.DistributeHTTP {
			out = append(out, n.ID)
		}
	}
	return out
}

// runBuilds builds the nodes of df (nil: all) in dir, printing their
// output through out; Ctrl-C kills the build in progress. It returns how
// many nodes had build lines.
func runBuilds(df *config.Dataflow, dir string, nodes []string, timeout time.Duration, logPath func(string) string, out *nodePrinter) (int, error) {
	count := 0
	for _, n := range df.Nodes {
		if (nodes == nil || slices.Contains(nodes, n.ID)) && len(daemon.BuildLines(n.Build)) > 0 {
			count++
		}
	}
	if count == 0 {
		return 0, nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := daemon.Build(ctx, daemon.BuildConfig{
		Dataflow:     df,
		Nodes:        nodes,
		WorkingDir:   dir,
		IgnoreDeploy: true,
		Timeout:      timeout,
		LogPath:      logPath,
		OnLog:        out.buildLine,
		Logger:       runLogger(),
	})
	var be *daemon.BuildError
	if errors.As(err, &be) && ctx.Err() != nil {
		return count, fmt.Errorf("build of node %s interrupted", be.Node)
	}
	return count, err
}

// buildLine prints a build's output like node output; its own lines
// ("build line 1: ...") are adora lines, hidden by --quiet.
func (p *nodePrinter) buildLine(l supervisor.LogLine) {
	if l.Stream != daemon.BuildStream {
		p.line(l)
		return
	}
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ui.Info(fmt.Sprintf("%-*s | [adora] %s", p.width, l.Node, l.Line))
}
