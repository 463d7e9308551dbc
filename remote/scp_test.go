package remote

import (
	"reflect"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
)

func TestPlanSCP(t *testing.T) {
	c := &config.Cluster{Machines: []config.Machine{
		{ID: "h1", Labels: map[string]string{"role": "robot"}},
		{ID: "h2", Labels: map[string]string{"gpu": "true", "role": "gpu"}},
		{ID: "h3", Labels: map[string]string{"gpu": "true", "role": "edge"}},
	}}
	df := &config.Dataflow{Nodes: []config.Node{
		{ID: "camera", Path: "./bin/camera", Deploy: config.Deploy{Machine: "h1", Distribute: config.DistributeSCP}},
		{ID: "infer", Path: "infer", Deploy: config.Deploy{Labels: map[string]string{"gpu": "true"}, Distribute: config.DistributeSCP, WorkingDir: "/opt/robot"}},
		{ID: "local", Path: "./x", Deploy: config.Deploy{Machine: "h1", Distribute: config.DistributeLocal}},
		{ID: "abs", Path: "/usr/local/lib/abs-node", Deploy: config.Deploy{Machine: "h3", Distribute: config.DistributeSCP, WorkingDir: "sub"}},
		{ID: "rel", Path: "n", Deploy: config.Deploy{Machine: "h2", Distribute: config.DistributeSCP, WorkingDir: "sub"}},
	}}
	got, err := PlanSCP(c, df, "/home/me/flow", "/srv/flow")
	if err != nil {
		t.Fatal(err)
	}
	want := []SCPCopy{
		{Node: "camera", Machine: "h1", Local: "/home/me/flow/bin/camera", Remote: "/srv/flow/bin/camera"},
		{Node: "infer", Machine: "h2", Local: "/home/me/flow/infer", Remote: "/opt/robot/infer"},
		{Node: "rel", Machine: "h2", Local: "/home/me/flow/n", Remote: "/srv/flow/sub/n"},
		{Node: "abs", Machine: "h3", Local: "/usr/local/lib/abs-node", Remote: "/usr/local/lib/abs-node"},
		{Node: "infer", Machine: "h3", Local: "/home/me/flow/infer", Remote: "/opt/robot/infer"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PlanSCP:\n got %+v\nwant %+v", got, want)
	}
}

func TestPlanSCPErrors(t *testing.T) {
	c := &config.Cluster{Machines: []config.Machine{{ID: "h1"}}}
	df := &config.Dataflow{Nodes: []config.Node{
		{ID: "nowhere", Path: "x", Deploy: config.Deploy{Machine: "h9", Distribute: config.DistributeSCP}},
		{ID: "relbase", Path: "y", Deploy: config.Deploy{Machine: "h1", Distribute: config.DistributeSCP}},
	}}
	_, err := PlanSCP(c, df, "/here", "relative/base")
	if err == nil || !strings.Contains(err.Error(), "node nowhere") || !strings.Contains(err.Error(), "node relbase") {
		t.Fatalf("want errors for both nodes, got %v", err)
	}
}
