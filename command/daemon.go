package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/runtime/daemon"
	"github.com/adora-rs/adora/runtime/proto/wsconn"
	"github.com/adora-rs/adora/transport/zenoh"
)

// DaemonCommand runs the per-machine daemon in the foreground.
type DaemonCommand struct{ Meta *Meta }

func (c *DaemonCommand) Synopsis() string { return "Run the daemon that spawns and supervises nodes" }

func (c *DaemonCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora daemon [options]

  Runs the daemon of this machine in the foreground: it registers with the
  coordinator under a stable identity (kept in ADORA_HOME/daemon/<machine
  id>/identity), spawns and supervises the nodes the coordinator assigns,
  and reconnects forever when the coordinator goes away, keeping its nodes
  running. Ctrl-C (or SIGTERM) stops the nodes gracefully and exits; a
  second one exits at once. If the daemon is killed, its nodes get SIGTERM
  from the kernel, and the next start reaps whatever they left behind.

  The identity belongs to (ADORA_HOME, machine id): two daemons on one
  machine need different --machine-id values (or ADORA_HOME directories).

Options:
  --machine-id ID          Machine id nodes are placed on (_unstable_deploy.machine).
                           Without it the daemon is "unnamed".
  --coordinator-addr ADDR  Coordinator IP address or hostname (default 127.0.0.1)
  --coordinator-port PORT  Coordinator port (default 6013)
  --labels k=v,...         Labels for label placement
  --token TOKEN            Bearer token (default: $ADORA_AUTH_TOKEN, then ADORA_HOME/token,
                           read again at each connection attempt)
  --token-file PATH        Read the bearer token from PATH (mode 0600), again at
                           each connection attempt
  --zenoh-listen ENDPOINT  Where other daemons reach this one for cross-machine
                           data (default tcp/0.0.0.0:0: any address, a free port;
                           "none" keeps every dataflow on this machine). With a
                           token, links are authenticated (Zenoh usrpwd, with
                           credentials derived from the token) both ways; the
                           data itself is not encrypted (see docs/zenoh.md)
  --zenoh-advertise EPS    Endpoints to tell other daemons, comma-separated
                           (default: the listen port on the address this machine
                           uses to reach the coordinator)
  --build-timeout DURATION Bound on each node's build (its build: lines, run
                           in the node's working directory before the
                           dataflow's first spawn here; default 10m)
  --quiet                  Log warnings and errors only

Exit status: 0 after a stop or a destroy request, 1 when the coordinator
refuses the daemon (for example: its machine id is already taken by a live
daemon) or on a usage error.
`)
}

type daemonFlags struct {
	machineID string
	addr      string
	port      int
	labels    string
	token     string
	tokenFile string
	quiet     bool
	zListen   string
	zAdvert   string
	buildTO   time.Duration
}

func (c *DaemonCommand) Run(args []string) int {
	var f daemonFlags
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.machineID, "machine-id", "", "")
	fs.StringVar(&f.addr, "coordinator-addr", "127.0.0.1", "")
	fs.IntVar(&f.port, "coordinator-port", config.DefaultCoordinatorPort, "")
	fs.StringVar(&f.labels, "labels", "", "")
	fs.StringVar(&f.token, "token", "", "")
	fs.StringVar(&f.tokenFile, "token-file", "", "")
	fs.BoolVar(&f.quiet, "quiet", false, "")
	fs.StringVar(&f.zListen, "zenoh-listen", "tcp/0.0.0.0:0", "")
	fs.StringVar(&f.zAdvert, "zenoh-advertise", "", "")
	fs.DurationVar(&f.buildTO, "build-timeout", daemon.DefaultBuildTimeout, "")
	if err := fs.Parse(args); err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("adora daemon: %v\n\n%s", err, c.Help()))
		return 1
	}
	if fs.NArg() > 0 {
		c.Meta.Ui.Error(fmt.Sprintf("adora daemon: unexpected argument %q\n\n%s", fs.Arg(0), c.Help()))
		return 1
	}
	cfg, err := f.config()
	if err != nil {
		c.Meta.Ui.Error("adora daemon: " + err.Error())
		return 1
	}
	level := slog.LevelInfo
	if f.quiet {
		level = slog.LevelWarn
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := auth.ProtectProcess(); err != nil {
		cfg.Logger.Warn("cannot keep the token from other processes of this user", "err", err)
	}
	cfg.NewRouter = daemon.DataplaneRouter
	if f.zListen != "none" && f.zListen != "" {
		zs, eps, err := openZenoh(f, cfg.Coordinator.Token, cfg.Logger)
		if err != nil {
			c.Meta.Ui.Error("adora daemon: " + err.Error())
			return 1
		}
		defer zs.Close()
		cfg.Transport, cfg.Endpoints = zs, eps
		if cfg.TokenSource != nil {
			// The token read before each connection attempt sets the
			// data-plane credentials too.
			cfg.TokenSource = daemon.FollowToken(cfg.TokenSource, zs, cfg.Coordinator.Token, cfg.Logger.With("component", "zenoh"))
		}
	}
	d, err := daemon.New(cfg)
	if err != nil {
		c.Meta.Ui.Error("adora daemon: " + err.Error())
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	cfg.Logger.Info("daemon starting", "daemon_id", d.ID(), "machine_id", f.machineID,
		"coordinator", cfg.Coordinator.URL(""), "state", d.StateDir())
	if err := d.Run(ctx); err != nil {
		// daemon.ErrRefused (duplicate machine id, protocol mismatch) ends
		// here: retrying cannot help.
		c.Meta.Ui.Error("adora daemon: " + err.Error())
		return 1
	}
	return 0
}

func (f daemonFlags) config() (daemon.Config, error) {
	var cfg daemon.Config
	if f.buildTO < 0 {
		return cfg, fmt.Errorf("--build-timeout %v: must not be negative", f.buildTO)
	}
	cfg.BuildTimeout = f.buildTO
	if f.machineID != "" {
		if err := config.ValidID("machine id", f.machineID); err != nil {
			return cfg, fmt.Errorf("--machine-id: %w", err)
		}
	}
	labels, err := parseLabels(f.labels)
	if err != nil {
		return cfg, err
	}
	if f.port <= 0 || f.port > 65535 {
		return cfg, fmt.Errorf("--coordinator-port %d: must be 1-65535", f.port)
	}
	if f.addr == "" {
		return cfg, errors.New("--coordinator-addr must not be empty")
	}
	// A token from a file is read again before each connection attempt:
	// a daemon started before the coordinator wrote ADORA_HOME/token (or
	// one whose coordinator made a new token) gets in once the file has
	// the coordinator's token.
	var token string
	switch {
	case f.tokenFile != "":
		path := f.tokenFile
		if token, err = auth.Read(path); err != nil {
			return cfg, err
		}
		cfg.TokenSource = func() (string, error) { return auth.Read(path) }
	case f.token != "" || strings.TrimSpace(os.Getenv(auth.EnvToken)) != "":
		if token, err = auth.Resolve(f.token); err != nil {
			return cfg, err
		}
	default:
		if token, err = homeToken(); err != nil {
			return cfg, err
		}
		cfg.TokenSource = homeToken
	}
	cfg.MachineID = f.machineID
	cfg.Labels = labels
	cfg.Coordinator = wsconn.Endpoint{Addr: f.addr, Port: f.port, Token: token}
	return cfg, nil
}

// homeToken reads ADORA_HOME/token; "" when there is none (yet).
func homeToken() (string, error) {
	p, err := paths.TokenFile()
	if err != nil {
		return "", nil
	}
	tok, err := auth.Read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return tok, err
}

// parseLabels parses "k=v,k2=v2" as given to --labels.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var problems []string
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("%q is not key=value", kv))
			continue
		}
		if err := config.ValidID("label key", k); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if err := config.ValidLabelValue(v); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if _, dup := out[k]; dup {
			problems = append(problems, fmt.Sprintf("label %q given twice", k))
		}
		out[k] = v
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("--labels: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits the process at once (node processes then get SIGTERM from the
// kernel, see runtime/supervisor).
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "adora: second interrupt, exiting now")
			os.Exit(1)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

// openZenoh opens the daemon's Zenoh session (peer mode) and works out the
// endpoints other daemons should dial. With a coordinator token the
// session authenticates every link with the credentials derived from it
// (daemon.DataPlaneCredentials).
func openZenoh(f daemonFlags, token string, log *slog.Logger) (*zenoh.Session, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	zlog := log.With("component", "zenoh")
	zs, err := zenoh.Open(ctx, zenoh.Config{Mode: zenoh.Peer, Listen: []string{f.zListen}, Logger: zlog,
		Credentials: daemon.DataPlaneCredentials(token)})
	if err != nil {
		return nil, nil, fmt.Errorf("--zenoh-listen %s: %w", f.zListen, err)
	}
	if token != "" {
		zlog.Info("data plane authenticated: links need the credentials derived from the coordinator token")
	} else {
		zlog.Warn("data plane not authenticated: no coordinator token (yet); anyone who reaches the Zenoh port can link")
	}
	if f.zAdvert != "" {
		return zs, strings.Split(f.zAdvert, ","), nil
	}
	ip := outboundIP(f.addr, f.port)
	var eps []string
	for _, ep := range zs.ListenEndpoints() {
		addr, ok := strings.CutPrefix(ep, "tcp/")
		host, port, err := net.SplitHostPort(addr)
		if !ok || err != nil {
			continue
		}
		if h := net.ParseIP(host); h != nil && h.IsUnspecified() && ip != "" {
			host = ip
		}
		eps = append(eps, "tcp/"+net.JoinHostPort(host, port))
	}
	return zs, eps, nil
}

// outboundIP is the local address this machine uses to reach host (no
// packet is sent); "" when unknown.
func outboundIP(host string, port int) string {
	c, err := net.Dial("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return a.IP.String()
	}
	return ""
}
