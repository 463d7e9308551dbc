package command

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/adora-rs/adora/apply"
	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/internal/auth"
	"github.com/adora-rs/adora/internal/paths"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/state"
)

// fleetOps carries out apply's steps on real machines and through the
// coordinator. Machine operations go through remote.Fleet (the code the
// cluster commands use); the machine adora runs on (Local, the built-in
// cluster) gets an ad hoc daemon instead of a systemd one. It implements
// apply's Installer, Upgrader, DaemonWaiter, Deployer, MachineObserver and
// ClusterObserver.
type fleetOps struct {
	*remote.Fleet
	coord       client.Options
	log         *slog.Logger
	waitTimeout time.Duration

	coordOnce sync.Once
	coordErr  error
}

func newFleetOps(c *config.Cluster) (*fleetOps, error) {
	tok, err := deployToken()
	if err != nil {
		return nil, fmt.Errorf("coordinator token: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ADORA_LOG") == "debug" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	port := c.Coordinator.Port
	if port == 0 {
		port = config.DefaultCoordinatorPort
	}
	fleet := &remote.Fleet{Cluster: c, Dialer: remote.NewDialer(log), Token: tok, Logger: log}
	return &fleetOps{Fleet: fleet, log: log, waitTimeout: 2 * time.Minute,
		coord: client.Options{Addr: c.Coordinator.Addr, Port: port, Token: tok, Logger: log}}, nil
}

// deployToken is the coordinator token daemons are given: the configured
// one, else ADORA_HOME/token (created when missing).
func deployToken() (string, error) {
	tok, err := auth.Resolve("")
	if err != nil || tok != "" {
		return tok, err
	}
	p, err := paths.TokenFile()
	if err != nil {
		return "", err
	}
	tok, _, err = auth.LoadOrCreate(p)
	return tok, err
}

// unitHashes is the content hash of each systemd machine's desired unit.
func (o *fleetOps) unitHashes(c *config.Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Machines {
		if m.Local {
			continue
		}
		s := o.Spec(m)
		s.Token = ""
		if unit, err := remote.RenderUnit(s); err == nil {
			out[m.ID] = remote.ContentHash(unit)
		}
	}
	return out
}

// runAsUsers is the user each systemd machine's daemon runs as.
func runAsUsers(c *config.Cluster) map[string]string {
	out := map[string]string{}
	for _, m := range c.Machines {
		if !m.Local {
			out[m.ID] = remote.RunAsOf(c, m)
		}
	}
	return out
}

// startAdhoc (re)starts the ad hoc daemon of a local machine.
func (o *fleetOps) startAdhoc(ctx context.Context, m config.Machine, after state.Machine, b plan.Binary) error {
	bin, err := o.BinaryFile(b.Path)
	if err != nil {
		return err
	}
	rm, err := o.Dial(ctx, m)
	if err != nil {
		return err
	}
	defer rm.Close()
	if _, err := remote.StopAdhocDaemon(ctx, rm, m.ID); err != nil {
		return err
	}
	spec := o.Spec(m)
	spec.Labels = maps.Clone(after.Labels)
	_, err = remote.StartAdhocDaemon(ctx, rm, spec, bin)
	return err
}

// ensureLocalCoordinator starts a coordinator on this machine, as adora up
// does, when the cluster's coordinator is on loopback and not answering:
// the built-in cluster's apply brings up its own control plane.
func (o *fleetOps) ensureLocalCoordinator(ctx context.Context) error {
	o.coordOnce.Do(func() {
		if ip := net.ParseIP(o.coord.Addr); o.coord.Addr != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return
		}
		if _, err := client.Health(ctx, o.coord); err == nil {
			return
		}
		home, err := paths.EnsureHome()
		if err != nil {
			o.coordErr = err
			return
		}
		args := []string{"coordinator", "--interface", o.coord.Addr, "--port", strconv.Itoa(o.coord.Port)}
		pid, err := startDetached(home, "coordinator", args)
		if err != nil {
			o.coordErr = err
			return
		}
		markStartedByApply(home, pid)
		if _, err := waitHealth(ctx, o.coord, 10*time.Second, func(proto.Health) bool { return true }); err != nil {
			o.coordErr = fmt.Errorf("coordinator (pid %d) did not answer: %w; see %s", pid, err, logFile(home, "coordinator"))
		}
	})
	return o.coordErr
}

func (o *fleetOps) Install(ctx context.Context, m config.Machine, after state.Machine, b plan.Binary) error {
	if after.DaemonMode == state.AdHoc {
		if err := o.ensureLocalCoordinator(ctx); err != nil {
			return err
		}
		return o.startAdhoc(ctx, m, after, b)
	}
	return o.Fleet.Install(ctx, m, after, b)
}

func (o *fleetOps) Upgrade(ctx context.Context, m config.Machine, after state.Machine, b plan.Binary) error {
	if after.DaemonMode == state.AdHoc {
		return o.startAdhoc(ctx, m, after, b)
	}
	return o.Fleet.Upgrade(ctx, m, after, b)
}

func (o *fleetOps) Uninstall(ctx context.Context, m config.Machine) error {
	if !m.Local {
		return o.Fleet.Uninstall(ctx, m)
	}
	rm, err := o.Dial(ctx, m)
	if err != nil {
		return err
	}
	defer rm.Close()
	_, err = remote.StopAdhocDaemon(ctx, rm, m.ID)
	return err
}

func (o *fleetOps) ObserveMachine(ctx context.Context, m config.Machine) (state.MachineObservation, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !m.Local {
		return o.Fleet.ObserveMachine(ctx, m)
	}
	rm, err := o.Dial(ctx, m)
	if err != nil {
		return state.MachineObservation{}, err
	}
	defer rm.Close()
	ob, err := remote.ObserveMachine(ctx, rm, m.ID)
	if err != nil {
		return state.MachineObservation{}, err
	}
	running := ob.AdhocPID > 0
	return state.MachineObservation{ID: m.ID, Reachable: true, UnitPresent: running, UnitActive: running,
		BinarySHA256: ob.BinarySHA256, BinaryVersion: remote.ParseVersion(ob.BinaryVer)}, nil
}

// WaitDaemon polls the coordinator until machineID's daemon is connected
// at version.
func (o *fleetOps) WaitDaemon(ctx context.Context, machineID, ver string) error {
	ctx, cancel := context.WithTimeout(ctx, o.waitTimeout)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := "not connected"
	for {
		if h, err := client.Health(ctx, o.coord); err == nil {
			last = "not connected"
			for _, d := range h.Daemons {
				if d.MachineID == machineID {
					if d.Version == ver {
						return nil
					}
					last = "connected at version " + d.Version
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon %s did not come back at version %s within %s (%s)", machineID, ver, o.waitTimeout, last)
		case <-t.C:
		}
	}
}

func (o *fleetOps) withClient(ctx context.Context, fn func(*client.Client) error) error {
	cl, err := client.Dial(ctx, o.coord)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}

func (o *fleetOps) Start(ctx context.Context, name string, df *config.Dataflow, _ map[string]string) (string, error) {
	desc, err := descriptorBytes(df)
	if err != nil {
		return "", err
	}
	req := proto.Start{Name: name, Descriptor: desc, Dataflow: *df, WorkingDir: workingDir(df)}
	if err := deliverNodes(ctx, o.coord, o.Fleet, &req, o.log); err != nil {
		return "", err
	}
	var id string
	err = o.withClient(ctx, func(cl *client.Client) error {
		reply, err := cl.Start(ctx, req)
		id = reply.DataflowID
		return err
	})
	return id, err
}

func (o *fleetOps) Stop(ctx context.Context, name, uuid string) error {
	target := name
	if uuid != "" {
		target = uuid
	}
	return o.withClient(ctx, func(cl *client.Client) error {
		_, err := cl.Stop(ctx, target, 10*time.Second, false)
		if err == nil {
			return nil
		}
		// The goal of a stop is "not running": a dataflow that finished
		// by itself (or is gone) already meets it.
		active, lerr := cl.List(ctx, false)
		if lerr != nil {
			return err
		}
		for _, f := range active {
			if f.ID == target || f.Name == target {
				return err
			}
		}
		o.log.Debug("stop: dataflow is not running; nothing to stop", "dataflow", name, "uuid", uuid, "stop_error", err)
		return nil
	})
}

func (o *fleetOps) ObserveCluster(ctx context.Context) (apply.ClusterView, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	view := apply.ClusterView{Daemons: map[string]apply.DaemonView{}, Dataflows: map[string]state.DataflowObservation{}}
	err := o.withClient(ctx, func(cl *client.Client) error {
		ds, err := cl.Daemons(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds.Daemons {
			if d.Connected && d.MachineID != "" {
				view.Daemons[d.MachineID] = apply.DaemonView{Version: d.Version, Labels: d.Labels}
			}
		}
		flows, err := cl.List(ctx, false)
		if err != nil {
			return err
		}
		for _, f := range flows {
			obs := state.DataflowObservation{Name: f.Name, UUID: f.ID, Placements: map[string]string{}}
			for _, pl := range f.Placements {
				obs.Placements[pl.NodeID] = pl.MachineID
			}
			view.Dataflows[f.Name] = obs
		}
		return nil
	})
	return view, err
}

// descriptorBytes is the descriptor sent to the coordinator: the planned
// dataflow in canonical YAML, so what the coordinator stores is what was
// planned (a dataflow inline in the cluster file, HCL with its variables
// evaluated) and not whatever file it came from.
func descriptorBytes(df *config.Dataflow) ([]byte, error) {
	data, err := config.FormatDataflowYAML(df)
	if err != nil {
		return nil, fmt.Errorf("encode the dataflow descriptor: %w", err)
	}
	return data, nil
}

func workingDir(df *config.Dataflow) string {
	if df.Source == "" {
		return ""
	}
	abs, err := filepath.Abs(filepath.Dir(df.Source))
	if err != nil {
		return ""
	}
	return abs
}

var (
	_ apply.Installer       = (*fleetOps)(nil)
	_ apply.Upgrader        = (*fleetOps)(nil)
	_ apply.DaemonWaiter    = (*fleetOps)(nil)
	_ apply.Deployer        = (*fleetOps)(nil)
	_ apply.MachineObserver = (*fleetOps)(nil)
	_ apply.ClusterObserver = (*fleetOps)(nil)
)
