package command

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/internal/version"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/planfile"
	"github.com/adora-rs/adora/plan/render"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

// ApplyCommand carries out a plan.
type ApplyCommand struct{ Meta *Meta }

func (c *ApplyCommand) Synopsis() string { return "Make the fleet match the configuration" }

func (c *ApplyCommand) Help() string {
	return `Usage: adora apply [options] [PLANFILE | CLUSTER_OR_DATAFLOW_FILES...]

  Carries out a plan: installs daemons, upgrades machines wave by wave,
  starts, restarts and stops dataflows, and uninstalls removed machines,
  recording the state after every step.

  With PLANFILE (from adora plan -out), exactly that plan is carried out, and
  refused if the state changed since or a live fact it relied on moved.
  Otherwise a new plan is made, shown, and carried out after you type "yes".

  The first Ctrl-C finishes the steps in progress, saves the state and
  exits; run adora plan to see what is left. A second Ctrl-C aborts.

Options:

  -auto-approve         Do not ask for confirmation (required without a
                        terminal).
  -json                 Machine-readable output, one JSON object per line:
                        the plan, each step's progress, the result (needs
                        -auto-approve or a plan file).
  -parallelism N        Machines per rolling wave (default 1).
  -cluster, -state, -binary, -var, -target, -refresh, -lock-timeout,
  -no-color:            as for adora plan.
`
}

func (c *ApplyCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "apply", c.Help, true)
	var autoApprove bool
	fs.BoolVar(&autoApprove, "auto-approve", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	if fs.NArg() == 1 && isPlanFile(fs.Arg(0)) {
		var planning []string
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "target", "exclude", "binary", "parallelism", "refresh", "cluster", "var":
				planning = append(planning, "-"+fl.Name)
			}
		})
		if len(planning) > 0 {
			c.Meta.Ui.Error(fmt.Sprintf("%s cannot be used with a saved plan: the plan file already decided; make a new plan with them instead", strings.Join(planning, ", ")))
			return 1
		}
	}
	return runApply(c.Meta.Ui, &f, fs.Args(), autoApprove, false)
}

// runApply is apply and destroy: plan (or read the plan file), confirm,
// execute.
func runApply(ui cli.Ui, f *deployFlags, args []string, autoApprove, destroy bool) int {
	ctx, interrupt, stop := deployInterrupts(ui)
	defer stop()
	op := "apply"
	if destroy {
		op = "destroy"
	}
	var s *deploySession
	var p *plan.Plan
	var err error
	fromFile := len(args) == 1 && !destroy && isPlanFile(args[0])
	if fromFile {
		s, p, err = savedPlanSession(ctx, ui, f, args[0])
		autoApprove = true // the reviewed plan file is the approval
	} else {
		if s, err = f.session(ctx, ui, args, op); err == nil {
			p, err = s.plan(ctx, f, destroy)
		}
	}
	if err == nil && f.json && !autoApprove {
		err = errors.New("apply -json needs -auto-approve or a saved plan: there is no one to confirm")
	}
	if err == nil {
		err = printPlanForApply(ui, f, p, fromFile)
	}
	if s != nil {
		defer s.unlock()
	}
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	if !p.HasChanges() {
		if fromFile && !f.json {
			ui.Output("No changes. The fleet matches the configuration.")
		}
		if f.json {
			writeJSONLine(ui, applyResult{Type: "result", OK: true})
		}
		if destroy {
			return stopBuiltinCoordinator(ui, f, s)
		}
		return 0
	}
	if !autoApprove {
		if ok, err := confirmApply(ui, destroy); !ok {
			if err != nil {
				ui.Error(err.Error())
			} else {
				ui.Output("Apply cancelled.")
			}
			return 1
		}
	}
	code := execute(ctx, interrupt, ui, s, p, f)
	if code == 0 && destroy {
		return stopBuiltinCoordinator(ui, f, s)
	}
	return code
}

// stopBuiltinCoordinator ends a destroy of the built-in cluster: the
// coordinator apply started is stopped too, so nothing is left running.
func stopBuiltinCoordinator(ui cli.Ui, f *deployFlags, s *deploySession) int {
	if !isBuiltin(s.cluster) || isCoordinatorState(f.statePath) {
		return 0 // the state (and its lock) live in that coordinator
	}
	pid, err := stopApplyCoordinator(30 * time.Second)
	if err != nil {
		ui.Error(err.Error())
		return 1
	}
	if pid > 0 && !f.json {
		ui.Output(fmt.Sprintf("Stopped the coordinator apply started (pid %d).", pid))
	}
	return 0
}

func isPlanFile(path string) bool {
	_, err := planfile.Read(path)
	return err == nil
}

// savedPlanSession opens the state for a saved plan and refuses the plan
// when it is stale.
func savedPlanSession(ctx context.Context, ui cli.Ui, f *deployFlags, path string) (*deploySession, *plan.Plan, error) {
	p, err := planfile.Read(path)
	if err != nil {
		return nil, nil, err
	}
	if p.Cluster == nil {
		return nil, nil, fmt.Errorf("plan file %s holds no cluster", path)
	}
	s := &deploySession{cluster: p.Cluster, dataflows: p.Dataflows}
	clusterPath := p.Cluster.Source
	if err := s.open(ctx, f, clusterPath, "apply"); err != nil {
		return nil, nil, err
	}
	var now *state.Observed
	if p.Refreshed && len(p.Preconditions) > 0 {
		if now, err = s.observe(ctx); err != nil {
			s.unlock()
			return nil, nil, fmt.Errorf("refresh: %w", err)
		}
	}
	if err := planfile.Check(p, s.prior, now, version.Version); err != nil {
		s.unlock()
		return nil, nil, err
	}
	if p.Binary.Path != "" {
		sum, err := fileSHA256(p.Binary.Path)
		if err != nil || sum != p.Binary.SHA256 {
			s.unlock()
			return nil, nil, fmt.Errorf("saved plan is stale: the binary %s is no longer the one planned (sha256 %s); run adora plan again", p.Binary.Path, p.Binary.SHA256)
		}
	}
	if err := checkNodeBinaries(p); err != nil {
		s.unlock()
		return nil, nil, err
	}
	s.ops.Binary = p.Binary.Path
	return s, p, nil
}

// checkNodeBinaries refuses a saved plan when a node binary it starts or
// restarts was rebuilt since: the state would record a sha256 that is not
// the one delivered.
func checkNodeBinaries(p *plan.Plan) error {
	now := nodeBinaries(p.Dataflows)
	for _, c := range p.Changes {
		if c.Kind != plan.KindDataflow || (c.Action != plan.Start && c.Action != plan.Restart) || c.DataflowAfter == nil {
			continue
		}
		for _, a := range c.DataflowAfter.Artifacts {
			if got := now[c.Name][a.Node]; got != a.SHA256 {
				return fmt.Errorf("saved plan is stale: the binary of node %s of dataflow %s changed since the plan was made (sha256 %s planned); run adora plan again", a.Node, c.Name, a.SHA256)
			}
		}
	}
	return nil
}

// confirmApply asks for "yes" on the terminal.
func confirmApply(ui cli.Ui, destroy bool) (bool, error) {
	if !fdIsTerminal(os.Stdin) {
		return false, errors.New("no terminal to confirm on: review the plan and run with -auto-approve, or apply a saved plan (adora plan -out FILE)")
	}
	q := "\nDo you want to perform these actions?\n  adora will perform the actions described above.\n  Only 'yes' will be accepted to approve.\n\n  Enter a value:"
	if destroy {
		q = "\nDo you really want to destroy everything adora deployed?\n  Only 'yes' will be accepted to confirm.\n\n  Enter a value:"
	}
	answer, err := ui.Ask(q)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(answer) == "yes", nil
}

// execute runs p, printing progress per machine with timings.
func execute(ctx context.Context, interrupt <-chan struct{}, ui cli.Ui, s *deploySession, p *plan.Plan, f *deployFlags) int {
	st := priorOrNew(s)
	var mu sync.Mutex
	e := fleetExecutor(s, func(ev apply.Event) {
		mu.Lock()
		defer mu.Unlock()
		if f.json {
			writeJSONLine(ui, progressLine(ev))
			return
		}
		printEvent(ui, ev)
	})
	if !f.json {
		ui.Output("")
	}
	start := time.Now()
	final, res, err := e.Apply(ctx, interrupt, p, st)
	if f.json {
		r := applyResult{Type: "result", OK: err == nil, Done: res.Done, Interrupted: res.Interrupted, Remaining: res.Remaining,
			ElapsedSeconds: time.Since(start).Seconds()}
		if err != nil {
			r.Error = err.Error()
		}
		writeJSONLine(ui, r)
	}
	if err != nil {
		ui.Error(fmt.Sprintf("\nError: %v", err))
		if errors.Is(err, apply.ErrPersist) {
			saveErroredState(ui, final)
		}
		if len(res.Remaining) > 0 {
			ui.Error(fmt.Sprintf("Not done: %s\nThe state records every completed step; run adora plan to see the remaining work.", strings.Join(res.Remaining, ", ")))
		}
		return 1
	}
	sum := p.Summarize()
	ui.Output(fmt.Sprintf("\nApply complete after %s! Machines: %d installed, %d upgraded, %d reconfigured, %d uninstalled; dataflows: %d started, %d restarted, %d stopped.",
		time.Since(start).Round(time.Millisecond), sum.Install, sum.Upgrade, sum.Reconfigure, sum.Uninstall, sum.Start, sum.Restart, sum.Stop))
	return 0
}

// printPlanForApply shows the plan apply is about to carry out: the human
// rendering, or the first line of the JSON stream.
func printPlanForApply(ui cli.Ui, f *deployFlags, p *plan.Plan, fromFile bool) error {
	if f.json {
		writeJSONLine(ui, struct {
			Type string          `json:"type"`
			Plan render.Document `json:"plan"`
		}{"plan", render.NewDocument(p)})
		return nil
	}
	if fromFile {
		return nil
	}
	return f.print(ui, p)
}

// progressEvent is one apply event of the -json stream.
type progressEvent struct {
	Type           string  `json:"type"` // "progress"
	Address        string  `json:"address"`
	Action         string  `json:"action"`
	Phase          string  `json:"phase"`
	Wave           int     `json:"wave,omitempty"`
	Status         string  `json:"status"`
	ElapsedSeconds float64 `json:"elapsed_seconds,omitempty"`
	Error          string  `json:"error,omitempty"`
}

func progressLine(ev apply.Event) progressEvent {
	pe := progressEvent{Type: "progress", Address: ev.Address, Action: string(ev.Action), Phase: string(ev.Phase),
		Wave: ev.Wave, Status: string(ev.Status), ElapsedSeconds: ev.Elapsed.Seconds()}
	if ev.Err != nil {
		pe.Error = ev.Err.Error()
	}
	return pe
}

// applyResult is the last line of the -json stream.
type applyResult struct {
	Type           string   `json:"type"` // "result"
	OK             bool     `json:"ok"`
	Done           int      `json:"done"`
	Interrupted    bool     `json:"interrupted,omitempty"`
	Remaining      []string `json:"remaining,omitempty"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`
	Error          string   `json:"error,omitempty"`
}

func writeJSONLine(ui cli.Ui, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		ui.Error(err.Error())
		return
	}
	ui.Output(string(data))
}

func printEvent(ui cli.Ui, ev apply.Event) {
	wave := ""
	if ev.Wave > 0 {
		wave = fmt.Sprintf(" [wave %d]", ev.Wave)
	}
	switch ev.Status {
	case apply.Started:
		ui.Output(fmt.Sprintf("%s: %s...%s", ev.Address, actionGerund(ev.Action), wave))
	case apply.Running:
		ui.Output(fmt.Sprintf("%s: Still %s... [%s elapsed]%s", ev.Address, strings.ToLower(actionGerund(ev.Action)), ev.Elapsed.Round(time.Second), wave))
	case apply.Done:
		ui.Output(fmt.Sprintf("%s: %s complete after %s%s", ev.Address, ev.Action, ev.Elapsed.Round(time.Millisecond), wave))
	case apply.Failed:
		ui.Error(fmt.Sprintf("%s: %s FAILED after %s: %v", ev.Address, ev.Action, ev.Elapsed.Round(time.Millisecond), ev.Err))
	}
}

func actionGerund(a plan.Action) string {
	switch a {
	case plan.Stop:
		return "Stopping"
	case plan.Upgrade:
		return "Upgrading"
	}
	s := string(a)
	s = strings.TrimSuffix(s, "e")
	return strings.ToUpper(s[:1]) + s[1:] + "ing"
}

// deploySignalContext is cancelled on the first SIGINT/SIGTERM.
func deploySignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// deployInterrupts gives two levels of interruption: the first signal
// closes interrupt (finish the steps in progress, save, exit); the second
// cancels ctx (abort).
func deployInterrupts(ui cli.Ui) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	interrupt := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		ui.Warn("\nInterrupt received: finishing the steps in progress and saving the state. Press Ctrl-C again to abort.")
		close(interrupt)
		select {
		case <-sigs:
			ui.Warn("\nSecond interrupt: aborting the steps in progress.")
			cancel()
		case <-done:
		}
	})
	return ctx, interrupt, func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
		cancel()
	}
}

// erroredStateFile is where apply leaves the state it could not store.
const erroredStateFile = "adora.state.errored"

// saveErroredState writes the state the backend refused to a local file
// so that no completed step is forgotten.
func saveErroredState(ui cli.Ui, st *state.State) {
	data, err := statefile.Encode(st)
	if err == nil {
		err = statefile.WriteAtomic(erroredStateFile, data, 0o600)
	}
	if err != nil {
		ui.Error(fmt.Sprintf("The state could not be saved anywhere either (%v); the completed steps are not recorded.", err))
		return
	}
	ui.Error(fmt.Sprintf("The state after the completed steps was written to %s (serial %d). Fix the state backend, then store that file with: adora state push [-state as for this apply] %s", erroredStateFile, st.Serial, erroredStateFile))
}
