package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/state"
	"github.com/adora-rs/adora/state/statefile"
)

var apps = map[string]*config.Dataflow{"my-app": plantest.App()}

type harness struct {
	t       *testing.T
	w       *world
	backend *statefile.Local
	st      *state.State
	events  []Event
	mu      sync.Mutex
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, w: newWorld(), backend: statefile.New(filepath.Join(t.TempDir(), "adora.state")), st: state.New("test")}
}

func (h *harness) executor() *Executor {
	return &Executor{Installer: h.w, Upgrader: h.w, Waiter: h.w, Deployer: h.w, Backend: h.backend,
		Progress: func(ev Event) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() }}
}

// plan refreshes against the world and plans desired from the stored state.
func (h *harness) plan(desired plan.Desired) *plan.Plan {
	h.t.Helper()
	st, err := h.backend.Read(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	obs, err := Refresh(context.Background(), h.w, h.w, desired.Cluster, st, 4)
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := plan.Compute(st, obs, desired)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *harness) apply(p *plan.Plan, interrupt <-chan struct{}) (Result, error) {
	h.t.Helper()
	st, err := h.backend.Read(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if st == nil {
		st = h.st
	}
	_, res, err := h.executor().Apply(context.Background(), interrupt, p, st)
	return res, err
}

func (h *harness) deploy(desired plan.Desired) {
	h.t.Helper()
	if _, err := h.apply(h.plan(desired), nil); err != nil {
		h.t.Fatal(err)
	}
	if p := h.plan(desired); p.HasChanges() || len(p.Drift) > 0 {
		h.t.Fatalf("plan after apply is not empty: %+v drift %+v", p.Changes, p.Drift)
	}
	h.w.reset()
}

func indexOf(t *testing.T, calls []string, c string) int {
	t.Helper()
	i := slices.Index(calls, c)
	if i < 0 {
		t.Fatalf("no call %q in %v", c, calls)
	}
	return i
}

func TestFirstDeploymentThenNoChanges(t *testing.T) {
	h := newHarness(t)
	desired := plantest.Desired(plantest.Cluster(), apps, plantest.Binary010)
	p := h.plan(desired)
	res, err := h.apply(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := h.w.log()
	start := indexOf(t, calls, "start my-app")
	for _, m := range []string{"bot-01", "bot-02", "gpu-server"} {
		if indexOf(t, calls, "wait "+m+" 0.1.0") > start {
			t.Errorf("dataflow started before %s's daemon was back: %v", m, calls)
		}
	}
	if res.Done != 4 {
		t.Errorf("done = %d; want 4", res.Done)
	}
	st, _ := h.backend.Read(context.Background())
	if st.Serial != 4 || st.Dataflows["my-app"].UUID != "uuid-1" {
		t.Errorf("state serial %d uuid %q; want one write per step (4) and the run's uuid", st.Serial, st.Dataflows["my-app"].UUID)
	}
	if again := h.plan(desired); again.HasChanges() || len(again.Drift) > 0 {
		t.Fatalf("second plan has changes: %+v", again.Changes)
	}
}

func TestRollingUpgradeGoesWaveByWave(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	p := h.plan(plantest.Desired(plantest.Cluster(), apps, plantest.Binary020))
	if _, err := h.apply(p, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"upgrade bot-01", "wait bot-01 0.2.0",
		"upgrade bot-02", "wait bot-02 0.2.0",
		"upgrade gpu-server", "wait gpu-server 0.2.0",
	}
	if got := h.w.log(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v\nwant %v", got, want)
	}
	if h.w.maxActive != 1 {
		t.Fatalf("%d machines upgraded at once; want 1 per wave", h.w.maxActive)
	}
	if _, ok := h.w.dataflows["my-app"]; !ok {
		t.Fatal("the rollout stopped the dataflow")
	}
}

func TestLabelChangeReconfiguresThenRestarts(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	s := plantest.Scenarios()[1]
	if _, err := h.apply(h.plan(s.Desired), nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"install bot-02", "wait bot-02 0.1.0", "install gpu-server", "wait gpu-server 0.1.0", "stop my-app", "start my-app"}
	if got := h.w.log(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v\nwant %v", got, want)
	}
	if got := h.w.dataflows["my-app"].Placements["detector"]; got != "bot-02" {
		t.Fatalf("detector runs on %s; want bot-02", got)
	}
	if again := h.plan(s.Desired); again.HasChanges() {
		t.Fatalf("plan after apply has changes: %+v", again.Changes)
	}
}

func TestDestroyStopsBeforeUninstalling(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	st, _ := h.backend.Read(context.Background())
	p, err := plan.Compute(st, nil, plan.Desired{Destroy: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.apply(p, nil); err != nil {
		t.Fatal(err)
	}
	calls := h.w.log()
	if calls[0] != "stop my-app" || len(calls) != 4 {
		t.Fatalf("calls = %v; want the stop first, then 3 uninstalls", calls)
	}
	st, _ = h.backend.Read(context.Background())
	if !st.Empty() {
		t.Fatalf("state after destroy = %+v", st)
	}
}

func TestInterruptFinishesStepAndReplanIsTheRest(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	desired := plantest.Desired(plantest.Cluster(), apps, plantest.Binary020)
	interrupt := make(chan struct{})
	h.w.hook = func(c string) error {
		if c == "upgrade bot-01" {
			close(interrupt) // Ctrl-C while bot-01 is being upgraded
		}
		return nil
	}
	res, err := h.apply(h.plan(desired), interrupt)
	if !errors.Is(err, ErrInterrupted) || !res.Interrupted {
		t.Fatalf("apply = %v %+v; want ErrInterrupted", err, res)
	}
	if want := []string{"machine.bot-02", "machine.gpu-server"}; !reflect.DeepEqual(res.Remaining, want) {
		t.Fatalf("remaining = %v; want %v", res.Remaining, want)
	}
	st, _ := h.backend.Read(context.Background())
	if st.Machines["bot-01"].BinaryVersion != "0.2.0" {
		t.Fatal("the step in progress was not recorded")
	}
	h.w.hook = nil
	again := h.plan(desired)
	var upgrades []string
	for _, c := range again.Changes {
		if c.Action != plan.NoOp {
			upgrades = append(upgrades, c.Address+" "+string(c.Action))
		}
	}
	if want := []string{"machine.bot-02 upgrade", "machine.gpu-server upgrade"}; !reflect.DeepEqual(upgrades, want) {
		t.Fatalf("re-plan = %v; want exactly %v", upgrades, want)
	}
	if _, err := h.apply(again, nil); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, c := range h.w.log() {
		counts[c]++
	}
	for _, m := range []string{"bot-01", "bot-02", "gpu-server"} {
		if counts["upgrade "+m] != 1 {
			t.Errorf("%s upgraded %d times; want once", m, counts["upgrade "+m])
		}
	}
}

func TestFailedWaveStopsTheRollout(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	desired := plantest.Desired(plantest.Cluster(), apps, plantest.Binary020)
	h.w.hook = func(c string) error {
		if c == "upgrade bot-02" {
			return errors.New("disk full")
		}
		return nil
	}
	res, err := h.apply(h.plan(desired), nil)
	if err == nil || !strings.Contains(err.Error(), "machine.bot-02: disk full") {
		t.Fatalf("apply error = %v; want it to name machine.bot-02", err)
	}
	if slices.Contains(h.w.log(), "upgrade gpu-server") {
		t.Fatal("the rollout continued after a failed wave")
	}
	if want := []string{"machine.bot-02", "machine.gpu-server"}; !reflect.DeepEqual(res.Remaining, want) {
		t.Fatalf("remaining = %v; want %v", res.Remaining, want)
	}
	h.w.hook = nil
	if got := h.plan(desired).Summarize().Upgrade; got != 2 {
		t.Fatalf("re-plan upgrades %d machines; want the 2 left", got)
	}
}

func TestRestartWhoseStartFailsReplansAStart(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	s := plantest.Scenarios()[1]
	h.w.hook = func(c string) error {
		if c == "start my-app" {
			return errors.New("coordinator gone")
		}
		return nil
	}
	if _, err := h.apply(h.plan(s.Desired), nil); err == nil {
		t.Fatal("apply succeeded")
	}
	h.w.hook = nil
	p := h.plan(s.Desired)
	if c, _ := p.Change("dataflow.my-app"); c.Action != plan.Start || p.Summarize().Reconfigure != 0 {
		t.Fatalf("re-plan = %+v; want only the dataflow start", p.Summarize())
	}
}

func TestAbortCancelsStepInProgress(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	ctx, cancel := context.WithCancel(context.Background())
	h.w.hook = func(c string) error {
		if c == "upgrade bot-01" {
			cancel() // second Ctrl-C
		}
		return nil
	}
	st, _ := h.backend.Read(context.Background())
	_, res, err := h.executor().Apply(ctx, nil, h.plan(plantest.Desired(plantest.Cluster(), apps, plantest.Binary020)), st)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("apply = %v; want the cancellation", err)
	}
	if res.Done != 0 {
		t.Fatalf("done = %d; the aborted step must not count", res.Done)
	}
}

func TestProgressTimings(t *testing.T) {
	h := newHarness(t)
	now := time.Unix(0, 0)
	e := h.executor()
	e.Now = func() time.Time { now = now.Add(time.Second); return now }
	st := state.New("test")
	p := h.plan(plantest.Desired(plantest.Cluster(), nil, plantest.Binary010))
	e.Parallelism = 1
	if _, _, err := e.Apply(context.Background(), nil, p, st); err != nil {
		t.Fatal(err)
	}
	var done []string
	for _, ev := range h.events {
		if ev.Status == Done {
			if ev.Elapsed != time.Second || ev.Phase != PhaseInstall {
				t.Errorf("event %+v; want 1s in the install phase", ev)
			}
			done = append(done, ev.Address)
		}
	}
	if len(done) != 3 {
		t.Fatalf("done events = %v; want one per machine", done)
	}
}

func TestMachineMovedToAnotherHostIsReinstalled(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	moved := plantest.Cluster()
	moved.Machines[1].Host = "10.0.0.99"
	p := h.plan(plantest.Desired(moved, apps, plantest.Binary010))
	if c, _ := p.Change("machine.bot-02"); c.Action != plan.Install || !strings.Contains(c.Reason, "10.0.0.3") {
		t.Fatalf("bot-02 = %s %q; want a reinstall naming the old host", c.Action, c.Reason)
	}
	if _, err := h.apply(p, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"uninstall bot-02@10.0.0.3", "install bot-02", "wait bot-02 0.1.0"}
	if got := h.w.log(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v; want %v", got, want)
	}
	st, _ := h.backend.Read(context.Background())
	if st.Machines["bot-02"].Host != "10.0.0.99" {
		t.Fatalf("recorded host = %s", st.Machines["bot-02"].Host)
	}
}

func TestMachineChangedDuringTheRolloutIsNotTouched(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	p := h.plan(plantest.Desired(plantest.Cluster(), apps, plantest.Binary020))
	e := h.executor()
	e.Checker = h.w
	h.w.hook = func(c string) error {
		if c == "upgrade bot-01" {
			// Someone replaces gpu-server's binary by hand meanwhile.
			h.w.mu.Lock()
			h.w.machines["gpu-server"].sha = "cafe"
			h.w.mu.Unlock()
		}
		return nil
	}
	st, _ := h.backend.Read(context.Background())
	_, res, err := e.Apply(context.Background(), nil, p, st)
	var pe *PreconditionError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "machine.gpu-server: binary_sha256 was a1a1") || !strings.Contains(err.Error(), "now cafe") {
		t.Fatalf("apply = %v; want a precondition error for gpu-server", err)
	}
	if slices.Contains(h.w.log(), "upgrade gpu-server") {
		t.Fatal("gpu-server was upgraded although it changed since the plan")
	}
	if res.Done != 2 {
		t.Fatalf("done = %d; want bot-01 and bot-02", res.Done)
	}
}

func TestUnrecordedRunningDataflowIsRestarted(t *testing.T) {
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	// The state is lost; the fleet still runs.
	if err := os.Remove(h.backend.Path()); err != nil {
		t.Fatal(err)
	}
	p := h.plan(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	if _, err := h.apply(p, nil); err != nil {
		t.Fatal(err)
	}
	calls := h.w.log()
	if indexOf(t, calls, "stop my-app") > indexOf(t, calls, "start my-app") {
		t.Fatalf("calls = %v; want the unrecorded run stopped before the start", calls)
	}
	if again := h.plan(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010)); again.HasChanges() {
		t.Fatalf("plan after adopting has changes: %v", again.Changes)
	}
}

func TestLongStepsReportProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld()
		w.hook = func(c string) error {
			if c == "install bot-01" {
				time.Sleep(35 * time.Second) // a slow SSH install
			}
			return nil
		}
		var mu sync.Mutex
		var running []time.Duration
		e := &Executor{Installer: w, Upgrader: w, Waiter: w, Deployer: w,
			Progress: func(ev Event) {
				if ev.Status == Running {
					mu.Lock()
					running = append(running, ev.Elapsed)
					mu.Unlock()
				}
			}}
		c := &config.Cluster{Coordinator: config.Coordinator{Addr: "10.0.0.1"}, Machines: plantest.Cluster().Machines[:1]}
		p, err := plan.Compute(nil, nil, plantest.Desired(c, nil, plantest.Binary010))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Apply(context.Background(), nil, p, state.New("test")); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}
		if !reflect.DeepEqual(running, want) {
			t.Fatalf("running events at %v; want %v", running, want)
		}
	})
}

func TestFilterRunsOnlyUpgrades(t *testing.T) {
	// The cluster commands run the executor on a restricted plan.
	h := newHarness(t)
	h.deploy(plantest.Desired(plantest.Cluster(), apps, plantest.Binary010))
	moved := plantest.Scenarios()[1].Desired
	moved.Binary = plantest.Binary020
	p := plan.Filter(h.plan(moved), plan.OnlyActions(plan.Upgrade))
	if _, err := h.apply(p, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.w.log() {
		if !strings.HasPrefix(c, "upgrade ") && !strings.HasPrefix(c, "wait ") {
			t.Fatalf("restricted apply made call %q", c)
		}
	}
}

type failingBackend struct{ *statefile.Local }

func (failingBackend) Write(context.Context, *state.State) error { return errors.New("disk full") }

func TestPersistFailureIsReportedWithTheState(t *testing.T) {
	h := newHarness(t)
	e := h.executor()
	e.Backend = failingBackend{h.backend}
	p := h.plan(plantest.Desired(plantest.Cluster(), nil, plantest.Binary010))
	st, _, err := e.Apply(context.Background(), nil, p, state.New("test"))
	if !errors.Is(err, ErrPersist) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("apply = %v; want ErrPersist", err)
	}
	if len(st.Machines) == 0 {
		t.Fatal("the returned state lost the completed steps")
	}
}
