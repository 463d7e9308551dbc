package config

import (
	"fmt"
	"strings"
	"testing"
)

// bigDataflow is a chain of n nodes, each reading the previous one and a
// timer, half of them placed by labels.
func bigDataflow(n int) []byte {
	var b strings.Builder
	b.WriteString("nodes:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - id: node-%d\n    path: ./bin/node\n    outputs: [out]\n    inputs:\n      tick: adora/timer/millis/100\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "      prev: node-%d/out\n", i-1)
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, "    _unstable_deploy:\n      labels: {zone: z%d}\n", i%10)
		}
	}
	return []byte(b.String())
}

func BenchmarkParseDataflow1000Nodes(b *testing.B) {
	src := bigDataflow(1000)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, diags := ParseDataflow(src, "big.yml"); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

func BenchmarkParseClusterHCL1000Machines(b *testing.B) {
	src := []byte(`coordinator { addr = "10.0.0.1" }
machine "m" {
  count  = 1000
  id     = format("m-%04d", count.index)
  host   = "10.1.${floor(count.index / 250)}.${count.index % 250 + 1}"
  labels = { zone = "z${count.index % 10}" }
}
`)
	for b.Loop() {
		if c, diags := ParseCluster(src, "big.hcl"); diags.HasErrors() || len(c.Machines) != 1000 {
			b.Fatal(diags)
		}
	}
}

// TestBigDataflow keeps the benchmark input valid in plain test runs.
func TestBigDataflow(t *testing.T) {
	df, diags := ParseDataflow(bigDataflow(200), "big.yml")
	if len(diags) > 0 || len(df.Nodes) != 200 || len(df.Node("node-199").Inputs) != 2 {
		t.Fatalf("%v", diags)
	}
}
