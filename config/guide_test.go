package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const guideDir = "../testfixtures/guide/"

// TestGuideExamplesValidate loads every example of the deployment guide
// (testfixtures/guide) and expects no diagnostic at all.
func TestGuideExamplesValidate(t *testing.T) {
	dirs, err := os.ReadDir(guideDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if !dir.IsDir() {
			continue
		}
		n++
		t.Run(dir.Name(), func(t *testing.T) {
			d := filepath.Join(guideDir, dir.Name())
			var extra []string
			if _, err := os.Stat(filepath.Join(d, "dataflow.yml")); err == nil {
				extra = append(extra, filepath.Join(d, "dataflow.yml"))
			}
			c, dfs, diags := LoadProject(filepath.Join(d, "cluster.yml"), extra...)
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%v", diags)
			}
			if len(c.Machines) == 0 || len(dfs) != len(extra) {
				t.Fatalf("got %d machines, %d dataflows", len(c.Machines), len(dfs))
			}
		})
	}
	if n != 5 {
		t.Fatalf("found %d guide examples, want 5 (quickstart, gpu-cluster, edge-ai, fleet, full-schema)", n)
	}
}

func TestGuideGPUClusterValues(t *testing.T) {
	pinUser(t, "me")
	c, diags := LoadCluster(guideDir + "gpu-cluster/cluster.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	StripPositions(c)
	want := &Cluster{
		Coordinator: Coordinator{Addr: "192.168.1.1", Port: 6013},
		SSH:         SSHDefaults{User: "me", Port: 22},
		Machines: []Machine{
			{ID: "coordinator-host", Host: "192.168.1.1", User: "me", Port: 22, Labels: map[string]string{"role": "control"}},
			{ID: "gpu-a100", Host: "192.168.1.10", User: "ml", Port: 22, Labels: map[string]string{"gpu": "a100", "arch": "x86_64"}},
			{ID: "jetson-01", Host: "192.168.1.20", User: "nvidia", Port: 22, Labels: map[string]string{"gpu": "jetson", "arch": "arm64"}},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestGuideEdgeAIDataflowValues(t *testing.T) {
	df, diags := LoadDataflow(guideDir + "edge-ai/dataflow.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	StripPositions(df)
	want := &Dataflow{Nodes: []Node{
		{ID: "camera", Path: "./camera-driver", Outputs: []string{"frames"}, Restart: RestartPolicy{Mode: RestartNever},
			Deploy: Deploy{Machine: "robot", Distribute: DistributeLocal}},
		{ID: "inference", Path: "./ml-model", Outputs: []string{"predictions"}, Restart: RestartPolicy{Mode: RestartNever},
			Inputs: []Input{{ID: "frames", Source: Source{Node: "camera", Output: "frames"}, QueueSize: 10, QueuePolicy: DropOldest}},
			Deploy: Deploy{Labels: map[string]string{"gpu": "true"}, Distribute: DistributeLocal}},
		{ID: "actuator", Path: "./actuator-driver", Restart: RestartPolicy{Mode: RestartNever},
			Inputs: []Input{{ID: "commands", Source: Source{Node: "inference", Output: "predictions"}, QueueSize: 10, QueuePolicy: DropOldest}},
			Deploy: Deploy{Machine: "robot", Distribute: DistributeLocal}},
	}}
	if !reflect.DeepEqual(df, want) {
		t.Fatalf("got  %+v\nwant %+v", df, want)
	}
}

func TestGuideFullSchemaValues(t *testing.T) {
	pinUser(t, "me")
	c, dfs, diags := LoadProject(guideDir+"full-schema/cluster.yml", guideDir+"full-schema/dataflow.yml")
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if e2 := c.Machine("edge-02"); e2 == nil || e2.User != "me" || e2.Labels["arch"] != "arm64" {
		t.Fatalf("edge-02 = %+v", e2)
	}
	dep := dfs["dataflow"].Node("my-node").Deploy
	want := Deploy{Machine: "edge-01", Labels: map[string]string{"gpu": "true", "arch": "arm64"}, Distribute: DistributeLocal, WorkingDir: "/opt/my-app"}
	dep.Pos = Pos{}
	if !reflect.DeepEqual(dep, want) {
		t.Fatalf("deploy = %+v", dep)
	}
}
