package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/runtime/coordinator"
	"github.com/adora-rs/adora/runtime/coordinator/store"
)

// CoordinatorCommand runs the coordinator.
type CoordinatorCommand struct{ Meta *Meta }

func (c *CoordinatorCommand) Synopsis() string {
	return "Run the coordinator (control plane for daemons and the CLI)"
}

func (c *CoordinatorCommand) Help() string {
	return `Usage: adora coordinator [options]

  Runs the coordinator: the WebSocket control plane daemons register with
  and the CLI talks to, on one port (/api/control, /api/daemon, /api/health,
  /api/artifacts).

  Authentication is ON by default: every endpoint but /api/health needs
  "Authorization: Bearer <token>". The token is generated once (32 random
  bytes) and kept in ADORA_HOME/token (mode 0600); later starts reuse it.
  The CLI and local daemons find it there; give remote daemons the same
  token through ADORA_AUTH_TOKEN or a token file. --auth=false turns
  authentication off (only on trusted networks).

  State (daemons, dataflows) is kept in a bbolt file, so a restarted
  coordinator picks up running dataflows without restarting their nodes.

Options:

  --interface IP     Address to listen on (default 127.0.0.1, or
                     $ADORA_COORDINATOR_INTERFACE; 0.0.0.0 for all)
  --port PORT        Port (default 6013, or $ADORA_COORDINATOR_PORT; 0 picks
                     a free one)
  --store SPEC       file[:PATH] (default, PATH defaults to
                     ADORA_HOME/coordinator.db), memory, or redb[:PATH] (an
                     alias of file). A memory store forgets every dataflow
                     when the coordinator stops; what daemons still run of
                     them is stopped after --unknown-grace
  --auth BOOL        Require the bearer token (default true)
  --token-file PATH  Token file (default ADORA_HOME/token)
  --quiet            Log warnings and errors only
  --unknown-grace D  How long a daemon may run a dataflow this coordinator
                     has no record of (after a restart with --store
                     memory, say) before the coordinator stops it
                     (default 1m; a negative duration: never)
  --spawn-timeout D  How long a daemon may take to start its nodes of a
                     dataflow, build: lines included, before the start
                     fails and is rolled back (default 15m)
`
}

type coordinatorFlags struct {
	iface, store, tokenFile string
	port                    int
	auth, quiet             bool
	unknownGrace            time.Duration
	spawnTimeout            time.Duration
}

func (c *CoordinatorCommand) Run(args []string) int {
	var f coordinatorFlags
	fs := coordFlagSet("coordinator")
	iface := os.Getenv("ADORA_COORDINATOR_INTERFACE")
	if iface == "" {
		iface = "127.0.0.1"
	}
	port := config.DefaultCoordinatorPort
	if p, err := strconv.Atoi(os.Getenv(envCoordinatorPort)); err == nil && p >= 0 {
		port = p
	}
	fs.StringVar(&f.iface, "interface", iface, "")
	fs.IntVar(&f.port, "port", port, "")
	fs.StringVar(&f.store, "store", "file", "")
	fs.BoolVar(&f.auth, "auth", true, "")
	fs.StringVar(&f.tokenFile, "token-file", "", "")
	fs.BoolVar(&f.quiet, "quiet", false, "")
	fs.DurationVar(&f.unknownGrace, "unknown-grace", coordinator.DefaultUnknownGrace, "")
	fs.DurationVar(&f.spawnTimeout, "spawn-timeout", coordinator.DefaultSpawnTimeout, "")
	if err := fs.Parse(args); err != nil {
		c.Meta.Ui.Error(err.Error() + "\n\n" + c.Help())
		return 1
	}
	if f.spawnTimeout <= 0 {
		c.Meta.Ui.Error(fmt.Sprintf("--spawn-timeout %s: must be positive", f.spawnTimeout))
		return 1
	}
	if fs.NArg() > 0 {
		c.Meta.Ui.Error("adora coordinator takes no arguments\n\n" + c.Help())
		return 1
	}
	if err := c.run(f); err != nil {
		c.Meta.Ui.Error("adora coordinator: " + err.Error())
		return 1
	}
	return 0
}

func (c *CoordinatorCommand) run(f coordinatorFlags) error {
	level := slog.LevelInfo
	if f.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(uiWriter{c.Meta}, &slog.HandlerOptions{Level: level}))
	if err := auth.ProtectProcess(); err != nil {
		log.Warn("cannot keep the token from other processes of this user", "err", err)
	}

	home, err := paths.EnsureHome()
	if err != nil {
		return err
	}
	st, err := store.Open(f.store, filepath.Join(home, "coordinator.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	var token string
	if f.auth {
		tf := f.tokenFile
		if tf == "" {
			tf = filepath.Join(home, "token")
		}
		tok, created, err := auth.LoadOrCreate(tf)
		if err != nil {
			return err
		}
		token = tok
		if created {
			log.Info("generated a new auth token", "file", tf)
		} else {
			log.Info("auth enabled", "token_file", tf)
		}
	} else {
		log.Warn("authentication is OFF: anyone who can reach this port controls the cluster")
	}

	coord, err := coordinator.New(coordinator.Config{Store: st, Token: token, ArtifactsDir: filepath.Join(home, "artifacts"), Logger: log,
		UnknownGrace: f.unknownGrace, SpawnTimeout: f.spawnTimeout})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(f.iface, strconv.Itoa(f.port)))
	if err != nil {
		coord.Close()
		return fmt.Errorf("listen on %s port %d: %w", f.iface, f.port, err)
	}
	c.Meta.Ui.Output(fmt.Sprintf("Listening on %s (port %d)", ln.Addr(), ln.Addr().(*net.TCPAddr).Port))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = coord.Serve(ctx, ln)
	select {
	case <-coord.Destroyed():
		c.Meta.Ui.Output("Coordinator destroyed: dataflows stopped, daemons told to exit")
	default:
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// uiWriter sends log lines to the UI's error stream.
type uiWriter struct{ m *Meta }

func (w uiWriter) Write(p []byte) (int, error) {
	w.m.Ui.Error(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = uiWriter{}
