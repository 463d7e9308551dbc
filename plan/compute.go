package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/state"
)

// Desired is what the fleet should look like: the cluster, its dataflows
// (by name) and the adora binary to run on every machine.
type Desired struct {
	Cluster   *config.Cluster
	Dataflows map[string]*config.Dataflow
	Binary    Binary
	// UnitHashes is the content hash of the systemd unit each machine
	// should have (machine ID -> hash); machines absent here are not
	// compared on their unit.
	UnitHashes map[string]string
	// RunAs is the user each machine's systemd daemon should run as
	// (machine ID -> user, run_as resolved against the SSH user);
	// machines absent here are not compared on it.
	RunAs map[string]string
	// Placer places dataflow nodes on machines. Required when there are
	// dataflows.
	Placer Placer
	// Parallelism is the number of machines per rolling wave (default 1).
	Parallelism int
	// Targets restricts the plan to these addresses and their children
	// (dataflow.app includes dataflow.app.node.*).
	Targets []string
	// Excludes removes these addresses and their children from the plan.
	Excludes []string
	// Destroy plans the removal of everything the state records.
	Destroy bool
	// AdoraVersion is the version of the adora computing the plan.
	AdoraVersion string
	// NodeBinaries is the sha256 of the binary each delivered node
	// (distribute: http or scp) has on this machine: dataflow name -> node
	// ID -> hex sha256. A dataflow listed here records these as its
	// artifacts, and a node whose recorded sha256 differs is restarted;
	// dataflows absent keep their recorded artifacts.
	NodeBinaries map[string]map[string]string
}

// Errors is every problem that made Compute fail, reported together.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// Compute diffs prior (nil: nothing deployed) and observed (nil: not
// refreshed) against desired and returns the plan. It is pure and
// deterministic: equal inputs give equal plans.
func Compute(prior *state.State, observed *state.Observed, desired Desired) (*Plan, error) {
	if desired.Cluster == nil && !desired.Destroy {
		return nil, errors.New("plan: no desired cluster")
	}
	if prior == nil {
		prior = &state.State{Machines: map[string]state.Machine{}, Dataflows: map[string]state.Dataflow{}}
	}
	if desired.Destroy {
		desired.Cluster = &config.Cluster{Coordinator: config.Coordinator{Addr: prior.Coordinator.Addr, Port: prior.Coordinator.Port}}
		desired.Dataflows = nil
	}
	p := &Plan{
		FormatVersion: FormatVersion,
		AdoraVersion:  desired.AdoraVersion,
		Prior:         StateRef{Lineage: prior.Lineage, Serial: prior.Serial},
		Refreshed:     observed != nil,
		Destroy:       desired.Destroy,
		Coordinator:   state.Coordinator{Addr: desired.Cluster.Coordinator.Addr, Port: desired.Cluster.Coordinator.Port},
		Binary:        desired.Binary,
		Cluster:       desired.Cluster,
		Dataflows:     desired.Dataflows,
		Targets:       slices.Clone(desired.Targets),
		Excludes:      slices.Clone(desired.Excludes),
	}
	if p.Coordinator.Port == 0 {
		p.Coordinator.Port = config.DefaultCoordinatorPort
	}
	n := len(desired.Cluster.Machines) + len(prior.Machines) + len(prior.Dataflows)
	for _, df := range desired.Dataflows {
		n += 1 + len(df.Nodes)
	}
	p.Changes = make([]Change, 0, n)
	c := &computer{prior: prior, observed: observed, desired: desired, p: p}
	c.machines()
	errs := c.dataflows()
	if len(errs) > 0 {
		return nil, errs
	}
	if len(desired.Targets) > 0 {
		p.Changes = slices.DeleteFunc(p.Changes, func(ch Change) bool { return !Targeted(ch.Address, desired.Targets) })
	}
	if len(desired.Excludes) > 0 {
		p.Changes = slices.DeleteFunc(p.Changes, func(ch Change) bool { return Targeted(ch.Address, desired.Excludes) })
	}
	slices.SortFunc(p.Changes, func(a, b Change) int { return strings.Compare(a.Address, b.Address) })
	sortDrift(p.Drift)
	p.Preconditions = c.preconditions()
	assignWaves(p, desired.Parallelism)
	return p, nil
}

// Targeted reports whether addr is one of targets or below one.
func Targeted(addr string, targets []string) bool {
	for _, t := range targets {
		if addr == t || strings.HasPrefix(addr, t+".") {
			return true
		}
	}
	return false
}

type computer struct {
	prior    *state.State
	observed *state.Observed
	desired  Desired
	p        *Plan
}

func (c *computer) coordAddr() string {
	return c.p.Coordinator.Addr + ":" + strconv.Itoa(c.p.Coordinator.Port)
}

func (c *computer) add(ch Change) { c.p.Changes = append(c.p.Changes, ch) }

func (c *computer) drift(addr, field, recorded, observed string) {
	c.p.Drift = append(c.p.Drift, Drift{Address: addr, Field: field, Recorded: recorded, Observed: observed})
}

// desiredMachine is the state record a desired machine should end up with.
func (c *computer) desiredMachine(m config.Machine) state.Machine {
	mode := state.Systemd
	if m.Local {
		mode = state.AdHoc
	}
	return state.Machine{
		ID: m.ID, Host: m.Host, User: m.User, Port: m.Port, DaemonMode: mode, UnitHash: c.desired.UnitHashes[m.ID], RunAs: c.desired.RunAs[m.ID],
		BinaryVersion: c.desired.Binary.Version, BinarySHA256: c.desired.Binary.SHA256,
		Labels: maps.Clone(m.Labels), CoordinatorAddr: c.coordAddr(),
	}
}

func (c *computer) machines() {
	want := map[string]config.Machine{}
	for _, m := range c.desired.Cluster.Machines {
		want[m.ID] = m
	}
	for id, rec := range c.prior.Machines {
		obs, seen := c.observedMachine(id)
		if seen {
			c.machineDrift(rec, obs)
		}
		if _, ok := want[id]; !ok {
			reason := "machine is no longer in the cluster"
			if c.desired.Destroy {
				reason = "destroy: everything adora deployed is removed"
			}
			c.add(Change{Address: state.MachineAddr(id), Kind: KindMachine, Name: id, Action: Uninstall, Reason: reason})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		after := c.desiredMachine(want[id])
		rec, ok := c.prior.Machines[id]
		if !ok {
			reason := "machine is new in the cluster"
			if obs, seen := c.observedMachine(id); seen && obs.Reachable && obs.UnitPresent {
				reason = "a daemon runs there but adora has no record of it (installed by hand or by adora cluster): install adopts it, restarting it only if something differs"
			}
			c.add(Change{Address: state.MachineAddr(id), Kind: KindMachine, Name: id, Action: Install,
				Reason: reason, MachineAfter: &after,
				Diffs: []Diff{{Field: "binary", After: binaryString(after.BinaryVersion, after.BinarySHA256)}}})
			continue
		}
		c.add(c.machineChange(rec, after))
	}
}

func (c *computer) observedMachine(id string) (state.MachineObservation, bool) {
	if c.observed == nil {
		return state.MachineObservation{}, false
	}
	o, ok := c.observed.Machines[id]
	return o, ok
}

// current overlays what was observed on the recorded machine.
func (c *computer) current(rec state.Machine) state.Machine {
	cur := rec
	obs, ok := c.observedMachine(rec.ID)
	if !ok || !obs.Reachable {
		return cur
	}
	if obs.BinarySHA256 != "" {
		cur.BinarySHA256 = obs.BinarySHA256
		if obs.BinaryVersion != "" {
			cur.BinaryVersion = obs.BinaryVersion
		}
	}
	if obs.UnitHash != "" {
		cur.UnitHash = obs.UnitHash
	}
	if obs.DaemonConnected && obs.DaemonLabels != nil {
		cur.Labels = obs.DaemonLabels
	}
	return cur
}

func (c *computer) machineChange(rec, after state.Machine) Change {
	addr := state.MachineAddr(rec.ID)
	ch := Change{Address: addr, Kind: KindMachine, Name: rec.ID, Action: NoOp, MachineAfter: &after}
	cur := c.current(rec)
	ch.Diffs = machineDiffs(cur, after)
	obs, seen := c.observedMachine(rec.ID)
	switch {
	case rec.Host != after.Host || rec.DaemonMode != after.DaemonMode:
		// Another host (or another way of running the daemon) is a new
		// installation; apply removes the old one first.
		ch.Action = Install
		ch.Reason = fmt.Sprintf("machine moves from %s (%s) to %s (%s): the old daemon is uninstalled, a new one installed",
			rec.Host, rec.DaemonMode, after.Host, after.DaemonMode)
	case seen && obs.Reachable && after.DaemonMode == state.Systemd && !obs.UnitPresent:
		// A reinstall also brings the desired binary: no upgrade needed.
		ch.Action = Install
		ch.Reason = "daemon unit is missing on the machine (drift): install it again"
	case cur.BinarySHA256 != after.BinarySHA256:
		ch.Action = Upgrade
		ch.Reason = fmt.Sprintf("adora binary changes from %s to %s", binaryString(cur.BinaryVersion, cur.BinarySHA256), binaryString(after.BinaryVersion, after.BinarySHA256))
	case len(ch.Diffs) > 0:
		ch.Action = Reconfigure
		fields := make([]string, len(ch.Diffs))
		for i, d := range ch.Diffs {
			fields[i] = d.Field
		}
		ch.Reason = strings.Join(fields, ", ") + " changed: daemon is reconfigured and restarted"
	case seen && obs.Reachable && !obs.DaemonRunning():
		ch.Action = Reconfigure
		ch.Reason = "daemon is not running (drift): restart it"
	case seen && obs.Reachable && after.DaemonMode == state.Systemd && !obs.UnitEnabled:
		ch.Action = Reconfigure
		ch.Reason = "daemon unit is not enabled (drift): enable it so it starts at boot"
	}
	if seen && !obs.Reachable {
		ch.Warnings = append(ch.Warnings, "machine was unreachable at refresh: "+obs.Error)
	}
	return ch
}

func machineDiffs(cur, after state.Machine) []Diff {
	var d []Diff
	add := func(field, before, after string) {
		if before != after {
			d = append(d, Diff{Field: field, Before: before, After: after})
		}
	}
	add("host", cur.Host, after.Host)
	add("daemon_mode", string(cur.DaemonMode), string(after.DaemonMode))
	add("binary", binaryString(cur.BinaryVersion, cur.BinarySHA256), binaryString(after.BinaryVersion, after.BinarySHA256))
	add("labels", labelString(cur.Labels), labelString(after.Labels))
	add("coordinator", cur.CoordinatorAddr, after.CoordinatorAddr)
	if cur.RunAs != "" && after.RunAs != "" { // a record from before run_as has none
		add("run_as", cur.RunAs, after.RunAs)
	}
	if after.UnitHash != "" {
		add("unit", short(cur.UnitHash), short(after.UnitHash))
	}
	return d
}

func (c *computer) machineDrift(rec state.Machine, obs state.MachineObservation) {
	addr := state.MachineAddr(rec.ID)
	if !obs.Reachable {
		c.drift(addr, "reachable", "true", "false")
		return
	}
	if rec.DaemonMode == state.Systemd {
		switch {
		case !obs.UnitPresent:
			c.drift(addr, "unit", "installed", "missing")
		case !obs.UnitActive:
			c.drift(addr, "daemon", "running", "stopped")
		}
		if obs.UnitPresent && !obs.UnitEnabled {
			c.drift(addr, "unit_enabled", "true", "false")
		}
		if obs.UnitHash != "" && rec.UnitHash != "" && obs.UnitHash != rec.UnitHash {
			c.drift(addr, "unit_hash", short(rec.UnitHash), short(obs.UnitHash))
		}
	} else if !obs.DaemonConnected {
		c.drift(addr, "daemon", "running", "stopped")
	}
	if obs.BinarySHA256 != "" && obs.BinarySHA256 != rec.BinarySHA256 {
		c.drift(addr, "binary", binaryString(rec.BinaryVersion, rec.BinarySHA256), binaryString(obs.BinaryVersion, obs.BinarySHA256))
	}
	if obs.DaemonConnected && obs.DaemonLabels != nil && labelString(obs.DaemonLabels) != labelString(rec.Labels) {
		c.drift(addr, "labels", labelString(rec.Labels), labelString(obs.DaemonLabels))
	}
}

func binaryString(version, sha string) string {
	if version == "" && sha == "" {
		return "(none)"
	}
	return version + " (sha256 " + short(sha) + ")"
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// DescriptorHash is the content hash of a dataflow descriptor: sha256 of
// its canonical JSON, positions and source path excluded.
func DescriptorHash(df *config.Dataflow) string {
	d := *df
	d.Source = ""
	data, err := json.Marshal(&d)
	if err != nil {
		// config types are plain data; Marshal cannot fail on them.
		panic(fmt.Sprintf("plan: encode dataflow: %v", err))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// DriftOf lists what observed shows differing from prior, sorted by
// address then field. It is the drift section of a plan, without planning.
func DriftOf(prior *state.State, observed *state.Observed) []Drift {
	if prior == nil || observed == nil {
		return nil
	}
	c := &computer{prior: prior, observed: observed, p: &Plan{}}
	for _, m := range prior.Machines {
		if obs, ok := c.observedMachine(m.ID); ok {
			c.machineDrift(m, obs)
		}
	}
	for _, d := range prior.Dataflows {
		c.dataflowDrift(d)
	}
	sortDrift(c.p.Drift)
	return c.p.Drift
}

func sortDrift(d []Drift) {
	sort.Slice(d, func(i, j int) bool {
		if d[i].Address != d[j].Address {
			return d[i].Address < d[j].Address
		}
		return d[i].Field < d[j].Field
	})
}
