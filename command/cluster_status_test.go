package command

import (
	"testing"
	"time"

	"github.com/adora-rs/adora/runtime/proto"
)

func TestRenderClusterStatusDataPlane(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	beat := now.Add(-time.Second)
	got := renderClusterStatus(proto.DaemonsReply{Now: now, ActiveDataflows: 1, Daemons: []proto.DaemonInfo{
		{ID: "u1", MachineID: "gpu-server", Version: "1.0", Connected: true, LastHeartbeat: beat, NodesRunning: 1, Hostname: "g",
			DataPlane: &proto.DataPlaneStatus{PeersUp: 2, PeersExpected: 2}},
		{ID: "u2", MachineID: "robot", Version: "1.0", Connected: true, LastHeartbeat: beat, NodesRunning: 2, Hostname: "r",
			DataPlane: &proto.DataPlaneStatus{PeersUp: 1, PeersExpected: 2, Unreachable: []string{"lidar"}, Counters: proto.DataPlaneCounters{AuthRefused: 4}}},
		{ID: "u3", MachineID: "spare", Version: "1.0", Connected: true, LastHeartbeat: beat, Hostname: "s",
			DataPlane: &proto.DataPlaneStatus{}},
		{ID: "u4", MachineID: "old", Version: "0.9", Connected: true, LastHeartbeat: beat, Hostname: "o"},
	}})
	want := "DAEMON ID   LAST HEARTBEAT  MACHINE     VERSION  LABELS  NODES  HOST  ZENOH\n" +
		"gpu-server  1s ago          gpu-server  1.0      -       1      g     2/2 peers\n" +
		"robot       1s ago          robot       1.0      -       2      r     1/2 peers (lidar unreachable), 4 auth refused\n" +
		"spare       1s ago          spare       1.0      -       0      s     no peers expected\n" +
		"old         1s ago          old         0.9      -       0      o     -\n" +
		"\nActive dataflows: 1"
	if got != want {
		t.Fatalf("render:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderPeers(t *testing.T) {
	tests := []struct {
		in   *proto.DataPlaneStatus
		want string
	}{
		{nil, "-"},
		{&proto.DataPlaneStatus{PeersUp: 2, PeersExpected: 2}, "2/2 peers"},
		{&proto.DataPlaneStatus{PeersUp: 1, PeersExpected: 2, Unreachable: []string{"gpu-server"}}, "1/2 peers (gpu-server unreachable)"},
		{&proto.DataPlaneStatus{PeersExpected: 2, Unreachable: []string{"a", "b"}}, "0/2 peers (a, b unreachable)"},
		{&proto.DataPlaneStatus{Counters: proto.DataPlaneCounters{AuthRefused: 1}}, "no peers expected, 1 auth refused"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := renderPeers(tt.in); got != tt.want {
				t.Fatalf("renderPeers = %q, want %q", got, tt.want)
			}
		})
	}
}
