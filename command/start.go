package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// StartCommand starts a dataflow through the coordinator.
type StartCommand struct{ Meta *Meta }

func (c *StartCommand) Synopsis() string { return "Start a dataflow on the cluster" }

func (c *StartCommand) Help() string {
	return `Usage: adora start FILE [options]

  Starts the dataflow in FILE through the coordinator: its nodes are placed
  on the connected daemons (machine > labels > unnamed), every involved
  daemon spawns its nodes, and if any daemon fails the others are rolled
  back. Relative node paths resolve against FILE's directory on each
  daemon. Nodes with "_unstable_deploy.distribute: http" are uploaded to the
  coordinator's artifact store first; nodes with "distribute: scp" are
  copied over SSH to the working directory on their machines, which needs
  the cluster file (--cluster, default ./cluster.yml when it exists).

  With --attach (the default when stdin is a terminal) the node logs are
  streamed until the dataflow ends, across a coordinator restart; Ctrl-C
  stops it (a second Ctrl-C kills it). Exit status 1 if the start failed
  or the dataflow failed.

Options:

  --name NAME    Dataflow name (default: a generated two-word name)
  --attach       Stream logs until the dataflow ends
  --detach       Return once the dataflow runs
  --cluster FILE Cluster file for "distribute: scp" nodes (default
                 ./cluster.yml when present)
` + coordFlagsHelp
}

func (c *StartCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("start")
	cf.register(fs)
	name := fs.String("name", "", "")
	fs.StringVar(name, "n", "", "")
	attach := fs.Bool("attach", false, "")
	detach := fs.Bool("detach", false, "")
	clusterPath := fs.String("cluster", "", "")
	if err := fs.Parse(reorderArgs(args, fs)); err != nil {
		c.Meta.Ui.Error(err.Error() + "\n\n" + c.Help())
		return 1
	}
	if fs.NArg() != 1 {
		c.Meta.Ui.Error("adora start needs exactly one dataflow file\n\n" + c.Help())
		return 1
	}
	if *attach && *detach {
		c.Meta.Ui.Error("--attach and --detach exclude each other")
		return 1
	}
	wantAttach := *attach || (!*detach && stdinIsTerminal())

	req, err := c.loadStart(fs.Arg(0), *name)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := cf.dial(ctx)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	defer cl.Close()
	opts, _ := cf.options()
	if *clusterPath == "" {
		if _, err := os.Stat("cluster.yml"); err == nil {
			*clusterPath = "cluster.yml"
		}
	}
	if err := deliverSCPNodes(ctx, c.Meta.Ui, *clusterPath, &req); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	if err := client.UploadHTTPArtifacts(ctx, opts, &req); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	rep, err := cl.Start(ctx, req)
	if err != nil {
		c.Meta.Ui.Error("start " + fs.Arg(0) + ": " + err.Error())
		return 1
	}
	c.Meta.Ui.Output(fmt.Sprintf("dataflow `%s` started: %s", rep.Name, rep.DataflowID))
	for _, p := range rep.Placements {
		c.Meta.Ui.Output("  " + p.Reason)
	}
	if !wantAttach {
		return 0
	}
	lc := &liveClient{cl: cl}
	defer lc.swap(nil)
	return attachLogs(stop, c.Meta, &cf, lc, rep.Name, rep.DataflowID)
}

// loadStart reads and checks the dataflow file.
func (c *StartCommand) loadStart(path, name string) (proto.Start, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return proto.Start{}, err
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return proto.Start{}, fmt.Errorf("read dataflow: %w", err)
	}
	df, diags := config.ParseDataflow(src, path)
	for _, w := range diags.Warnings() {
		c.Meta.Ui.Warn(w.String())
	}
	if diags.HasErrors() || df == nil {
		return proto.Start{}, diags.Err()
	}
	return proto.Start{Name: name, Descriptor: src, Dataflow: *df, WorkingDir: filepath.Dir(abs)}, nil
}

// attachLogs streams a dataflow's logs until it ends, riding out a
// coordinator restart. The first interrupt stops the dataflow gracefully;
// a second one kills it and stops waiting.
func attachLogs(stopSignals func(), m *Meta, cf *coordFlags, lc *liveClient, name, id string) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stopSignals() // from here on, interrupts arrive on sigs

	followCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		end proto.LogsEnd
		err error
	}
	done := make(chan result, 1)
	go func() {
		end, err := followLogs(followCtx, m.Ui, cf, lc, id, "", 0, func(l proto.LogLine) { m.Ui.Output(formatLine(l, true)) })
		done <- result{end, err}
	}()
	var stops sync.WaitGroup // Stop calls in flight; waited for before returning
	defer stops.Wait()
	stopping := false
	for {
		select {
		case r := <-done:
			switch {
			case errors.Is(r.err, context.Canceled):
				m.Ui.Error(fmt.Sprintf("interrupted; check dataflow `%s` with `adora list`", name))
				return 1
			case r.err != nil:
				m.Ui.Error(fmt.Sprintf("logs: %v; dataflow `%s` may still run (check with `adora list`)", r.err, name))
				return 1
			}
			return reportEnd(m, name, r.end)
		case <-sigs:
			force := stopping
			stopping = true
			if force {
				m.Ui.Output("Second interrupt: killing the dataflow")
			} else {
				m.Ui.Output(fmt.Sprintf("Stopping dataflow `%s` (Ctrl-C again to kill)", name))
			}
			stops.Add(1)
			go func() {
				defer stops.Done()
				sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
				defer scancel()
				rep, err := lc.get().Stop(sctx, id, 0, force)
				switch {
				case err != nil:
					m.Ui.Error("stop: " + err.Error())
				case rep.Error != "":
					m.Ui.Error("stop: " + rep.Error)
				}
				if force {
					cancel() // do not wait for the end any longer
				}
			}()
		}
	}
}

func reportEnd(m *Meta, name string, end proto.LogsEnd) int {
	switch end.Status {
	case proto.FlowSucceeded, proto.FlowStopped:
		if end.Error != "" {
			m.Ui.Error(fmt.Sprintf("dataflow `%s` %s with problems: %s", name, end.Status, end.Error))
			return 1
		}
		m.Ui.Output(fmt.Sprintf("dataflow `%s` %s", name, end.Status))
		return 0
	}
	msg := fmt.Sprintf("dataflow `%s` %s", name, end.Status)
	if end.Error != "" {
		msg += ": " + end.Error
	}
	m.Ui.Error(msg)
	return 1
}

// formatLine renders one node log line; withNode prefixes the node id.
func formatLine(l proto.LogLine, withNode bool) string {
	if withNode && l.NodeID != "" {
		return l.NodeID + ": " + l.Line
	}
	return l.Line
}

// reorderArgs moves flags that follow positional arguments to the front,
// so "adora start df.yml --name x" works with the standard flag package.
// Everything after "--" stays positional.
func reorderArgs(args []string, fs *flag.FlagSet) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the parser reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(flags, "--"), pos...)
}

// stdinIsTerminal reports whether stdin is a terminal.
func stdinIsTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
