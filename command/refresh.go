package command

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/adora-rs/adora/plan"
)

// RefreshCommand looks at the live cluster and reports drift.
type RefreshCommand struct{ Meta *Meta }

func (c *RefreshCommand) Synopsis() string { return "Compare the live cluster with the recorded state" }

func (c *RefreshCommand) Help() string {
	return `Usage: adora refresh [options] [CLUSTER_OR_DATAFLOW_FILES...]

  Observes every machine (over SSH: unit, binary checksum and version) and
  the coordinator (daemons, labels, running dataflows and placements), in
  parallel, and reports what differs from the recorded state (drift). It
  changes nothing on the machines: adora plan proposes the changes that
  repair drift. With -update, the observed facts replace the recorded ones
  (accept the drift); the next plan then proposes what it takes to get from
  the live cluster to the configuration.

Options:

  -update               Record what was observed in the state.
  -detailed-exitcode    Exit 2 when there is drift, 0 when there is none.
  -json                 Print the observation and the drift as JSON.
  -cluster, -state, -var, -lock-timeout: as for adora plan.
`
}

func (c *RefreshCommand) Run(args []string) int {
	var f deployFlags
	fs := f.flagSet(c.Meta.Ui, "refresh", c.Help, false)
	var detailed, update bool
	fs.BoolVar(&detailed, "detailed-exitcode", false, "")
	fs.BoolVar(&update, "update", false, "")
	fs.BoolVar(&f.json, "json", false, "")
	if !deployParse(c.Meta.Ui, fs, args) {
		return 1
	}
	ctx, stop := deploySignalContext()
	defer stop()
	s, err := f.session(ctx, c.Meta.Ui, fs.Args(), "refresh")
	if err != nil {
		c.Meta.Ui.Error(err.Error())
		return 1
	}
	defer s.unlock()
	observed, err := s.observe(ctx)
	if err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("refresh: %v", err))
		return 1
	}
	drift := plan.DriftOf(s.prior, observed)
	if f.json {
		data, _ := json.MarshalIndent(map[string]any{"format_version": plan.FormatVersion, "observed": observed, "drift": drift}, "", "  ")
		c.Meta.Ui.Output(string(data))
	} else {
		for _, id := range slices.Sorted(maps.Keys(observed.Machines)) {
			o := observed.Machines[id]
			line := fmt.Sprintf("machine.%s: ", id)
			switch {
			case !o.Reachable && o.Error != "":
				line += "unreachable: " + o.Error
			default:
				v := o.BinaryVersion
				if v == "" {
					v = o.DaemonVersion
				}
				line += fmt.Sprintf("daemon running %v, adora %s, connected %v", o.DaemonRunning(), orDash(v), o.DaemonConnected)
			}
			c.Meta.Ui.Output(line)
		}
		if !observed.CoordinatorReachable {
			c.Meta.Ui.Warn("coordinator: " + observed.CoordinatorError)
		}
		if len(drift) == 0 {
			c.Meta.Ui.Output("\nNo drift: the live cluster matches the recorded state.")
		} else {
			c.Meta.Ui.Output(fmt.Sprintf("\nDrift (%d):", len(drift)))
			for _, d := range drift {
				c.Meta.Ui.Output(fmt.Sprintf("  ! %s: %s recorded %s, observed %s", d.Address, d.Field, d.Recorded, d.Observed))
			}
			c.Meta.Ui.Output("\nRun adora plan to see the changes that repair it.")
		}
	}
	if update && len(drift) > 0 && s.prior != nil {
		if !s.locked {
			c.Meta.Ui.Error("refresh -update needs the state lock: drop -lock=false")
			return 1
		}
		st := plan.Refreshed(s.prior, observed)
		if err := s.backend.Write(ctx, st); err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
		if !f.json {
			c.Meta.Ui.Output(fmt.Sprintf("The state records what was observed (serial %d).", st.Serial))
		}
	}
	if detailed && len(drift) > 0 {
		return 2
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
