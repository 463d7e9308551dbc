package command

import (
	"reflect"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/remote"
)

func TestAdhocRunAsWarnings(t *testing.T) {
	c := &config.Cluster{Coordinator: config.Coordinator{Addr: "10.0.0.1"}, SSH: config.SSHDefaults{User: "ubuntu"},
		Machines: []config.Machine{
			{ID: "a", Host: "10.0.0.2"},
			{ID: "b", Host: "10.0.0.3", RunAs: "ubuntu"},
			{ID: "c", Host: "10.0.0.4", RunAs: "robot"},
			{ID: "d", Host: "10.0.0.5", User: "nvidia", RunAs: "root"},
			{ID: "here", Local: true, RunAs: "robot"},
		}}
	got := adhocRunAsWarnings(&remote.Fleet{Cluster: c}, c.Machines)
	want := []string{
		"machine c: run_as robot is for the systemd daemon (adora cluster install, adora apply); the daemon cluster up starts runs as the SSH user ubuntu",
		"machine d: run_as root is for the systemd daemon (adora cluster install, adora apply); the daemon cluster up starts runs as the SSH user nvidia",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}
