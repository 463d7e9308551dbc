package daemon

import (
	"log/slog"

	"github.com/adora-rs/adora/runtime/dataplane"
)

// DataplaneRouter is the RouterFactory of adora's data plane
// (runtime/dataplane): nodes that use the SDK find it through
// ADORA_NODE_CONFIG. When some nodes of the dataflow run on other machines
// and cfg.Transport is set, their outputs arrive (and local outputs they
// read leave) over that transport, keyed by OutputKey and EventKey.
func DataplaneRouter(cfg RouterConfig) (Router, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dcfg := dataplane.Config{
		DataflowID: cfg.DataflowID,
		Dataflow:   cfg.Dataflow,
		Local:      cfg.Local,
		SocketDir:  cfg.SocketDir,
		Logger:     cfg.Logger,
	}
	var br *bridge
	if cfg.Transport != nil && len(cfg.Local) < len(cfg.Dataflow.Nodes) {
		br = newBridge(cfg.Transport, cfg.DataflowID, cfg.Logger.With("dataflow", cfg.DataflowID))
		dcfg.Remote = br
	}
	r, err := dataplane.NewRouter(dcfg)
	if err != nil {
		return nil, err
	}
	if br != nil {
		if err := br.start(r, cfg.Dataflow, cfg.Local); err != nil {
			r.Close()
			return nil, err
		}
	}
	return &dataplaneRouter{Router: r, bridge: br}, nil
}

type dataplaneRouter struct {
	*dataplane.Router
	bridge *bridge // nil on a single machine
}

// Drops counts, per node, input messages dropped by queue policy plus
// outputs published to other machines while no receiver there listened.
func (r *dataplaneRouter) Drops() map[string]uint64 {
	out := map[string]uint64{}
	for id, m := range r.Metrics() {
		out[id] = m.Dropped
	}
	if r.bridge != nil {
		for id, n := range r.bridge.Lost() {
			out[id] += n
		}
	}
	return out
}

// Close stops remote deliveries first, then the router.
func (r *dataplaneRouter) Close() error {
	if r.bridge != nil {
		r.bridge.close()
	}
	return r.Router.Close()
}

// SourceClosed reports whether an output of a node on another machine has
// closed for good (false on a single machine).
func (r *dataplaneRouter) SourceClosed(node, output string) bool {
	return r.bridge != nil && r.bridge.SourceClosed(node, output)
}

// InputTimeouts sums the input_timeout trips of every node.
func (r *dataplaneRouter) InputTimeouts() uint64 {
	var n uint64
	for _, m := range r.Metrics() {
		n += m.InputTimeouts
	}
	return n
}
