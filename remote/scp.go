package remote

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"

	"github.com/adora-rs/adora/config"
)

// SCPCopy is one node binary to deliver for distribute: scp.
type SCPCopy struct {
	Node    string // node id
	Machine string // machine id
	Local   string // absolute path on the CLI machine
	Remote  string // absolute path on the machine, where its daemon looks
}

// PlanSCP lists the copies distribute: scp needs for df on cluster c: for
// every such node, its binary (node path resolved against localBase, the
// dataflow file's directory here) goes to every machine the node can be
// placed on (its deploy.machine; else every machine whose labels include
// deploy.labels; else every machine), at the path the daemon resolves: the
// node path against deploy.working_dir (absolute, or relative to
// remoteBase) or remoteBase, the directory the start request names. The
// result is sorted by machine, then node. It is a pure function.
func PlanSCP(c *config.Cluster, df *config.Dataflow, localBase, remoteBase string) ([]SCPCopy, error) {
	var copies []SCPCopy
	var errs []error
	for _, n := range df.Nodes {
		if n.Deploy.Distribute != config.DistributeSCP {
			continue
		}
		machines := scpCandidates(c, n.Deploy)
		if len(machines) == 0 {
			errs = append(errs, fmt.Errorf("node %s (distribute: scp): no machine in the cluster matches its placement", n.ID))
			continue
		}
		local := n.Path
		if !filepath.IsAbs(local) {
			local = filepath.Join(localBase, local)
		}
		dir := remoteBase
		if wd := n.Deploy.WorkingDir; wd != "" {
			if path.IsAbs(wd) {
				dir = wd
			} else {
				dir = path.Join(remoteBase, wd)
			}
		}
		remote := n.Path
		if !path.IsAbs(remote) {
			remote = path.Join(dir, remote)
		}
		if !path.IsAbs(remote) {
			errs = append(errs, fmt.Errorf("node %s (distribute: scp): target path %q is not absolute: give the start request an absolute working directory", n.ID, remote))
			continue
		}
		for _, m := range machines {
			copies = append(copies, SCPCopy{Node: n.ID, Machine: m, Local: local, Remote: remote})
		}
	}
	sort.Slice(copies, func(i, j int) bool {
		if copies[i].Machine != copies[j].Machine {
			return copies[i].Machine < copies[j].Machine
		}
		return copies[i].Node < copies[j].Node
	})
	return copies, errors.Join(errs...)
}

func scpCandidates(c *config.Cluster, d config.Deploy) []string {
	var ids []string
	for _, m := range c.Machines {
		switch {
		case d.Machine != "":
			if m.ID == d.Machine {
				ids = append(ids, m.ID)
			}
		case labelsMatch(m.Labels, d.Labels):
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// DeliverSCP carries out PlanSCP for df: over SSH, each copy goes to a
// temporary path, is checksum-verified and renamed into place (its
// directory is created). Machines are handled at most parallelism at a
// time. The start path calls it before asking the coordinator to start
// the dataflow with remoteBase as its working directory.
func (f *Fleet) DeliverSCP(ctx context.Context, df *config.Dataflow, localBase, remoteBase string, parallelism int) ([]SCPCopy, error) {
	copies, err := PlanSCP(f.Cluster, df, localBase, remoteBase)
	if err != nil {
		return nil, err
	}
	byMachine := map[string][]SCPCopy{}
	var ids []string
	for _, c := range copies {
		if _, ok := byMachine[c.Machine]; !ok {
			ids = append(ids, c.Machine)
		}
		byMachine[c.Machine] = append(byMachine[c.Machine], c)
	}
	errs := ForEach(ctx, parallelism, ids, func(ctx context.Context, id string) error {
		m := f.Cluster.Machine(id)
		if m == nil {
			return fmt.Errorf("machine %s is not in the cluster", id)
		}
		return f.with(ctx, *m, func(mc *Machine) error {
			for _, c := range byMachine[id] {
				lf, err := LocalFile(c.Local, 0o755)
				if err != nil {
					return fmt.Errorf("node %s: binary to push: %w (build it on this machine first)", c.Node, err)
				}
				if _, err := PushArtifact(ctx, mc, lf, path.Dir(c.Remote), path.Base(c.Remote)); err != nil {
					return fmt.Errorf("node %s to %s: %w", c.Node, id, err)
				}
			}
			return nil
		})
	})
	return copies, errors.Join(errs...)
}
