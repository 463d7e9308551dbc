package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
)

// LogsCommand prints a dataflow's node logs.
type LogsCommand struct{ Meta *Meta }

func (c *LogsCommand) Synopsis() string { return "Show the logs of a dataflow or one of its nodes" }

func (c *LogsCommand) Help() string {
	return `Usage: adora logs DATAFLOW [NODE] [options]

  Prints the logs of a dataflow (name or uuid), or of one node, gathered
  from the daemons that run it. Lines from several nodes are prefixed with
  the node id.

Options:

  --follow, -f   Keep printing new lines until the dataflow ends or Ctrl-C;
                 rides out a coordinator restart (reconnects for a minute)
  --tail N       Only the last N lines of history (default: all)
` + coordFlagsHelp
}

func (c *LogsCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("logs")
	cf.register(fs)
	follow := fs.Bool("follow", false, "")
	fs.BoolVar(follow, "f", false, "")
	tail := fs.Int("tail", 0, "")
	if err := fs.Parse(reorderArgs(args, fs)); err != nil {
		c.Meta.Ui.Error(err.Error() + "\n\n" + c.Help())
		return 1
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		c.Meta.Ui.Error("adora logs needs a dataflow and optionally a node\n\n" + c.Help())
		return 1
	}
	if *tail < 0 {
		c.Meta.Ui.Error("--tail must not be negative")
		return 1
	}
	df, node := fs.Arg(0), fs.Arg(1)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl, err := cf.dial(ctx)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	defer cl.Close()
	print := func(l proto.LogLine) { c.Meta.Ui.Output(formatLine(l, node == "")) }
	if !*follow {
		lines, err := cl.Logs(ctx, df, node, *tail)
		if err != nil {
			c.Meta.Ui.Error("logs: " + err.Error())
			return 1
		}
		for _, l := range lines {
			print(l)
		}
		return 0
	}
	lc := &liveClient{cl: cl}
	defer lc.swap(nil)
	end, err := followLogs(ctx, c.Meta.Ui, &cf, lc, df, node, *tail, print)
	if errors.Is(err, context.Canceled) {
		return 0 // Ctrl-C
	}
	if err != nil {
		c.Meta.Ui.Error("logs: " + err.Error())
		return 1
	}
	msg := "dataflow " + string(end.Status)
	if end.Error != "" {
		msg += ": " + end.Error
	}
	c.Meta.Ui.Info(msg)
	return 0
}

// reconnectFor is how long a follow keeps trying to reach a coordinator
// that went away (it restarts without stopping any node).
const reconnectFor = time.Minute

// liveClient is the client a follow currently uses; followLogs swaps it
// when it reconnects, so others (a stop on Ctrl-C) use the live one.
type liveClient struct {
	mu sync.Mutex
	cl *client.Client
}

func (l *liveClient) get() *client.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cl
}

// swap installs cl and closes the one it replaces.
func (l *liveClient) swap(cl *client.Client) {
	l.mu.Lock()
	old := l.cl
	l.cl = cl
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// followLogs streams logs until the dataflow ends. When the connection to
// the coordinator drops, it reconnects (for up to reconnectFor) and
// resumes after the last line shown of each node (a proto.LogCursor
// across the reconnects keeps every line to one showing).
func followLogs(ctx context.Context, ui cli.Ui, cf *coordFlags, lc *liveClient, df, node string, tail int, print func(proto.LogLine)) (proto.LogsEnd, error) {
	var cur proto.LogCursor
	var first time.Time // the oldest line shown: where the user's window starts
	shown, resumed := false, false
	show := func(l proto.LogLine) {
		if resumed && l.Time.Before(first) {
			return // before the window (the first --tail left it out)
		}
		if !cur.Next(l) {
			return // shown already (before a reconnect)
		}
		if !shown || l.Time.Before(first) {
			first = l.Time
		}
		shown = true
		print(l)
	}
	for {
		end, err := lc.get().FollowLogs(ctx, df, node, tail, show)
		if !errors.Is(err, wsconn.ErrClosed) || ctx.Err() != nil {
			return end, err
		}
		ui.Warn("lost the coordinator; reconnecting")
		cl, err := redial(ctx, cf)
		if err != nil {
			return end, err
		}
		lc.swap(cl)
		tail, resumed = 0, true
		if shown {
			tail = 1000 // enough to cover the gap; older lines are filtered
		}
	}
}

// redial connects again, retrying every second for up to reconnectFor.
func redial(ctx context.Context, cf *coordFlags) (*client.Client, error) {
	deadline := time.Now().Add(reconnectFor)
	for {
		cl, err := cf.dial(ctx)
		if err == nil {
			return cl, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("coordinator unreachable for %v: %w", reconnectFor, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
