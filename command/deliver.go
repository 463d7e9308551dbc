package command

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// deliverNodes brings the binaries of req's delivered nodes where their
// daemons look for them, before the start request is sent: nodes with
// "distribute: scp" are pushed over SSH to every machine of fleet they can
// be placed on (remote.Fleet.DeliverSCP, what adora start's scp hook does),
// nodes with "distribute: http" are uploaded to the coordinator's artifact
// store and recorded in req.Artifacts (client.UploadHTTPArtifacts, what
// adora start does). Paths resolve against req.WorkingDir on both sides.
func deliverNodes(ctx context.Context, coord client.Options, fleet *remote.Fleet, req *proto.Start, log *slog.Logger) error {
	if hasDistribute(&req.Dataflow, config.DistributeSCP) {
		copies, err := fleet.DeliverSCP(ctx, &req.Dataflow, req.WorkingDir, req.WorkingDir, remote.DefaultParallelism)
		for _, c := range copies {
			log.Info("scp", "node", c.Node, "machine", c.Machine, "path", c.Remote)
		}
		if err != nil {
			return fmt.Errorf("distribute: scp: %w", err)
		}
	}
	return client.UploadHTTPArtifacts(ctx, coord, req)
}

func hasDistribute(df *config.Dataflow, how config.Distribute) bool {
	for _, n := range df.Nodes {
		if n.Deploy.Distribute == how {
			return true
		}
	}
	return false
}

// nodeBinaries is the sha256 of each delivered node's binary (distribute:
// http or scp) on this machine, per dataflow: what apply will deliver, so
// that plan records it and restarts a dataflow whose binary changed. A
// binary that is missing is left out (apply then fails saying to build
// it).
func nodeBinaries(dfs map[string]*config.Dataflow) map[string]map[string]string {
	out := map[string]map[string]string{}
	for name, df := range dfs {
		sums := map[string]string{}
		for _, n := range df.Nodes {
			if n.Deploy.Distribute != config.DistributeHTTP && n.Deploy.Distribute != config.DistributeSCP {
				continue
			}
			path := n.Path
			if !filepath.IsAbs(path) {
				path = filepath.Join(workingDir(df), path)
			}
			if sum, err := fileSHA256(path); err == nil {
				sums[n.ID] = sum
			}
		}
		out[name] = sums
	}
	return out
}
