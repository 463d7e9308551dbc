package daemon

import (
	"encoding/hex"
	"sort"

	"github.com/adora-rs/adora/runtime/proto"
	"github.com/adora-rs/adora/transport/zenoh"
)

// linkReporter is a transport that can describe its cross-machine links
// (a zenoh.Session). The daemon reports them with its metrics so that
// `adora top` and `adora cluster status` can show the data plane.
type linkReporter interface {
	ZID() []byte
	Stats() zenoh.Stats
	Peers() []zenoh.PeerInfo
}

var _ linkReporter = (*zenoh.Session)(nil)

// dataPlane is the report of the daemon's Zenoh session, or nil when its
// transport cannot describe its links.
func (d *Daemon) dataPlane() *proto.DataPlaneReport {
	lr, ok := d.cfg.Transport.(linkReporter)
	if !ok {
		return nil
	}
	return dataPlaneReport(lr)
}

// dataPlaneReport describes lr's counters and open links, the links sorted
// by the remote's id.
func dataPlaneReport(lr linkReporter) *proto.DataPlaneReport {
	st := lr.Stats()
	r := &proto.DataPlaneReport{
		ZID: hex.EncodeToString(lr.ZID()),
		Counters: proto.DataPlaneCounters{
			MessagesSent: st.MessagesSent, MessagesReceived: st.MessagesReceived,
			BytesSent: st.BytesSent, BytesReceived: st.BytesReceived, Dropped: st.Dropped,
			LinksOpened: st.LinksOpened, LinksClosed: st.LinksClosed, AuthRefused: st.AuthRefused,
		},
	}
	for _, p := range lr.Peers() {
		r.Links = append(r.Links, proto.DataPlaneLink{ZID: hex.EncodeToString(p.ZID), Remote: p.Remote, Initiator: p.Initiator})
	}
	sort.Slice(r.Links, func(i, j int) bool { return r.Links[i].ZID < r.Links[j].ZID })
	return r
}
