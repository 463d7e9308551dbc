package config_test

import (
	"fmt"

	"github.com/adora-rs/adora/config"
)

func ExampleParseDataflow() {
	src := []byte(`nodes:
  - id: camera
    path: ./camera-driver
    outputs: [frames]
  - id: inference
    pathh: ./ml-model
    inputs:
      frames: camera/frame
      tick: adora/timer/hz/30
`)
	_, diags := config.ParseDataflow(src, "dataflow.yml")
	for _, d := range diags {
		fmt.Println(d)
	}
	// Output:
	// dataflow.yml:6:5: error: node "inference": unknown field "pathh" (did you mean "path"?)
	// dataflow.yml:5:5: error: node "inference" requires a path (add path: with the executable to run)
	// dataflow.yml:8:15: error: input "frames" of node "inference": node "camera" has no output "frame" (did you mean "frames"?)
}

func ExampleParseDataflow_timer() {
	df, _ := config.ParseDataflow([]byte("nodes:\n  - id: a\n    path: ./a\n    inputs:\n      tick: adora/timer/hz/30\n"), "df.yml")
	in := df.Nodes[0].Inputs[0]
	fmt.Println(in.Source.Node, in.Source.Output, in.Source.Timer, in.QueueSize, in.QueuePolicy)
	// Output: adora timer/hz/30 33.333333ms 10 drop_oldest
}

func ExampleLoadProject() {
	c, dfs, diags := config.LoadProject("../testfixtures/guide/edge-ai/cluster.yml", "../testfixtures/guide/edge-ai/dataflow.yml")
	fmt.Println(len(c.Machines), "machines;", config.DataflowNames(dfs), len(diags), "diagnostics")
	// Output: 2 machines; [dataflow] 0 diagnostics
}
