package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/runtime/client"
)

// Environment variables the coordinator flags default from.
const (
	envCoordinatorAddr = "ADORA_COORDINATOR_ADDR"
	envCoordinatorPort = "ADORA_COORDINATOR_PORT"
)

// coordFlagsHelp documents coordFlags for command help texts.
const coordFlagsHelp = `  --coordinator-addr ADDR  Coordinator hostname or IP (default localhost,
                           or $ADORA_COORDINATOR_ADDR)
  --coordinator-port PORT  Coordinator port (default 6013, or
                           $ADORA_COORDINATOR_PORT)
  --token TOKEN            Bearer token (default $ADORA_AUTH_TOKEN, then
                           ADORA_HOME/token)`

// coordFlags are the flags every command that talks to the coordinator
// shares. Register them on a FlagSet, parse, then call options or dial.
type coordFlags struct {
	addr  string
	port  int
	token string
}

// register adds --coordinator-addr, --coordinator-port and --token to fs.
func (f *coordFlags) register(fs *flag.FlagSet) {
	addr := os.Getenv(envCoordinatorAddr)
	if addr == "" {
		addr = "localhost"
	}
	port := config.DefaultCoordinatorPort
	if p, err := strconv.Atoi(os.Getenv(envCoordinatorPort)); err == nil && p > 0 {
		port = p
	}
	fs.StringVar(&f.addr, "coordinator-addr", addr, "coordinator hostname or IP")
	fs.IntVar(&f.port, "coordinator-port", port, "coordinator port")
	fs.StringVar(&f.token, "token", "", "bearer token")
}

// options resolves the token and returns client options.
func (f *coordFlags) options() (client.Options, error) {
	if strings.TrimSpace(f.addr) == "" {
		return client.Options{}, fmt.Errorf("--coordinator-addr must not be empty")
	}
	addr, port := f.addr, f.port
	// Accept "host:port" too (the port then wins over --coordinator-port).
	if h, p, err := net.SplitHostPort(addr); err == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil {
			return client.Options{}, fmt.Errorf("--coordinator-addr %q: bad port %q", f.addr, p)
		}
		addr, port = h, n
	}
	if port <= 0 || port > 65535 {
		return client.Options{}, fmt.Errorf("--coordinator-port %d: must be between 1 and 65535", port)
	}
	tok, err := auth.Resolve(f.token)
	if err != nil {
		return client.Options{}, err
	}
	return client.Options{Addr: addr, Port: port, Token: tok}, nil
}

// dial connects to the coordinator (10 s to answer).
func (f *coordFlags) dial(ctx context.Context) (*client.Client, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return client.Dial(dctx, opts)
}

// coordFlagSet returns a FlagSet that reports errors through the command's
// help instead of printing them itself.
func coordFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {}
	// The caller reports parse errors through the Ui; the flag package
	// must not print them a second time.
	fs.SetOutput(io.Discard)
	return fs
}
