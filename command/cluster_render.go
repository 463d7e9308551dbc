package command

import (
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/state"
)

// clusterLines renders the executor's progress for cluster install and
// uninstall as the guide's lines, "<label>... OK" or "<label>... FAILED:
// <err>", one per machine in the cluster file's order, each printed as
// soon as it and the machines before it have a result. Safe for
// concurrent use.
type clusterLines struct {
	ui       cli.Ui
	machines []config.Machine
	label    func(config.Machine) string
	// note, when set, is appended after OK for a completed change.
	note func(id string) string

	mu      sync.Mutex
	results map[string]clusterResult
	next    int // index of the first machine not printed yet
	failed  []string
}

func newClusterLines(ui cli.Ui, machines []config.Machine, label func(config.Machine) string) *clusterLines {
	return &clusterLines{ui: ui, machines: machines, label: label, results: map[string]clusterResult{}}
}

// set records machine id's result (the first one counts) and prints what
// became printable.
func (l *clusterLines) set(id string, r clusterResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.results[id]; ok {
		return
	}
	l.results[id] = r
	l.flushLocked()
}

// event is the executor's Progress callback.
func (l *clusterLines) event(ev apply.Event) {
	id, ok := machineOf(ev.Address)
	if !ok {
		return
	}
	switch ev.Status {
	case apply.Done:
		r := clusterResult{}
		if l.note != nil {
			r.note = l.note(id)
		}
		l.set(id, r)
	case apply.Failed:
		l.set(id, clusterResult{err: ev.Err})
	}
}

// finish gives every machine without a result the error notRun, prints
// the rest and returns the ids of failed machines in file order.
func (l *clusterLines) finish(notRun error) []string {
	for _, m := range l.machines {
		l.set(m.ID, clusterResult{err: notRun})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *clusterLines) flushLocked() {
	for ; l.next < len(l.machines); l.next++ {
		m := l.machines[l.next]
		r, ok := l.results[m.ID]
		if !ok {
			return
		}
		if r.err != nil {
			l.ui.Error(fmt.Sprintf("%s... FAILED: %v", l.label(m), r.err))
			l.failed = append(l.failed, m.ID)
			continue
		}
		line := l.label(m) + "... OK"
		if r.note != "" {
			line += " " + r.note
		}
		l.ui.Output(line)
	}
}

// machineOf is the machine id of a machine address.
func machineOf(addr string) (string, bool) {
	return strings.CutPrefix(addr, "machine.")
}

// inRun reports whether p carries out a change on machine id.
func inRun(p *plan.Plan, id string) bool {
	c, ok := p.Change(state.MachineAddr(id))
	return ok && c.Action != plan.NoOp
}

// upgradeLines renders cluster upgrade: "Upgrading ID (user@host)..." when
// the executor starts a machine's upgrade, then the sub-step lines the
// upgrader prints; it remembers the first failure for the summary.
type upgradeLines struct {
	ui     cli.Ui
	target func(id string) string

	mu        sync.Mutex
	failedID  string
	failedErr error
}

func (u *upgradeLines) event(ev apply.Event) {
	id, ok := machineOf(ev.Address)
	if !ok || ev.Action != plan.Upgrade {
		return
	}
	switch ev.Status {
	case apply.Started:
		u.ui.Output(fmt.Sprintf("Upgrading %s (%s)...", id, u.target(id)))
	case apply.Failed:
		u.mu.Lock()
		if u.failedID == "" {
			u.failedID, u.failedErr = id, ev.Err
		}
		u.mu.Unlock()
	}
}

// step prints one sub-step line: "  NAME... RESULT".
func (u *upgradeLines) step(name, result string, failed bool) {
	line := "  " + name + "... " + result
	if failed {
		u.ui.Error(line)
		return
	}
	u.ui.Output(line)
}

// unchanged prints the lines of a machine that already runs the binary
// (its change is not an upgrade): nothing is copied or restarted.
func (u *upgradeLines) unchanged(id string, c plan.Change, version string) {
	u.ui.Output(fmt.Sprintf("Upgrading %s (%s)...", id, u.target(id)))
	u.step("SCP binary", "OK (unchanged)", false)
	if c.Action == plan.NoOp {
		u.step("Restart service", "skipped (already running "+version+")", false)
		return
	}
	u.step("Restart service", fmt.Sprintf("skipped (the binary is already %s; %s: adora cluster install does that)", version, c.Reason), false)
}

// summary prints how the rollout ended and returns the exit code. ok is
// the number of machines on the new binary, total those of the file.
func (u *upgradeLines) summary(ok, total int, res apply.Result) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	var rest []string
	for _, a := range res.Remaining {
		if id, isMachine := machineOf(a); isMachine && id != u.failedID {
			rest = append(rest, id)
		}
	}
	switch {
	case u.failedID != "":
		msg := fmt.Sprintf("Rollout stopped at %s: %v", u.failedID, u.failedErr)
		if len(rest) > 0 {
			msg += "\nNot upgraded (untouched): " + strings.Join(rest, ", ")
		}
		u.ui.Error(msg)
	case len(rest) > 0:
		u.ui.Error("Rollout interrupted; not upgraded (untouched): " + strings.Join(rest, ", "))
	}
	u.ui.Output(fmt.Sprintf("%d/%d succeeded.", ok, total))
	if u.failedID != "" || len(rest) > 0 {
		return 1
	}
	return 0
}
