package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// ClusterCommand is the parent of the "adora cluster" subcommands.
type ClusterCommand struct{ Meta *Meta }

func (c *ClusterCommand) Synopsis() string { return "Manage a fleet of machines from a cluster.yml" }

func (c *ClusterCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora cluster <subcommand> [options] [args]

  Manage the daemons of the machines listed in a cluster.yml over SSH
  (BatchMode, 10 s connect timeout, known_hosts accept-new). Every command
  exits 1 when any machine failed, naming it.

"cluster status" and "cluster restart" talk to the coordinator only.

Environment:
  ADORA_KNOWN_HOSTS  known_hosts file to use (default ~/.ssh/known_hosts)
  SSH_AUTH_SOCK      ssh-agent socket, used when a machine names no key
`)
}

func (c *ClusterCommand) Run([]string) int { return cli.RunResultHelp }

// clusterFlags are the options every fleet-wide cluster command shares.
type clusterFlags struct {
	parallelism int
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.parallelism, "parallelism", remote.DefaultParallelism, "machines handled at once")
}

// clusterFlagSet returns a flag set whose errors go to ui.
func clusterFlagSet(ui cli.Ui, name string, help func() string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { ui.Error(help()) }
	return fs
}

// clusterParse parses args; on error it prints the problem and the usage.
func clusterParse(ui cli.Ui, fs *flag.FlagSet, args []string) bool {
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			ui.Error(err.Error())
		}
		fs.Usage()
		return false
	}
	return true
}

// clusterLoad reads and validates a cluster file, printing every
// diagnostic.
func clusterLoad(ui cli.Ui, path string) (*config.Cluster, bool) {
	c, diags := config.LoadCluster(path)
	for _, d := range diags {
		if d.Severity == config.Warning {
			ui.Warn(d.String())
		} else {
			ui.Error(d.String())
		}
	}
	if diags.HasErrors() || c == nil {
		return nil, false
	}
	return c, true
}

// clusterFleet builds the fleet of c with the CLI's SSH settings.
func clusterFleet(c *config.Cluster, token string, log *slog.Logger) *remote.Fleet {
	return &remote.Fleet{Cluster: c, Dialer: remote.NewDialer(log), Token: token, Logger: log}
}

// clusterLogger discards library logs (the commands print their own lines);
// ADORA_LOG=debug sends them to stderr.
func clusterLogger() *slog.Logger {
	if os.Getenv("ADORA_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// clusterResult is one machine's outcome in a fleet-wide command.
type clusterResult struct {
	note string // appended after OK, e.g. "(already running)"
	err  error
}

// forEachClusterMachine runs op on every machine, at most parallelism at once, and
// prints "<label(m)>... OK" or "<label(m)>... FAILED: <err>" in machine
// order as results arrive. It returns the ids of failed machines.
func forEachClusterMachine(ctx context.Context, ui cli.Ui, machines []config.Machine, parallelism int,
	label func(config.Machine) string, op func(context.Context, config.Machine) clusterResult) []string {
	results := make([]chan clusterResult, len(machines))
	for i := range results {
		results[i] = make(chan clusterResult, 1)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		remote.ForEach(ctx, parallelism, clusterIndexes(len(machines)), func(ctx context.Context, i int) error {
			results[i] <- op(ctx, machines[i])
			return nil
		})
	}()
	var failed []string
	for i, m := range machines {
		var r clusterResult
		select {
		case r = <-results[i]:
		case <-done:
			select {
			case r = <-results[i]:
			default:
				r = clusterResult{err: ctx.Err()}
			}
		}
		if r.err != nil {
			ui.Error(fmt.Sprintf("%s... FAILED: %v", label(m), r.err))
			failed = append(failed, m.ID)
			continue
		}
		line := label(m) + "... OK"
		if r.note != "" {
			line += " " + r.note
		}
		ui.Output(line)
	}
	<-done
	return failed
}

func clusterIndexes(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// clusterSummary prints "N/M succeeded." and, when some failed, names them; it
// returns the exit code.
func clusterSummary(ui cli.Ui, total int, failed []string) int {
	ui.Output(fmt.Sprintf("%d/%d succeeded.", total-len(failed), total))
	if clusterFailed(ui, failed) {
		return 1
	}
	return 0
}

// clusterFailed names the machines that failed, when any did, and says
// whether any did.
func clusterFailed(ui cli.Ui, failed []string) bool {
	if len(failed) == 0 {
		return false
	}
	ui.Error(fmt.Sprintf("Failed on %d machine(s): %s", len(failed), strings.Join(failed, ", ")))
	return true
}

// clusterSignalContext is cancelled on SIGINT/SIGTERM.
func clusterSignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// clusterCoordinatorOptions are the client options for c's coordinator.
func clusterCoordinatorOptions(c *config.Cluster, token string) client.Options {
	port := c.Coordinator.Port
	if port == 0 {
		port = config.DefaultCoordinatorPort
	}
	return client.Options{Addr: c.Coordinator.Addr, Port: port, Token: token}
}

// clusterHealthDaemons returns the connected daemons by machine id.
func clusterHealthDaemons(ctx context.Context, opts client.Options) (map[string]proto.HealthDaemon, error) {
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h, err := client.Health(hctx, opts)
	if err != nil {
		return nil, err
	}
	byID := map[string]proto.HealthDaemon{}
	for _, d := range h.Daemons {
		if d.MachineID != "" {
			byID[d.MachineID] = d
		}
	}
	return byID, nil
}

// clusterPollInterval is how often the cluster commands ask the coordinator.
const clusterPollInterval = 500 * time.Millisecond

// waitClusterDaemons polls the coordinator until every id is connected (with
// version when it is not ""), or timeout. It returns the ids still
// missing.
func waitClusterDaemons(ctx context.Context, opts client.Options, ids []string, version string, timeout time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(clusterPollInterval)
	defer t.Stop()
	for {
		missing := missingClusterDaemons(ctx, opts, ids, version)
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return missing
		case <-t.C:
		}
	}
}

func missingClusterDaemons(ctx context.Context, opts client.Options, ids []string, version string) []string {
	have, err := clusterHealthDaemons(ctx, opts)
	if err != nil {
		return ids
	}
	var missing []string
	for _, id := range ids {
		d, ok := have[id]
		if !ok || version != "" && d.Version != version {
			missing = append(missing, id)
		}
	}
	return missing
}

// clusterCLIVersion is this binary's adora version.
func clusterCLIVersion() string { return version.Version }

// deliverSCPNodes is the start path's hook for "distribute: scp": it
// pushes the binaries of req's scp nodes, built on this machine, to every
// machine of the cluster file clusterPath they can be placed on
// (remote.Fleet.DeliverSCP), into req.WorkingDir, the directory the
// daemons resolve node paths against. It prints one line per copy and is a
// no-op when no node uses scp.
func deliverSCPNodes(ctx context.Context, ui cli.Ui, clusterPath string, req *proto.Start) error {
	scp := false
	for _, n := range req.Dataflow.Nodes {
		scp = scp || n.Deploy.Distribute == config.DistributeSCP
	}
	if !scp {
		return nil
	}
	if clusterPath == "" {
		return errors.New("nodes with distribute: scp are copied over SSH to their machines: give the cluster file (--cluster PATH)")
	}
	cl, diags := config.LoadCluster(clusterPath)
	if diags.HasErrors() {
		return diags.Err()
	}
	fleet := clusterFleet(cl, "", clusterLogger())
	copies, err := fleet.DeliverSCP(ctx, &req.Dataflow, req.WorkingDir, req.WorkingDir, remote.DefaultParallelism)
	for _, c := range copies {
		ui.Output(fmt.Sprintf("  scp %s -> %s:%s", c.Node, c.Machine, c.Remote))
	}
	if err != nil {
		return fmt.Errorf("distribute: scp: %w", err)
	}
	return nil
}

// registerClusterState adds the state options of the cluster commands
// that change machines: -state and -lock-timeout, as for adora apply.
func registerClusterState(fs *flag.FlagSet, f *deployFlags) {
	f.lock, f.refresh = true, true
	fs.StringVar(&f.statePath, "state", "", "state file")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "wait for the state lock")
}

// clusterFleetRun is what cluster install, upgrade and uninstall hold
// once their arguments are read: the cluster file, the two levels of
// interruption, and the state session, locked. close unlocks the session
// and stops the interruption handling.
type clusterFleetRun struct {
	cl        *config.Cluster
	ctx       context.Context
	interrupt <-chan struct{}
	s         *deploySession
	stop      func()
}

func (r *clusterFleetRun) close() {
	r.s.unlock()
	r.stop()
}

// clusterParseFile parses args into fs (named after the command, e.g.
// "cluster up"), which must leave one argument, the cluster file, and
// loads that file. On failure it has told ui why and returns false.
func clusterParseFile(ui cli.Ui, fs *flag.FlagSet, args []string) (*config.Cluster, bool) {
	if !clusterParse(ui, fs, args) {
		return nil, false
	}
	if fs.NArg() != 1 {
		ui.Error("adora " + fs.Name() + " needs one argument: the cluster file")
		return nil, false
	}
	return clusterLoad(ui, fs.Arg(0))
}

// openClusterFleet is clusterParseFile, then it opens the file's state for
// the command. On failure it has told ui why and returns false.
func openClusterFleet(ui cli.Ui, fs *flag.FlagSet, args []string, df *deployFlags) (*clusterFleetRun, bool) {
	cl, ok := clusterParseFile(ui, fs, args)
	if !ok {
		return nil, false
	}
	ctx, interrupt, stop := deployInterrupts(ui)
	s, err := openFleetSession(ctx, df, fs.Arg(0), cl, fs.Name())
	if err != nil {
		ui.Error(err.Error())
		stop()
		return nil, false
	}
	return &clusterFleetRun{cl: cl, ctx: ctx, interrupt: interrupt, s: s, stop: stop}, true
}

// clusterBinary describes the adora binary a cluster command deploys:
// path (default this executable) with version want, or the version it
// reports when want is "".
func clusterBinary(ctx context.Context, ops *fleetOps, path, want string) (plan.Binary, error) {
	bf, err := ops.BinaryFile(path)
	if err != nil {
		return plan.Binary{}, err
	}
	abs := path
	if abs == "" {
		if abs, err = os.Executable(); err != nil {
			return plan.Binary{}, fmt.Errorf("locate the adora binary: %w", err)
		}
	}
	if abs, err = filepath.Abs(abs); err != nil {
		return plan.Binary{}, err
	}
	if want == "" {
		if want, err = upgradeVersion(ctx, ops.Fleet, path, bf); err != nil {
			return plan.Binary{}, err
		}
	}
	return plan.Binary{Version: want, SHA256: bf.SHA256, Path: abs}, nil
}

// applyClusterPlan carries out p with e onto s's state (nothing when p has
// no changes). A state the backend refused is saved aside, as apply does.
func applyClusterPlan(ctx context.Context, interrupt <-chan struct{}, ui cli.Ui, s *deploySession, e *apply.Executor, p *plan.Plan) apply.Result {
	if !p.HasChanges() {
		return apply.Result{}
	}
	final, res, err := e.Apply(ctx, interrupt, p, priorOrNew(s))
	if errors.Is(err, apply.ErrPersist) {
		saveErroredState(ui, final)
	}
	return res
}

// notCarriedOut is the error of the machines an apply did not reach.
func notCarriedOut(res apply.Result) error {
	if res.Interrupted {
		return errors.New("not carried out: interrupted")
	}
	return errors.New("not carried out: the apply stopped after an earlier failure")
}
