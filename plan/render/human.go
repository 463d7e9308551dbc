// Package render turns a plan into text for people and programs: the human
// rendering (symbols, reasons, drift, waves, summary line), the JSON
// document (format_version, see docs/plans.md) and Markdown that fits a
// GitHub pull-request comment.
package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/adora-rs/adora/plan"
)

// Options control the human rendering.
type Options struct {
	// Color adds ANSI colours (callers set it only for terminals).
	Color bool
}

const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

// Symbol is the one-glance mark of an action.
func Symbol(a plan.Action) string {
	switch a {
	case plan.Install, plan.Start:
		return "+"
	case plan.Uninstall, plan.Stop:
		return "-"
	case plan.Upgrade, plan.Reconfigure, plan.Move:
		return "~"
	case plan.Restart:
		return "-/+"
	}
	return " "
}

func colorOf(a plan.Action) string {
	switch Symbol(a) {
	case "+":
		return green
	case "-":
		return red
	case "~":
		return yellow
	case "-/+":
		return cyan
	}
	return ""
}

// verb is how the header comment says what happens.
func verb(c plan.Change) string {
	switch c.Action {
	case plan.Install:
		return "will be installed"
	case plan.Uninstall:
		return "will be uninstalled"
	case plan.Upgrade:
		return "will be upgraded"
	case plan.Reconfigure:
		return "will be reconfigured"
	case plan.Start:
		return "will be started"
	case plan.Restart:
		return "will be restarted"
	case plan.Stop:
		return "will be stopped"
	case plan.Move:
		return "will move"
	}
	return "is unchanged"
}

type printer struct {
	w     io.Writer
	color bool
	err   error
}

func (pr *printer) printf(format string, args ...any) {
	if pr.err == nil {
		_, pr.err = fmt.Fprintf(pr.w, format, args...)
	}
}

func (pr *printer) paint(code, s string) string {
	if !pr.color || code == "" {
		return s
	}
	return code + s + reset
}

// Human writes the plan for people: drift first, then every change with
// its reason and details, the rolling waves and the summary line.
func Human(w io.Writer, p *plan.Plan, opts Options) error {
	pr := &printer{w: w, color: opts.Color}
	if len(p.Targets) > 0 {
		pr.printf("%s\n\n", pr.paint(yellow, "Note: this plan covers only "+strings.Join(p.Targets, ", ")+" (-target); other changes may be pending."))
	}
	if len(p.Excludes) > 0 {
		pr.printf("%s\n\n", pr.paint(yellow, "Note: this plan leaves out "+strings.Join(p.Excludes, ", ")+" (-exclude); other changes may be pending."))
	}
	if len(p.Drift) > 0 {
		humanDrift(pr, p.Drift)
	}
	if !p.HasChanges() {
		pr.printf("%s\n", pr.paint(bold, "No changes. The fleet matches the configuration."))
		return pr.err
	}
	legend(pr, p)
	pr.printf("adora will perform the following actions:\n")
	for _, kind := range []plan.Kind{plan.KindMachine, plan.KindDataflow} {
		humanKind(pr, p.Changes, kind)
	}
	humanWaves(pr, p)
	pr.printf("\n%s\n", pr.paint(bold, SummaryLine(p.Summarize())))
	return pr.err
}

// humanKind prints the changes of one kind of resource; nodes are printed
// under their dataflow.
func humanKind(pr *printer, changes []plan.Change, kind plan.Kind) {
	for i := 0; i < len(changes); i++ {
		c := changes[i]
		if c.Kind != kind || (c.Action == plan.NoOp && c.Kind == plan.KindMachine && len(c.Warnings) == 0) {
			continue
		}
		j := i + 1
		for j < len(changes) && changes[j].Kind == plan.KindNode && changes[j].Dataflow == c.Name {
			j++
		}
		if c.Action == plan.NoOp && !anyChange(changes[i+1:j]) {
			continue
		}
		humanChange(pr, c, changes[i+1:j])
	}
}

func anyChange(cs []plan.Change) bool {
	for _, c := range cs {
		if c.Action != plan.NoOp {
			return true
		}
	}
	return false
}

func legend(pr *printer, p *plan.Plan) {
	used := map[string]bool{}
	for _, c := range p.Changes {
		used[Symbol(c.Action)] = true
	}
	pr.printf("Resource actions are indicated with the following symbols:\n")
	for _, l := range []struct{ sym, text, color string }{
		{"+", "install / start", green}, {"~", "upgrade / reconfigure / move", yellow},
		{"-/+", "restart", cyan}, {"-", "uninstall / stop", red},
	} {
		if used[l.sym] {
			pr.printf("  %s %s\n", pr.paint(l.color, fmt.Sprintf("%-3s", l.sym)), l.text)
		}
	}
	pr.printf("\n")
}

func humanDrift(pr *printer, drift []plan.Drift) {
	pr.printf("%s\n", pr.paint(bold, "Note: the live cluster differs from the recorded state (drift):"))
	for _, d := range drift {
		pr.printf("  %s %s: %s recorded %s, observed %s\n", pr.paint(yellow, "!"), d.Address, d.Field, d.Recorded, d.Observed)
	}
	pr.printf("\n")
}

func humanChange(pr *printer, c plan.Change, nodes []plan.Change) {
	sym := pr.paint(colorOf(c.Action), fmt.Sprintf("%-3s", Symbol(c.Action)))
	pr.printf("\n  # %s %s", c.Address, verb(c))
	if c.Wave > 0 {
		pr.printf(" (wave %d)", c.Wave)
	}
	pr.printf("\n  %s %s\n", sym, c.Address)
	if c.Reason != "" {
		pr.printf("        reason: %s\n", c.Reason)
	}
	for _, d := range c.Diffs {
		pr.printf("        %s\n", diffText(d))
	}
	for _, w := range c.Warnings {
		pr.printf("        %s %s\n", pr.paint(yellow, "warning:"), w)
	}
	for _, n := range nodes {
		if n.Action == plan.NoOp {
			continue
		}
		nsym := pr.paint(colorOf(n.Action), Symbol(n.Action))
		pr.printf("      %s node %s", nsym, n.Name)
		for _, d := range n.Diffs {
			if d.After == "" {
				pr.printf(": was on %s", d.Before)
				continue
			}
			pr.printf(": %s", arrow(d))
		}
		if n.Placement != nil && n.Placement.Rule != "" {
			pr.printf(" (%s)", n.Placement.Rule)
		}
		if n.Placement == nil && n.Reason != "" {
			pr.printf(" (%s)", n.Reason)
		}
		pr.printf("\n")
		if n.Placement != nil {
			for _, r := range n.Placement.Refused {
				pr.printf("          not %s: %s\n", r.Machine, r.Reason)
			}
		}
	}
}

func diffText(d plan.Diff) string { return d.Field + ": " + arrow(d) }

func arrow(d plan.Diff) string {
	switch {
	case d.Before == "":
		return d.After
	case d.After == "":
		return d.Before + " -> (removed)"
	}
	return d.Before + " -> " + d.After
}

func humanWaves(pr *printer, p *plan.Plan) {
	if len(p.Waves) == 0 {
		return
	}
	pr.printf("\nRolling order (%d machine(s) per wave; each wave waits for its daemons to return):\n", p.Parallelism())
	for _, w := range p.Waves {
		pr.printf("  wave %d: %s\n", w.Index, strings.Join(w.Machines, ", "))
	}
}

// SummaryLine is the one-line count of a plan, e.g.
// "Plan: 2 to install, 1 to upgrade, 0 to uninstall; 1 dataflow to start,
// 1 to restart, 0 to stop." Reconfigured machines and drift are counted
// only when there are any.
func SummaryLine(s plan.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan: %d to install, %d to upgrade, ", s.Install, s.Upgrade)
	if s.Reconfigure > 0 {
		fmt.Fprintf(&b, "%d to reconfigure, ", s.Reconfigure)
	}
	noun := "dataflows"
	if s.Start == 1 {
		noun = "dataflow"
	}
	fmt.Fprintf(&b, "%d to uninstall; %d %s to start, %d to restart, %d to stop.", s.Uninstall, s.Start, noun, s.Restart, s.Stop)
	if s.Drift > 0 {
		fmt.Fprintf(&b, " Drift: %d.", s.Drift)
	}
	return b.String()
}
