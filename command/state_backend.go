package command

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// coordinatorStateScheme prefixes a -state value that keeps the state in
// the coordinator: coordinator://[HOST[:PORT]]/WORKSPACE.
const coordinatorStateScheme = "coordinator://"

// coordinatorState is a parsed -state coordinator://[HOST[:PORT]]/WORKSPACE.
// An empty Host or a zero Port is taken from the cluster's coordinator
// (localhost and 6013 without a cluster).
type coordinatorState struct {
	Host      string
	Port      int
	Workspace string
}

// parseCoordinatorState parses v, which starts with coordinator://.
func parseCoordinatorState(v string) (coordinatorState, error) {
	const form = "use -state coordinator://[HOST[:PORT]]/WORKSPACE, e.g. coordinator:///default or coordinator://10.0.0.1:6013/team"
	rest := strings.TrimPrefix(v, coordinatorStateScheme)
	hostPort, workspace, ok := strings.Cut(rest, "/")
	if !ok || workspace == "" {
		return coordinatorState{}, fmt.Errorf("-state %s: no workspace; %s", v, form)
	}
	if !proto.ValidID(workspace) {
		return coordinatorState{}, fmt.Errorf("-state %s: workspace %q may hold only letters, digits, '.', '_' and '-'; %s", v, workspace, form)
	}
	cs := coordinatorState{Workspace: workspace}
	if hostPort == "" {
		return cs, nil
	}
	host, port := hostPort, ""
	if h, p, err := net.SplitHostPort(hostPort); err == nil {
		host, port = h, p
	} else if strings.Contains(hostPort, "]") || strings.Count(hostPort, ":") == 1 {
		return coordinatorState{}, fmt.Errorf("-state %s: %q is not HOST or HOST:PORT; %s", v, hostPort, form)
	}
	if u, err := url.Parse("http://" + net.JoinHostPort(host, "1")); err != nil || u.Hostname() != host {
		return coordinatorState{}, fmt.Errorf("-state %s: %q is not a host name or address; %s", v, host, form)
	}
	cs.Host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return coordinatorState{}, fmt.Errorf("-state %s: port %q is not a number from 1 to 65535; %s", v, port, form)
		}
		cs.Port = n
	}
	return cs, nil
}

// options is the coordinator connection of cs: its host and port, else the
// cluster's coordinator, else localhost:6013; the deployment token.
func (cs coordinatorState) options(c *config.Cluster) (client.Options, error) {
	o := client.Options{Addr: cs.Host, Port: cs.Port}
	if o.Addr == "" {
		o.Addr = "localhost"
		if c != nil && c.Coordinator.Addr != "" {
			o.Addr = c.Coordinator.Addr
		}
	}
	if o.Port == 0 {
		o.Port = config.DefaultCoordinatorPort
		if c != nil && c.Coordinator.Port != 0 && (cs.Host == "" || cs.Host == c.Coordinator.Addr) {
			o.Port = c.Coordinator.Port
		}
	}
	tok, err := deployToken()
	if err != nil {
		return client.Options{}, fmt.Errorf("coordinator token for the state: %w", err)
	}
	o.Token = tok
	return o, nil
}

// isCoordinatorState reports whether a -state value names the coordinator.
func isCoordinatorState(v string) bool { return strings.HasPrefix(v, coordinatorStateScheme) }

// openStateBackend selects the state backend: -state
// coordinator://[HOST[:PORT]]/WORKSPACE (the coordinator keeps the state
// and its lock), -state PATH, or adora.state next to the cluster file (the
// current directory for the built-in cluster). c, when known, supplies the
// coordinator's address and port the coordinator form leaves out.
func openStateBackend(flagValue, clusterPath string, c *config.Cluster) (state.Backend, error) {
	if isCoordinatorState(flagValue) {
		cs, err := parseCoordinatorState(flagValue)
		if err != nil {
			return nil, err
		}
		opts, err := cs.options(c)
		if err != nil {
			return nil, err
		}
		return client.NewStateBackend(opts, cs.Workspace), nil
	}
	if strings.Contains(flagValue, "://") {
		return nil, errors.New("-state " + flagValue + ": unknown scheme; give a file path or coordinator://[HOST[:PORT]]/WORKSPACE")
	}
	path := flagValue
	if path == "" {
		dir := "."
		if clusterPath != "" {
			dir = filepath.Dir(clusterPath)
		}
		path = filepath.Join(dir, statefile.DefaultName)
	}
	return statefile.New(path), nil
}

// standaloneStateBackend opens the state for the commands that load no
// project (state list/show, show, force-unlock): -state PATH (default
// ./adora.state), or the coordinator form, whose address defaults to the
// coordinator of -cluster or ./cluster.yml when present. It also returns
// how to name the state in messages.
func standaloneStateBackend(f *deployFlags) (state.Backend, string, error) {
	path := f.statePath
	if path == "" {
		path = statefile.DefaultName
	}
	if !isCoordinatorState(path) {
		b, err := openStateBackend(path, "", nil)
		return b, path, err
	}
	var c *config.Cluster
	clusterPath, _, err := splitDeployArgs(f.cluster, nil)
	if err != nil {
		return nil, "", err
	}
	if clusterPath != "" {
		cl, diags := config.LoadCluster(clusterPath)
		if diags.HasErrors() {
			return nil, "", diags.Err()
		}
		c = cl
	}
	b, err := openStateBackend(path, "", c)
	return b, path, err
}

// stateErr names the coordinator-held state an unreachable coordinator
// was asked for; other errors already say what they are about.
func stateErr(flagValue string, err error) error {
	var ce *client.ConnectError
	if isCoordinatorState(flagValue) && errors.As(err, &ce) {
		return fmt.Errorf("-state %s: %w", flagValue, err)
	}
	return err
}
