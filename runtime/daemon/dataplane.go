package daemon

import (
	"github.com/adora-rs/adora/runtime/dataplane"
)

// DataplaneRouter is the RouterFactory of adora's data plane
// (runtime/dataplane): nodes that use the SDK find it through
// ADORA_NODE_CONFIG. Outputs are routed between the nodes of this machine;
// cross-machine delivery needs a dataplane.Remote, which this factory does
// not set up yet.
func DataplaneRouter(cfg RouterConfig) (Router, error) {
	r, err := dataplane.NewRouter(dataplane.Config{
		DataflowID: cfg.DataflowID,
		Dataflow:   cfg.Dataflow,
		Local:      cfg.Local,
		SocketDir:  cfg.SocketDir,
		Logger:     cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return dataplaneRouter{r}, nil
}

type dataplaneRouter struct{ *dataplane.Router }

func (r dataplaneRouter) Drops() map[string]uint64 {
	out := map[string]uint64{}
	for id, m := range r.Metrics() {
		out[id] = m.Dropped
	}
	return out
}
