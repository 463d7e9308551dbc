package zenoh

import (
	"testing"

	"github.com/adora-rs/adora/transport/zenoh/keyexpr"
)

func TestOutputKey(t *testing.T) {
	for _, tc := range []struct {
		net, df, node, out string
		want               string
	}{
		{"default", "df1", "camera", "image", "adora/default/df1/output/camera/image"},
		{"default", "3f2a-uuid", "planner", "path/left", "adora/default/3f2a-uuid/output/planner/path/left"},
		{"lab", "df", "n.1", "o_2-x", "adora/lab/df/output/n.1/o_2-x"},
	} {
		k, err := OutputKey(tc.net, tc.df, tc.node, tc.out)
		if err != nil || k != tc.want {
			t.Fatalf("OutputKey = %q, %v; want %q", k, err, tc.want)
		}
		n, d, node, out, ok := ParseOutputKey(k)
		if !ok || n != tc.net || d != tc.df || node != tc.node || out != tc.out {
			t.Fatalf("ParseOutputKey(%q) = %q %q %q %q %v", k, n, d, node, out, ok)
		}
		if !keyexpr.Intersects(DataflowOutputs(tc.net, tc.df), k) {
			t.Fatalf("%s does not match %s", DataflowOutputs(tc.net, tc.df), k)
		}
		if keyexpr.Intersects(DataflowOutputs(tc.net, "other"), k) {
			t.Fatalf("another dataflow's expression matches %s", k)
		}
	}
	for _, bad := range [][4]string{
		{"", "df", "n", "o"}, {"net", "d/f", "n", "o"}, {"net", "df", "n*", "o"},
		{"net", "df", "@n", "o"}, {"net", "df", "n", ""}, {"net", "df", "n", "a//b"},
		{"net", "df", "n", "o/**"}, {"net", "df", "n", "o/@ack"},
	} {
		if k, err := OutputKey(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("OutputKey(%q) = %q, want an error", bad, k)
		}
	}
	for _, k := range []string{"adora/n/d/input/x/y", "dora/n/d/output/x/y", "adora/n/d/output/x", "adora//d/output/x/y"} {
		if _, _, _, _, ok := ParseOutputKey(k); ok {
			t.Errorf("ParseOutputKey(%q) ok", k)
		}
	}
}
