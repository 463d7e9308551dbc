package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// roundTripDataflow checks Parse(Format(df)) == df.
func roundTripDataflow(t *testing.T, df *Dataflow) {
	t.Helper()
	src, err := FormatDataflowYAML(df)
	if err != nil {
		t.Fatal(err)
	}
	back, diags := ParseDataflow(src, "canonical.yml")
	if diags.HasErrors() {
		t.Fatalf("canonical form does not parse:\n%v\n%s", diags, src)
	}
	a, b := *df, *back
	StripPositions(&a)
	StripPositions(&b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("round trip differs:\n%s\nbefore %+v\nafter  %+v", src, a, b)
	}
}

func roundTripCluster(t *testing.T, c *Cluster) {
	t.Helper()
	src, err := FormatClusterYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	back, diags := ParseCluster(src, "canonical.yml")
	if diags.HasErrors() {
		t.Fatalf("canonical form does not parse:\n%v\n%s", diags, src)
	}
	a, b := *c, *back
	StripPositions(&a)
	StripPositions(&b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("round trip differs:\n%s\nbefore %+v\nafter  %+v", src, a, b)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	pinUser(t, "tester")
	var files []string
	for _, glob := range []string{"../testfixtures/guide/*/*", "../testfixtures/hcl/*/*"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	n := 0
	for _, f := range files {
		if !strings.HasSuffix(f, ".yml") && !strings.HasSuffix(f, ".hcl") {
			continue
		}
		n++
		t.Run(f, func(t *testing.T) {
			if strings.Contains(filepath.Base(f), "cluster") {
				c, diags := LoadCluster(f)
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				roundTripCluster(t, c)
				return
			}
			df, diags := LoadDataflow(f)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			roundTripDataflow(t, df)
		})
	}
	if n < 10 {
		t.Fatalf("only %d fixtures found", n)
	}
	roundTripCluster(t, DefaultCluster())
}

func TestFormatDataflowCanonical(t *testing.T) {
	df, diags := ParseDataflow([]byte("nodes:\n  - id: a\n    path: ./a\n    env: {N: 3, B: 'true'}\n    inputs: {t: adora/timer/millis/100}\n    restart_delay: 0.25\n"), "f.yml")
	if len(diags) > 1 {
		t.Fatal(diags)
	}
	src, err := FormatDataflowYAML(df)
	if err != nil {
		t.Fatal(err)
	}
	want := `nodes:
    - id: a
      path: ./a
      env:
        B: "true"
        "N": "3"
      inputs:
        t:
            source: adora/timer/millis/100
            queue_size: 10
            queue_policy: drop_oldest
      restart_policy: never
      restart_delay: 250ms
      _unstable_deploy:
        distribute: local
`
	if string(src) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", src, want)
	}
}
