package command

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/cli"
	"golang.org/x/sys/unix"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/planfile"
	"github.com/adora-rs/adora/plan/render"
	"github.com/adora-rs/adora/state"
)

// PlanCommand computes what apply would change.
type PlanCommand struct{ Meta *Meta }

func (c *PlanCommand) Synopsis() string { return "Show the changes apply would make to the fleet" }

func (c *PlanCommand) Help() string {
	return `Usage: adora plan [options] [CLUSTER_OR_DATAFLOW_FILES...]

  Compares cluster.yml and its dataflows with the recorded state and the live
  cluster, and prints the changes adora apply would make: daemon installs,
  upgrades (as rolling waves), uninstalls, dataflow starts, restarts, stops
  and node moves, each with its reason, and any drift found.

  Files given as arguments are a cluster file (it has machines:) or dataflow
  files. Without a cluster file, ./cluster.yml is used if present, else the
  built-in one-machine cluster (this machine), whose coordinator listens on
  127.0.0.1:6013, or on $ADORA_COORDINATOR_PORT when set.

Options:

  -cluster FILE         Cluster file (default ./cluster.yml if present).
  -out FILE             Save the plan; adora apply FILE carries out exactly it.
  -against FILE         Also show how this plan differs from the saved plan
                        FILE (what to review again when FILE went stale).
  -detailed-exitcode    Exit 0 when there is nothing to change, 2 when there
                        are changes or drift, 1 on error.
  -refresh=false        Do not look at the live cluster; plan from the state.
  -target ADDR          Plan only ADDR and what is below it (repeatable), e.g.
                        machine.bot-01 or dataflow.my-app.
  -exclude ADDR         Leave ADDR and what is below it out of the plan
                        (repeatable).
  -parallelism N        Machines per rolling wave (default 1).
  -binary PATH          adora binary to deploy (default this executable).
  -var NAME=VALUE       Set an HCL variable of the cluster or dataflow files
                        (repeatable); the plan holds the evaluated result.
  -state PATH           State file (default adora.state next to cluster.yml).
  -state coordinator://[HOST[:PORT]]/WORKSPACE
                        Keep the state and its lock in the coordinator
                        under WORKSPACE, so a team and CI share them;
                        HOST and PORT default to the cluster's coordinator
                        (e.g. -state coordinator:///default).
  -lock-timeout D       Wait up to D for the state lock (default 0: fail).
  -lock=false           Do not take the state lock (plan and refresh only;
                        the plan may then be made against a state that an
                        apply is changing).
  -json                 Print the plan as JSON (format in docs/plans.md).
  -markdown             Print the plan as Markdown for a pull-request comment.
  -no-color             No colours in the output.
`
}

func (c *PlanCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "plan", c.Help, true)
	var out, against string
	var detailed bool
	fs.StringVar(&out, "out", "", "")
	fs.StringVar(&against, "against", "", "")
	fs.BoolVar(&detailed, "detailed-exitcode", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	ctx, stop := deploySignalContext()
	defer stop()
	s, err := f.session(ctx, c.Meta.Ui, fs.Args(), "plan")
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	defer s.unlock()
	p, err := s.plan(ctx, &f, false)
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	if err := f.print(c.Meta.Ui, p); err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	if against != "" {
		if err := printDelta(c.Meta.Ui, against, p); err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
	}
	if out != "" {
		if err := planfile.Write(out, p); err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
		if !f.json && !f.markdown {
			c.Meta.Ui.Output(fmt.Sprintf("\nSaved the plan to: %s\nTo carry out exactly this plan, run: adora apply %s", out, out))
		}
	} else if p.HasChanges() && !f.json && !f.markdown {
		c.Meta.Ui.Output("\nNote: no -out was given, so adora cannot guarantee that apply will do exactly this.")
	}
	if detailed && !p.Empty() {
		return 2
	}
	return 0
}

// printDelta shows what differs between the saved plan at path and p.
func printDelta(ui cli.Ui, path string, p *plan.Plan) error {
	approved, err := planfile.Read(path)
	if err != nil {
		return err
	}
	d := plan.Delta(approved, p)
	if len(d) == 0 {
		ui.Output(fmt.Sprintf("\nThis plan makes the same changes as %s.", path))
		return nil
	}
	ui.Output(fmt.Sprintf("\nCompared with %s, %d change(s) differ:", path, len(d)))
	for _, x := range d {
		ui.Output(fmt.Sprintf("  %s\n      was: %s\n      now: %s", x.Address, orNothing(x.Was), orNothing(x.Now)))
	}
	return nil
}

func orNothing(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}

// deployFlags are the options plan, apply, destroy and refresh share.
type deployFlags struct {
	cluster     string
	statePath   string
	binary      string
	refresh     bool
	targets     stringList
	excludes    stringList
	parallelism int
	vars        cfgVars // HCL variables (-var NAME=VALUE)
	lockTimeout time.Duration
	lock        bool
	json        bool
	markdown    bool
	noColor     bool
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (f *deployFlags) flagSet(ui cli.Ui, name string, help func() string, planning bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { ui.Error(help()) }
	fs.StringVar(&f.cluster, "cluster", "", "")
	fs.StringVar(&f.statePath, "state", "", "")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "")
	fs.BoolVar(&f.lock, "lock", true, "")
	fs.BoolVar(&f.noColor, "no-color", false, "")
	fs.BoolVar(&f.refresh, "refresh", true, "")
	f.vars = cfgVars{}
	fs.Var(f.vars, "var", "")
	if planning {
		fs.StringVar(&f.binary, "binary", "", "")
		fs.Var(&f.targets, "target", "")
		fs.Var(&f.excludes, "exclude", "")
		fs.IntVar(&f.parallelism, "parallelism", 1, "")
		fs.BoolVar(&f.json, "json", false, "")
		fs.BoolVar(&f.markdown, "markdown", false, "")
	}
	return fs
}

// deployParse parses args, allowing flags after positional arguments
// (adora plan cluster.yml -out p); "--" ends the flags. fs.Args() then
// holds the positional arguments.
func deployParse(ui cli.Ui, fs *flag.FlagSet, args []string) bool {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				ui.Error(err.Error())
			}
			fs.Usage()
			return false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	fs.Parse(append([]string{"--"}, positional...))
	return true
}

// print renders p on stdout in the chosen format.
func (f *deployFlags) print(ui cli.Ui, p *plan.Plan) error {
	switch {
	case f.json:
		data, err := render.JSON(p)
		if err != nil {
			return err
		}
		ui.Output(strings.TrimRight(string(data), "\n"))
	case f.markdown:
		ui.Output(render.Markdown(p, 0))
	default:
		var buf bytes.Buffer
		if err := render.Human(&buf, p, render.Options{Color: f.color()}); err != nil {
			return err
		}
		ui.Output(strings.TrimRight(buf.String(), "\n"))
	}
	return nil
}

func (f *deployFlags) color() bool {
	return !f.noColor && os.Getenv("NO_COLOR") == "" && fdIsTerminal(os.Stdout)
}

// fdIsTerminal reports whether f is a terminal.
func fdIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// deploySession is a loaded project with its state backend locked.
type deploySession struct {
	cluster   *config.Cluster
	dataflows map[string]*config.Dataflow
	backend   state.Backend
	lock      state.LockInfo
	locked    bool
	prior     *state.State
	ops       *fleetOps
}

// session loads the project from args and the flags, opens the state and
// takes its lock for operation.
func (f *deployFlags) session(ctx context.Context, ui cli.Ui, args []string, operation string) (*deploySession, error) {
	clusterPath, dataflowFiles, err := splitDeployArgs(f.cluster, args)
	if err != nil {
		return nil, err
	}
	c, dfs, diags := config.LoadProjectOptions(clusterPath, config.Options{Vars: f.vars}, dataflowFiles...)
	for _, d := range diags.Warnings() {
		ui.Warn(d.String())
	}
	if diags.HasErrors() {
		return nil, diags.Err()
	}
	if clusterPath == "" {
		if err := builtinCoordinatorPort(c); err != nil {
			return nil, err
		}
	}
	s := &deploySession{cluster: c, dataflows: dfs}
	if err := s.open(ctx, f, clusterPath, operation); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens the state backend, locks it and reads the state.
func (s *deploySession) open(ctx context.Context, f *deployFlags, clusterPath, operation string) error {
	b, err := openStateBackend(f.statePath, clusterPath, s.cluster)
	if err != nil {
		return err
	}
	s.backend = b
	if !f.lock && operation != "plan" && operation != "refresh" {
		return fmt.Errorf("-lock=false is only for plan and refresh: %s changes the fleet", operation)
	}
	if f.lock {
		s.lock = state.NewLockInfo(operation, version.Version, time.Now())
		if err := state.LockWait(ctx, b, s.lock, f.lockTimeout); err != nil {
			return stateErr(f.statePath, err)
		}
		s.locked = true
	}
	if s.prior, err = b.Read(ctx); err != nil {
		s.unlock()
		return stateErr(f.statePath, err)
	}
	ops, err := newFleetOps(s.cluster)
	if err != nil {
		s.unlock()
		return err
	}
	s.ops = ops
	return nil
}

func (s *deploySession) unlock() {
	if s.locked {
		s.backend.Unlock(context.Background(), s.lock.ID)
		s.locked = false
	}
}

// observe refreshes the live view of the cluster and the state's machines.
func (s *deploySession) observe(ctx context.Context) (*state.Observed, error) {
	return apply.Refresh(ctx, s.ops, s.ops, s.cluster, s.prior, refreshParallelism)
}

// refreshParallelism bounds concurrent machine observations.
const refreshParallelism = 10

// plan refreshes (unless -refresh=false) and computes the plan.
func (s *deploySession) plan(ctx context.Context, f *deployFlags, destroy bool) (*plan.Plan, error) {
	var observed *state.Observed
	if f.refresh {
		var err error
		if observed, err = s.observe(ctx); err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
	}
	bin, err := desiredBinary(f.binary)
	if err != nil {
		return nil, err
	}
	s.ops.Binary = bin.Path
	desired := fleetDesired(s, bin, f.parallelism, f.targets, f.excludes)
	desired.Destroy = destroy
	return plan.Compute(s.prior, observed, desired)
}

// splitDeployArgs sorts the positional files into one cluster file and
// dataflow files. Without any cluster file, ./cluster.yml (or .hcl) is used
// when present; "" selects the built-in cluster.
func splitDeployArgs(clusterFlag string, args []string) (string, []string, error) {
	cluster := clusterFlag
	var dataflows []string
	for _, a := range args {
		isCluster, err := looksLikeCluster(a)
		if err != nil {
			return "", nil, err
		}
		if !isCluster {
			dataflows = append(dataflows, a)
			continue
		}
		if cluster != "" {
			return "", nil, fmt.Errorf("two cluster files given (%s and %s): give one", cluster, a)
		}
		cluster = a
	}
	if cluster == "" {
		for _, name := range []string{"cluster.yml", "cluster.yaml", "cluster.hcl"} {
			if _, err := os.Stat(name); err == nil {
				return name, dataflows, nil
			}
		}
	}
	return cluster, dataflows, nil
}

// looksLikeCluster reports whether a file is a cluster file, by its
// top-level keys or blocks (config.DetectKind, as adora validate tells
// them apart). A file that does not parse is left to the loader, which
// reports the syntax error with its position.
func looksLikeCluster(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return config.DetectKind(data, path) == config.KindCluster, nil
}

// desiredBinary describes the adora binary to deploy: path, or this
// executable.
func desiredBinary(path string) (plan.Binary, error) {
	self, err := os.Executable()
	if err != nil {
		return plan.Binary{}, fmt.Errorf("find this executable: %w", err)
	}
	if path == "" {
		path = self
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return plan.Binary{}, err
	}
	sum, err := fileSHA256(abs)
	if err != nil {
		return plan.Binary{}, fmt.Errorf("binary %s: %w", path, err)
	}
	v := version.Version
	if abs != self {
		if v, err = binaryVersion(abs); err != nil {
			return plan.Binary{}, err
		}
	}
	return plan.Binary{Version: v, SHA256: sum, Path: abs}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// binaryVersion asks an adora binary its version ("adora 0.2.0 (...)").
func binaryVersion(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err != nil {
		return "", fmt.Errorf("binary %s: run version: %w", path, err)
	}
	return parseVersionLine(string(out))
}

// parseVersionLine reads the version out of "adora VERSION (...)".
func parseVersionLine(out string) (string, error) {
	fields := strings.Fields(out)
	if len(fields) < 2 || fields[0] != "adora" {
		return "", fmt.Errorf("unexpected version output %q", strings.TrimSpace(out))
	}
	return fields[1], nil
}
