package render_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/plan"
	"github.com/adora-rs/adora/plan/plantest"
	"github.com/adora-rs/adora/plan/render"
	"github.com/adora-rs/adora/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (go test -update rewrites it)\n--- got\n%s", path, got)
	}
}

func TestGolden(t *testing.T) {
	for _, s := range plantest.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			p, err := plan.Compute(s.Prior, s.Observed, s.Desired)
			if err != nil {
				t.Fatal(err)
			}
			var human bytes.Buffer
			if err := render.Human(&human, p, render.Options{}); err != nil {
				t.Fatal(err)
			}
			golden(t, s.Name+".human.golden", human.Bytes())
			js, err := render.JSON(p)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, s.Name+".json.golden", js)
			golden(t, s.Name+".md.golden", []byte(render.Markdown(p, 0)))
		})
	}
}

func TestSummaryLine(t *testing.T) {
	got := render.SummaryLine(plan.Summary{Install: 2, Upgrade: 1, Start: 1, Restart: 1})
	want := "Plan: 2 to install, 1 to upgrade, 0 to uninstall; 1 dataflow to start, 1 to restart, 0 to stop."
	if got != want {
		t.Fatalf("summary line\n got %q\nwant %q", got, want)
	}
}

func TestColorOnlyWhenAsked(t *testing.T) {
	s := plantest.Scenarios()[0]
	p, _ := plan.Compute(s.Prior, s.Observed, s.Desired)
	var plain, colored bytes.Buffer
	render.Human(&plain, p, render.Options{})
	render.Human(&colored, p, render.Options{Color: true})
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("plain rendering contains ANSI escapes")
	}
	if !strings.Contains(colored.String(), "\x1b[32m+") {
		t.Error("coloured rendering has no green +")
	}
}

func TestNoChangesRendering(t *testing.T) {
	st := plantest.Deployed()
	p, err := plan.Compute(st, plantest.Healthy(st), plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	render.Human(&out, p, render.Options{})
	if out.String() != "No changes. The fleet matches the configuration.\n" {
		t.Fatalf("no-change rendering = %q", out.String())
	}
}

func TestJSONHasFormatVersion(t *testing.T) {
	s := plantest.Scenarios()[2]
	p, _ := plan.Compute(s.Prior, s.Observed, s.Desired)
	data, err := render.JSON(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["format_version"] != render.JSONFormatVersion || doc["applyable"] != true {
		t.Fatalf("format_version = %v applyable = %v", doc["format_version"], doc["applyable"])
	}
	if summary := doc["summary"].(map[string]any); summary["upgrade"] != 3.0 {
		t.Fatalf("summary = %v", summary)
	}
}

// bigPlan is a first deployment of n machines and one dataflow of 10n
// nodes.
func bigPlan(t testing.TB, n int) *plan.Plan {
	c := &config.Cluster{Coordinator: config.Coordinator{Addr: "10.0.0.1", Port: 6013}}
	df := &config.Dataflow{}
	for i := range n {
		c.Machines = append(c.Machines, config.Machine{ID: fmt.Sprintf("bot-%04d", i), Host: fmt.Sprintf("10.1.%d.%d", i/250, i%250)})
	}
	for i := range 10 * n {
		df.Nodes = append(df.Nodes, config.Node{ID: fmt.Sprintf("node-%05d", i), Path: "./n",
			Deploy: config.Deploy{Machine: c.Machines[i%n].ID}})
	}
	p, err := plan.Compute(nil, nil, plantest.Desired(c, map[string]*config.Dataflow{"big": df}, plantest.Binary010))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMarkdownFitsAComment(t *testing.T) {
	p := bigPlan(t, 300)
	for _, limit := range []int{0, 20000, 3000} {
		md := render.Markdown(p, limit)
		max := limit
		if max == 0 {
			max = render.GitHubCommentLimit
		}
		if len(md) > max {
			t.Fatalf("limit %d: markdown is %d bytes", limit, len(md))
		}
		if !strings.HasPrefix(md, render.MarkdownMarker+"\n### adora plan\n\n**Plan: 300 to install") {
			t.Fatalf("limit %d: summary is not first: %.80q", limit, md)
		}
		if !strings.Contains(md, "**Truncated:**") {
			t.Fatalf("limit %d: truncation is not said", limit)
		}
		if strings.Count(md, "```")%2 != 0 || strings.Count(md, "<details>") != strings.Count(md, "</details>") {
			t.Fatalf("limit %d: unbalanced code block or details", limit)
		}
	}
}

func TestTargetedPlanSaysSo(t *testing.T) {
	s := plantest.Scenarios()[0]
	s.Desired.Targets = []string{"machine.bot-01"}
	p, err := plan.Compute(s.Prior, s.Observed, s.Desired)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	render.Human(&out, p, render.Options{})
	if !strings.HasPrefix(out.String(), "Note: this plan covers only machine.bot-01 (-target)") {
		t.Fatalf("targeted plan does not start with the note:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Plan: 1 to install") {
		t.Fatalf("targeted plan counts other changes:\n%s", out.String())
	}
}

func TestUnreachableMachineWarningIsShown(t *testing.T) {
	s := plantest.Scenarios()[2] // binary-upgrade
	s.Observed.Machines["gpu-server"] = state.MachineObservation{ID: "gpu-server", Error: "dial tcp 10.0.0.4:22: i/o timeout"}
	p, err := plan.Compute(s.Prior, s.Observed, s.Desired)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	render.Human(&out, p, render.Options{})
	if !strings.Contains(out.String(), "warning: machine was unreachable at refresh: dial tcp 10.0.0.4:22: i/o timeout") {
		t.Fatalf("no unreachable warning:\n%s", out.String())
	}
}

func TestMarkdownNoChangesWithDrift(t *testing.T) {
	st := plantest.Deployed()
	obs := plantest.Healthy(st)
	m := obs.Machines["bot-01"]
	m.UnitEnabled = false // drift the plan repairs with a reconfigure
	obs.Machines["bot-01"] = m
	delete(obs.Machines, "bot-02")
	o := obs.Machines["gpu-server"]
	o.Reachable, o.Error = false, "timeout"
	obs.Machines["gpu-server"] = o
	desired := plantest.Desired(plantest.Cluster(), map[string]*config.Dataflow{"my-app": plantest.App()}, plantest.Binary010)
	p, err := plan.Compute(st, obs, desired)
	if err != nil {
		t.Fatal(err)
	}
	p = plan.Filter(p, plan.OnlyActions()) // nothing to change, drift kept
	md := render.Markdown(p, 0)
	for _, want := range []string{"**No changes.** The fleet matches the configuration. Drift: 2.", "<summary>Drift (2)</summary>", "| `machine.gpu-server` | reachable | true | false |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Full plan") {
		t.Errorf("a plan without changes has a full-plan section:\n%s", md)
	}
}
