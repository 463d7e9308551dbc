package placement_test

import (
	"fmt"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/placement"
)

// The deployment guide's edge AI pipeline: the camera and actuator are
// pinned to the robot, inference goes wherever gpu=true.
func ExamplePlace() {
	daemons := []placement.Daemon{
		{ID: "robot", MachineID: "robot", Labels: map[string]string{"role": "edge"}},
		{ID: "gpu-server", MachineID: "gpu-server", Labels: map[string]string{"gpu": "true"}},
	}
	nodes := []config.Node{
		{ID: "camera", Deploy: config.Deploy{Machine: "robot"}},
		{ID: "inference", Deploy: config.Deploy{Labels: map[string]string{"gpu": "true"}}},
		{ID: "actuator", Deploy: config.Deploy{Machine: "robot"}},
		{ID: "logger"},
		{ID: "planner", Deploy: config.Deploy{Labels: map[string]string{"gpu": "a100"}}},
	}
	decisions, err := placement.Place(nodes, daemons)
	for _, d := range decisions {
		fmt.Println(d)
		for _, r := range d.Refused {
			fmt.Printf("  refused %s: %s\n", r.DaemonID, r.Reason)
		}
	}
	fmt.Println(err)
	// Output:
	// actuator -> robot: requested machine
	// camera -> robot: requested machine
	// inference -> gpu-server: first daemon with the requested labels
	// logger -> gpu-server: no placement requested and no unnamed daemon, so the first daemon
	// planner: not placed (labels rule)
	//   refused gpu-server: label "gpu" is "true", not "a100"
	//   refused robot: no label "gpu"
	// node "planner": no daemon matches labels {"gpu": "a100"}
}
