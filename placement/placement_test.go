package placement

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
)

func node(id, machine string, labels map[string]string) config.Node {
	return config.Node{ID: id, Path: "./" + id, Deploy: config.Deploy{Machine: machine, Labels: labels}}
}

func TestPlace(t *testing.T) {
	robot := Daemon{ID: "robot", MachineID: "robot", Labels: map[string]string{"role": "edge"}}
	gpu := Daemon{ID: "gpu-server", MachineID: "gpu-server", Labels: map[string]string{"gpu": "true"}}
	anon := Daemon{ID: "0190-anon", Labels: map[string]string{"gpu": "true"}}
	tests := []struct {
		name    string
		nodes   []config.Node
		daemons []Daemon
		want    []Decision
		wantErr []string
	}{
		{
			name:    "machine wins over labels",
			nodes:   []config.Node{node("camera", "robot", map[string]string{"gpu": "true"})},
			daemons: []Daemon{gpu, robot},
			want:    []Decision{{Node: "camera", DaemonID: "robot", MachineID: "robot", Rule: ByMachine}},
		},
		{
			name:    "labels superset, refusals in order",
			nodes:   []config.Node{node("inference", "", map[string]string{"gpu": "true"})},
			daemons: []Daemon{robot, gpu},
			want:    []Decision{{Node: "inference", DaemonID: "gpu-server", MachineID: "gpu-server", Rule: ByLabels}},
		},
		{
			name:    "unnamed daemons come first in label search",
			nodes:   []config.Node{node("inference", "", map[string]string{"gpu": "true"})},
			daemons: []Daemon{gpu, robot, anon},
			want:    []Decision{{Node: "inference", DaemonID: "0190-anon", Rule: ByLabels}},
		},
		{
			name:    "label refusal reasons",
			nodes:   []config.Node{node("n", "", map[string]string{"role": "edge", "gpu": "true"})},
			daemons: []Daemon{robot, gpu, {ID: "both", MachineID: "z", Labels: map[string]string{"role": "edge", "gpu": "true", "x": "y"}}},
			want: []Decision{{Node: "n", DaemonID: "both", MachineID: "z", Rule: ByLabels, Refused: []Refusal{
				{DaemonID: "gpu-server", MachineID: "gpu-server", Reason: `no label "role"`},
				{DaemonID: "robot", MachineID: "robot", Reason: `no label "gpu"`},
			}}},
		},
		{
			name:    "unnamed daemon for nodes without deploy",
			nodes:   []config.Node{node("a", "", nil)},
			daemons: []Daemon{robot, {ID: "u2"}, {ID: "u1"}},
			want:    []Decision{{Node: "a", DaemonID: "u1", Rule: Unnamed}},
		},
		{
			name:    "default when every daemon is named",
			nodes:   []config.Node{node("a", "", nil)},
			daemons: []Daemon{robot, gpu},
			want:    []Decision{{Node: "a", DaemonID: "gpu-server", MachineID: "gpu-server", Rule: Default}},
		},
		{
			name:    "unknown machine",
			nodes:   []config.Node{node("camera", "robt", nil)},
			daemons: []Daemon{robot, anon},
			want: []Decision{{Node: "camera", Rule: ByMachine, Refused: []Refusal{
				{DaemonID: "0190-anon", Reason: "unnamed daemon"},
				{DaemonID: "robot", MachineID: "robot", Reason: `machine id is "robot"`},
			}}},
			wantErr: []string{`node "camera": no matching daemon for machine id "robt"`},
		},
		{
			name:    "no labels match, guide wording with sorted keys",
			nodes:   []config.Node{node("x", "", map[string]string{"gpu": "true", "arch": "arm64"})},
			daemons: []Daemon{robot},
			want: []Decision{{Node: "x", Rule: ByLabels, Refused: []Refusal{
				{DaemonID: "robot", MachineID: "robot", Reason: `no label "arch"; no label "gpu"`},
			}}},
			wantErr: []string{`node "x": no daemon matches labels {"arch": "arm64", "gpu": "true"}`},
		},
		{
			name:    "label value differs",
			nodes:   []config.Node{node("x", "", map[string]string{"gpu": "true"})},
			daemons: []Daemon{{ID: "a100", MachineID: "a100", Labels: map[string]string{"gpu": "a100"}}},
			want: []Decision{{Node: "x", Rule: ByLabels, Refused: []Refusal{
				{DaemonID: "a100", MachineID: "a100", Reason: `label "gpu" is "a100", not "true"`},
			}}},
			wantErr: []string{`no daemon matches labels {"gpu": "true"}`},
		},
		{
			name:    "no daemons at all",
			nodes:   []config.Node{node("a", "", nil)},
			want:    []Decision{{Node: "a", Rule: Unnamed}},
			wantErr: []string{`node "a": no daemon to run it on`},
		},
		{
			name:    "all errors joined, decisions sorted by node",
			nodes:   []config.Node{node("z", "nope", nil), node("b", "", nil), node("a", "", map[string]string{"k": "v"})},
			daemons: []Daemon{robot},
			want: []Decision{
				{Node: "a", Rule: ByLabels, Refused: []Refusal{{DaemonID: "robot", MachineID: "robot", Reason: `no label "k"`}}},
				{Node: "b", DaemonID: "robot", MachineID: "robot", Rule: Default},
				{Node: "z", Rule: ByMachine, Refused: []Refusal{{DaemonID: "robot", MachineID: "robot", Reason: `machine id is "robot"`}}},
			},
			wantErr: []string{`node "a": no daemon matches labels {"k": "v"}`, `node "z": no matching daemon for machine id "nope"`},
		},
		{
			name:    "duplicate machine ids: first by daemon id",
			nodes:   []config.Node{node("a", "m", nil)},
			daemons: []Daemon{{ID: "m-2", MachineID: "m"}, {ID: "m-1", MachineID: "m"}},
			want:    []Decision{{Node: "a", DaemonID: "m-1", MachineID: "m", Rule: ByMachine}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Place(tt.nodes, tt.daemons)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decisions:\n got %+v\nwant %+v", got, tt.want)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got nil", tt.wantErr)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantErr) {
				t.Fatalf("error has %d lines, want %d: %v", len(lines), len(tt.wantErr), err)
			}
			for i, w := range tt.wantErr {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestPlaceDeterministicAndPure(t *testing.T) {
	daemons := []Daemon{{ID: "c", MachineID: "c"}, {ID: "a", MachineID: "a", Labels: map[string]string{"k": "v"}}, {ID: "u"}}
	nodes := []config.Node{node("n2", "", map[string]string{"k": "v"}), node("n1", "c", nil), node("n3", "", nil)}
	before := fmt.Sprint(daemons, nodes)
	first, err := Place(nodes, daemons)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		again, _ := Place(nodes, daemons)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("run %d differs: %v vs %v", i, first, again)
		}
	}
	if after := fmt.Sprint(daemons, nodes); after != before {
		t.Fatalf("Place modified its arguments:\n%s\n%s", before, after)
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		d    Decision
		want string
	}{
		{Decision{Node: "a", DaemonID: "m", MachineID: "m", Rule: ByMachine}, "a -> m: requested machine"},
		{Decision{Node: "a", DaemonID: "d1", MachineID: "m", Rule: ByLabels}, "a -> d1 (machine m): first daemon with the requested labels"},
		{Decision{Node: "a", DaemonID: "u", Rule: Unnamed}, "a -> u: first unnamed daemon"},
		{Decision{Node: "a", DaemonID: "m", MachineID: "m", Rule: Default}, "a -> m: no placement requested and no unnamed daemon, so the first daemon"},
		{Decision{Node: "a", Rule: ByLabels}, "a: not placed (labels rule)"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestDaemonsFromCluster(t *testing.T) {
	c := &config.Cluster{Machines: []config.Machine{
		{ID: "b", Labels: map[string]string{"k": "v"}},
		{ID: "a"},
	}}
	got := DaemonsFromCluster(c)
	want := []Daemon{{ID: "b", MachineID: "b", Labels: map[string]string{"k": "v"}}, {ID: "a", MachineID: "a"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	got[0].Labels["k"] = "changed"
	if c.Machines[0].Labels["k"] != "v" {
		t.Fatal("DaemonsFromCluster shares the label map with the cluster")
	}
}

// TestGuidePlacement checks the guide's use cases: placements must match
// what the guide says.
func TestGuidePlacement(t *testing.T) {
	tests := []struct {
		dir  string
		want map[string][]string // node -> acceptable machines
	}{
		{"edge-ai", map[string][]string{"camera": {"robot"}, "inference": {"gpu-server"}, "actuator": {"robot"}}},
		{"fleet", map[string][]string{"lidar-driver": {"bot-01", "bot-03"}, "camera-driver": {"bot-02", "bot-03"}}},
		{"full-schema", map[string][]string{"my-node": {"edge-01"}}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := "../testfixtures/guide/" + tt.dir
			c, dfs, diags := config.LoadProject(dir+"/cluster.yml", dir+"/dataflow.yml")
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%v", diags)
			}
			decisions, err := Place(dfs["dataflow"].Nodes, DaemonsFromCluster(c))
			if err != nil {
				t.Fatal(err)
			}
			if len(decisions) != len(tt.want) {
				t.Fatalf("got %d decisions, want %d", len(decisions), len(tt.want))
			}
			for _, d := range decisions {
				ok := false
				for _, m := range tt.want[d.Node] {
					ok = ok || d.MachineID == m
				}
				if !ok {
					t.Errorf("node %s placed on %q, guide says one of %v", d.Node, d.MachineID, tt.want[d.Node])
				}
			}
		})
	}
}

func benchInput(nNodes, nDaemons int) ([]config.Node, []Daemon) {
	daemons := make([]Daemon, nDaemons)
	for i := range daemons {
		daemons[i] = Daemon{ID: fmt.Sprintf("d-%04d", i), MachineID: fmt.Sprintf("m-%04d", i),
			Labels: map[string]string{"zone": fmt.Sprint(i % 10), "gpu": fmt.Sprint(i%7 == 0)}}
	}
	nodes := make([]config.Node, nNodes)
	for i := range nodes {
		switch i % 3 {
		case 0:
			nodes[i] = node(fmt.Sprintf("n-%05d", i), fmt.Sprintf("m-%04d", i%nDaemons), nil)
		case 1:
			nodes[i] = node(fmt.Sprintf("n-%05d", i), "", map[string]string{"zone": fmt.Sprint(i % 10), "gpu": "true"})
		default:
			nodes[i] = node(fmt.Sprintf("n-%05d", i), "", nil)
		}
	}
	return nodes, daemons
}

func BenchmarkPlace10kNodes1kDaemons(b *testing.B) {
	nodes, daemons := benchInput(10000, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Place(nodes, daemons); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlaceLarge keeps the benchmark's shape honest in plain test runs: a
// fleet-sized input places every node.
func TestPlaceLarge(t *testing.T) {
	nodes, daemons := benchInput(10000, 1000)
	got, err := Place(nodes, daemons)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		if !d.Placed() {
			t.Fatalf("%s not placed", d.Node)
		}
	}
}

func TestRefusalsAreCapped(t *testing.T) {
	daemons := make([]Daemon, 100)
	for i := range daemons {
		daemons[i] = Daemon{ID: fmt.Sprintf("d-%03d", i), MachineID: fmt.Sprintf("m-%03d", i), Labels: map[string]string{"slot": fmt.Sprint(i)}}
	}
	got, err := Place([]config.Node{
		node("late", "", map[string]string{"slot": "90"}),
		node("never", "", map[string]string{"slot": "x"}),
		node("lost", "nowhere", nil),
	}, daemons)
	if err == nil {
		t.Fatal("want errors for never and lost")
	}
	late := got[0]
	if late.Node != "late" || late.MachineID != "m-090" || len(late.Refused) != MaxRefusals+1 {
		t.Fatalf("late: %+v (%d refusals)", late, len(late.Refused))
	}
	if r := late.Refused[0]; r.DaemonID != "d-000" || r.Reason != `label "slot" is "0", not "90"` {
		t.Fatalf("first refusal = %+v", r)
	}
	if r := late.Refused[MaxRefusals]; r.DaemonID != "" || r.Reason != "58 more daemons refused for the same kinds of reasons" {
		t.Fatalf("summary refusal = %+v", r)
	}
	for _, d := range got[1:] {
		if d.Placed() || len(d.Refused) != MaxRefusals+1 || !strings.HasPrefix(d.Refused[MaxRefusals].Reason, "68 more") {
			t.Fatalf("%s: %+v", d.Node, d.Refused[len(d.Refused)-1])
		}
	}
}

// BenchmarkPlaceUniqueLabels is the worst case for label search: every
// node asks for a different label set, most of which no daemon has.
func BenchmarkPlaceUniqueLabels(b *testing.B) {
	daemons := make([]Daemon, 1000)
	for i := range daemons {
		daemons[i] = Daemon{ID: fmt.Sprintf("d-%04d", i), MachineID: fmt.Sprintf("m-%04d", i),
			Labels: map[string]string{"slot": fmt.Sprint(i), "fleet": "warehouse"}}
	}
	nodes := make([]config.Node, 10000)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("n-%05d", i), "", map[string]string{"fleet": "warehouse", "slot": fmt.Sprint(i % 2000)})
	}
	b.ReportAllocs()
	for b.Loop() {
		Place(nodes, daemons)
	}
}
