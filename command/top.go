package command

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

// TopCommand shows live per-node resource usage.
type TopCommand struct{ Meta *Meta }

func (c *TopCommand) Synopsis() string { return "Show per-node CPU, memory, restarts and status" }

func (c *TopCommand) Help() string {
	return `Usage: adora top [options]

  Shows, for every node of every running dataflow, its process id, CPU and
  memory use, restart count, status and dropped input messages, refreshed
  every --interval until Ctrl-C. Daemons report these every 2 seconds.

  Below, one line per machine shows its cross-machine (Zenoh) data plane:
  peers linked out of those expected (the other machines of its running
  dataflows) and which are unreachable, messages and bytes per second in
  and out, messages dropped and connections refused for lack of valid
  data-plane credentials (both counted since the daemon started).

Options:

  --once         Print one snapshot as JSON and exit
  --interval D   Refresh interval (default 2s)
` + coordFlagsHelp
}

func (c *TopCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("top")
	cf.register(fs)
	once := fs.Bool("once", false, "")
	interval := fs.Duration("interval", 2*time.Second, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		c.Meta.Ui.Error(parseProblem(err, fs) + "\n\n" + c.Help())
		return 1
	}
	if *interval < 100*time.Millisecond {
		c.Meta.Ui.Error("--interval must be at least 100ms")
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
	if *once {
		top, err := cl.Top(ctx)
		if err != nil {
			c.Meta.Ui.Error("top: " + err.Error())
			return 1
		}
		b, _ := json.MarshalIndent(top, "", "  ")
		c.Meta.Ui.Output(string(b))
		return 0
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		top, err := cl.Top(ctx)
		if ctx.Err() != nil {
			return 0
		}
		if err != nil {
			c.Meta.Ui.Error("top: " + err.Error())
			return 1
		}
		if stdoutIsTerminal() {
			c.Meta.Ui.Output("\x1b[H\x1b[2J" + renderTop(top)) // redraw in place
		} else {
			c.Meta.Ui.Output(renderTop(top) + "\n")
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
}

// renderTop renders a TopReply as a table of nodes, then a table of the
// machines' data planes.
func renderTop(top proto.TopReply) string {
	out := renderTopNodes(top)
	if len(top.DataPlane) > 0 {
		out += "\n\n" + renderDataPlane(top.DataPlane)
	}
	return out
}

func renderTopNodes(top proto.TopReply) string {
	if len(top.Nodes) == 0 {
		return "No nodes running."
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DATAFLOW\tNODE\tMACHINE\tPID\tCPU%\tMEMORY\tRESTARTS\tSTATUS\tDROPS")
	for _, n := range top.Nodes {
		machine := n.MachineID
		if machine == "" {
			machine = shortID(n.DaemonID)
		}
		pid := "-"
		if n.PID > 0 {
			pid = fmt.Sprint(n.PID)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.1f\t%s\t%d\t%s\t%d\n", n.DataflowName, n.NodeID, machine, pid, n.CPUPercent, bytesHuman(n.MemoryBytes), n.Restarts, n.Status, n.Drops)
	}
	w.Flush()
	if top.Omitted > 0 {
		fmt.Fprintf(&b, "(%d more nodes not shown)\n", top.Omitted)
	}
	return strings.TrimRight(b.String(), "\n")
}

// renderDataPlane renders one line per machine's data-plane links.
func renderDataPlane(ds []proto.DataPlaneStatus) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MACHINE\tZENOH PEERS\tMSGS IN/S\tMSGS OUT/S\tIN/S\tOUT/S\tDROPPED\tAUTH REFUSED\tUNREACHABLE")
	for _, d := range ds {
		machine := d.MachineID
		if machine == "" {
			machine = shortID(d.DaemonID)
		}
		down := "-"
		if len(d.Unreachable) > 0 {
			down = strings.Join(d.Unreachable, ",")
		}
		fmt.Fprintf(w, "%s\t%d/%d\t%.1f\t%.1f\t%s\t%s\t%d\t%d\t%s\n", machine, d.PeersUp, d.PeersExpected,
			d.MessagesInPerSec, d.MessagesOutPerSec, rateHuman(d.BytesInPerSec), rateHuman(d.BytesOutPerSec),
			d.Counters.Dropped, d.Counters.AuthRefused, down)
	}
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// rateHuman renders bytes per second.
func rateHuman(perSec float64) string { return bytesHuman(uint64(perSec+0.5)) + "/s" }

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// stdoutIsTerminal reports whether stdout is a terminal.
func stdoutIsTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
