package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// Timeouts of adora up and down.
const (
	upCoordinatorWait = 30 * time.Second
	upDaemonWait      = 30 * time.Second
	downWait          = 30 * time.Second
)

// UpCommand starts a local coordinator and daemon in the background.
type UpCommand struct{ Meta *Meta }

func (c *UpCommand) Synopsis() string {
	return "Start a local coordinator and daemon in the background"
}

func (c *UpCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora up [options]

  Starts a coordinator (127.0.0.1) and an unnamed daemon on this machine as
  detached background processes (their own session; logs in
  ADORA_HOME/logs/). Running it again when they already run only says so.
  Then use adora start, list, logs, stop; adora down stops both.

Options:
  --port PORT  Coordinator port (default 6013)
  --auth=false Start the coordinator without authentication (default: on,
               token in ADORA_HOME/token, found there by the CLI and daemon)
`)
}

func (c *UpCommand) Run(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.Int("port", config.DefaultCoordinatorPort, "")
	withAuth := fs.Bool("auth", true, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		c.Meta.Ui.Error(fmt.Sprintf("adora up: %v\n\n%s", err, c.Help()))
		return 1
	}
	if err := c.up(*port, *withAuth); err != nil {
		c.Meta.Ui.Error("adora up: " + err.Error())
		return 1
	}
	return 0
}

func (c *UpCommand) up(port int, withAuth bool) error {
	home, err := paths.EnsureHome()
	if err != nil {
		return err
	}
	opts := client.Options{Addr: "127.0.0.1", Port: port}
	ctx := context.Background()
	h, err := client.Health(ctx, opts)
	if err == nil {
		c.Meta.Ui.Output(fmt.Sprintf("coordinator already running on 127.0.0.1:%d (adora %s)", port, h.Version))
	} else {
		args := []string{"coordinator", "--interface", "127.0.0.1", "--port", strconv.Itoa(port),
			"--auth=" + strconv.FormatBool(withAuth), "--quiet"}
		pid, err := startDetached(home, "coordinator", args)
		if err != nil {
			return err
		}
		if h, err = waitHealth(ctx, opts, upCoordinatorWait, func(proto.Health) bool { return true }); err != nil {
			return fmt.Errorf("coordinator (pid %d) did not answer within %v: %w; see %s", pid, upCoordinatorWait, err, logFile(home, "coordinator"))
		}
		c.Meta.Ui.Output(fmt.Sprintf("coordinator started on 127.0.0.1:%d (pid %d)", port, pid))
	}
	if hasUnnamedDaemon(h) {
		c.Meta.Ui.Output("daemon already running")
		return nil
	}
	pid, err := startDetached(home, "daemon", []string{"daemon", "--coordinator-addr", "127.0.0.1", "--coordinator-port", strconv.Itoa(port),
		"--zenoh-listen", "tcp/127.0.0.1:0", "--quiet"})
	if err != nil {
		return err
	}
	if _, err := waitHealth(ctx, opts, upDaemonWait, hasUnnamedDaemon); err != nil {
		return fmt.Errorf("daemon (pid %d) did not register within %v: %w; see %s", pid, upDaemonWait, err, logFile(home, "daemon"))
	}
	c.Meta.Ui.Output(fmt.Sprintf("daemon started (pid %d)", pid))
	return nil
}

func hasUnnamedDaemon(h proto.Health) bool {
	for _, d := range h.Daemons {
		if d.MachineID == "" {
			return true
		}
	}
	return false
}

// waitHealth polls the health endpoint until ok accepts the answer.
func waitHealth(ctx context.Context, opts client.Options, timeout time.Duration, ok func(proto.Health) bool) (proto.Health, error) {
	deadline := time.Now().Add(timeout)
	var last error = errors.New("not ready")
	for time.Now().Before(deadline) {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		h, err := client.Health(hctx, opts)
		cancel()
		if err == nil && ok(h) {
			return h, nil
		}
		if err != nil {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return proto.Health{}, last
}

func logFile(home, name string) string { return filepath.Join(home, "logs", name+".log") }

func pidFile(home, name string) string { return filepath.Join(home, "up", name+".pid") }

// startDetached starts this adora binary with args in a new session, stdin
// from /dev/null and output appended to ADORA_HOME/logs/<name>.log, and
// records its pid in ADORA_HOME/up/<name>.pid.
func startDetached(home, name string, args []string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(home, "logs"), 0o700); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	out, err := os.OpenFile(logFile(home, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	defer out.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	if err := os.MkdirAll(filepath.Join(home, "up"), 0o700); err == nil {
		os.WriteFile(pidFile(home, name), []byte(strconv.Itoa(pid)+"\n"), 0o600)
	}
	return pid, nil
}

// DownCommand stops what adora up started.
type DownCommand struct{ Meta *Meta }

func (c *DownCommand) Synopsis() string { return "Stop the local coordinator and daemon" }

func (c *DownCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora down [options]

  Destroys everything the local coordinator runs (every dataflow is stopped
  gracefully, every connected daemon exits), then waits for the coordinator
  and the daemon adora up started to exit. Nothing running is not an error.

Options:
  --port PORT   Coordinator port (default 6013)
  --token TOKEN Bearer token (default: $ADORA_AUTH_TOKEN, then ADORA_HOME/token)
`)
}

func (c *DownCommand) Run(args []string) int {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.Int("port", config.DefaultCoordinatorPort, "")
	tokenFlag := fs.String("token", "", "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		c.Meta.Ui.Error(fmt.Sprintf("adora down: %v\n\n%s", err, c.Help()))
		return 1
	}
	home, err := paths.Home()
	if err != nil {
		c.Meta.Ui.Error("adora down: " + err.Error())
		return 1
	}
	token, err := auth.Resolve(*tokenFlag)
	if err != nil {
		c.Meta.Ui.Error("adora down: " + err.Error())
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), downWait)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: "127.0.0.1", Port: *port, Token: token})
	var ce *client.ConnectError
	switch {
	case errors.As(err, &ce):
		c.Meta.Ui.Output(fmt.Sprintf("no coordinator running on 127.0.0.1:%d", *port))
	case err != nil:
		c.Meta.Ui.Error("adora down: " + err.Error())
		return 1
	default:
		err = cl.Destroy(ctx)
		cl.Close()
		if err != nil {
			c.Meta.Ui.Error("adora down: destroy: " + err.Error())
			return 1
		}
		c.Meta.Ui.Output("destroyed: dataflows stopped, daemons told to exit")
	}
	failed := false
	for _, name := range []string{"daemon", "coordinator"} {
		if !c.waitExit(home, name) {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// waitExit waits for the process adora up recorded under name to exit;
// after downWait it is sent SIGTERM. It reports false if it still runs.
func (c *DownCommand) waitExit(home, name string) bool {
	b, err := os.ReadFile(pidFile(home, name))
	if err != nil {
		return true
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		os.Remove(pidFile(home, name))
		return true
	}
	for deadline := time.Now().Add(downWait); ; {
		if !isAdora(pid) {
			os.Remove(pidFile(home, name))
			c.Meta.Ui.Output(fmt.Sprintf("%s stopped (pid %d)", name, pid))
			return true
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	time.Sleep(2 * time.Second)
	if isAdora(pid) {
		c.Meta.Ui.Error(fmt.Sprintf("adora down: %s (pid %d) is still running", name, pid))
		return false
	}
	os.Remove(pidFile(home, name))
	c.Meta.Ui.Output(fmt.Sprintf("%s stopped with SIGTERM (pid %d)", name, pid))
	return true
}

// isAdora reports whether pid runs (not a zombie) an adora binary, so a
// reused pid is never signalled.
func isAdora(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || strings.HasPrefix(s[i+1:], " Z") {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 1 && (args[1] == "daemon" || args[1] == "coordinator")
}
