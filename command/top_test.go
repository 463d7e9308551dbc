package command

import (
	"strings"
	"testing"

	"github.com/adora-rs/adora/runtime/proto"
)

func TestRenderTopDataPlane(t *testing.T) {
	top := proto.TopReply{
		Nodes: []proto.NodeMetric{{DataflowName: "app", NodeID: "camera", MachineID: "robot", PID: 42, Status: proto.NodeRunning}},
		DataPlane: []proto.DataPlaneStatus{
			{DaemonID: "u-gpu", MachineID: "gpu", PeersUp: 0, PeersExpected: 2, Unreachable: []string{"lidar", "robot"},
				Counters: proto.DataPlaneCounters{Dropped: 12, AuthRefused: 3}},
			{DaemonID: "u-robot", MachineID: "robot", PeersUp: 1, PeersExpected: 1, MessagesInPerSec: 50, MessagesOutPerSec: 120.25,
				BytesInPerSec: 2048, BytesOutPerSec: 3 << 20},
			{DaemonID: "0123456789ab", PeersUp: 0, PeersExpected: 0},
		},
	}
	want := "DATAFLOW  NODE    MACHINE  PID  CPU%  MEMORY  RESTARTS  STATUS   DROPS\n" +
		"app       camera  robot    42   0.0   0 B     0         running  0\n" +
		"\n" +
		"MACHINE   ZENOH PEERS  MSGS IN/S  MSGS OUT/S  IN/S       OUT/S      DROPPED  AUTH REFUSED  UNREACHABLE\n" +
		"gpu       0/2          0.0        0.0         0 B/s      0 B/s      12       3             lidar,robot\n" +
		"robot     1/1          50.0       120.2       2.0 KiB/s  3.0 MiB/s  0        0             -\n" +
		"01234567  0/0          0.0        0.0         0 B/s      0 B/s      0        0             -"
	if got := renderTop(top); got != want {
		t.Fatalf("renderTop:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderTopDataPlaneWithoutNodes(t *testing.T) {
	got := renderTop(proto.TopReply{DataPlane: []proto.DataPlaneStatus{{DaemonID: "u", MachineID: "robot", PeersExpected: 1, Unreachable: []string{"gpu"}}}})
	if !strings.HasPrefix(got, "No nodes running.\n\nMACHINE") || !strings.Contains(got, "robot    0/1") || !strings.HasSuffix(got, "gpu") {
		t.Fatalf("renderTop:\n%s", got)
	}
	// Without a data plane (a coordinator or daemons that predate it) the
	// table is left out.
	if got := renderTop(proto.TopReply{}); got != "No nodes running." {
		t.Fatalf("renderTop without data plane = %q", got)
	}
}
