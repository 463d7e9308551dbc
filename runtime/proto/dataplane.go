package proto

import "time"

// DataPlaneReport is a daemon's view of its cross-machine (Zenoh) links,
// sent in NodeMetrics every MetricsInterval by a daemon that has a data
// plane. Coordinators that predate it ignore the field; daemons that
// predate it leave it out.
type DataPlaneReport struct {
	// ZID is the daemon's own Zenoh id (hex), so that the coordinator can
	// tell which daemon is at the other end of another daemon's link.
	ZID      string            `json:"zid"`
	Counters DataPlaneCounters `json:"counters"`
	// Links are the links open now, one per remote Zenoh peer.
	Links []DataPlaneLink `json:"links,omitempty"`
}

// DataPlaneCounters are a Zenoh session's cumulative counters since the
// daemon opened it (they start again at zero when the daemon restarts).
type DataPlaneCounters struct {
	MessagesSent     uint64 `json:"messages_sent"`
	MessagesReceived uint64 `json:"messages_received"`
	BytesSent        uint64 `json:"bytes_sent"`
	BytesReceived    uint64 `json:"bytes_received"`
	Dropped          uint64 `json:"dropped"`
	LinksOpened      uint64 `json:"links_opened"`
	LinksClosed      uint64 `json:"links_closed"`
	// AuthRefused counts connections this daemon refused because the
	// dialer had no valid data-plane credentials.
	AuthRefused uint64 `json:"auth_refused"`
}

// DataPlaneLink is one open link to a remote Zenoh peer.
type DataPlaneLink struct {
	ZID       string `json:"zid"`              // the remote's Zenoh id (hex)
	Remote    string `json:"remote,omitempty"` // its address, host:port
	Initiator bool   `json:"initiator,omitempty"`
}

// DataPlaneStatus is the coordinator's summary of one daemon's data-plane
// links: the latest report, the rates since the report before, and the
// expected peers, the other daemons of the active dataflows the daemon
// takes part in (those whose endpoints the coordinator hands it).
type DataPlaneStatus struct {
	DaemonID  string    `json:"daemon_id"`
	MachineID string    `json:"machine_id,omitempty"`
	Time      time.Time `json:"time"` // of the daemon's report
	// PeersUp counts the expected peers with an open link.
	PeersUp       int `json:"peers_up"`
	PeersExpected int `json:"peers_expected"`
	// Unreachable names the expected peers without an open link (machine
	// id, else daemon id), sorted.
	Unreachable []string `json:"unreachable,omitempty"`
	// Links counts every open link, expected peers or not.
	Links    int               `json:"links"`
	Counters DataPlaneCounters `json:"counters"`
	// Per-second rates between the last two reports (zero after the
	// first report or when the counters started again).
	MessagesInPerSec  float64 `json:"messages_in_per_sec"`
	MessagesOutPerSec float64 `json:"messages_out_per_sec"`
	BytesInPerSec     float64 `json:"bytes_in_per_sec"`
	BytesOutPerSec    float64 `json:"bytes_out_per_sec"`
}

// Name is how people see the daemon: its machine id, else its uuid.
func (s DataPlaneStatus) Name() string {
	if s.MachineID != "" {
		return s.MachineID
	}
	return s.DaemonID
}

// Degraded reports whether an expected peer has no link.
func (s DataPlaneStatus) Degraded() bool { return s.PeersUp < s.PeersExpected }
