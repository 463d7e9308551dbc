package command

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/cli"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/runtime/proto"
)

func TestForEachClusterMachinePrintsInOrder(t *testing.T) {
	ui := cli.NewMockUi()
	ms := []config.Machine{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	var running, peak atomic.Int32
	failed := forEachClusterMachine(context.Background(), ui, ms, 2,
		func(m config.Machine) string { return "Doing " + m.ID },
		func(_ context.Context, m config.Machine) clusterResult {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			defer running.Add(-1)
			// Later machines finish first; output must stay in order.
			time.Sleep(time.Duration(3-int(m.ID[0]-'a')) * 5 * time.Millisecond)
			switch m.ID {
			case "b":
				return clusterResult{err: errors.New("connect to b: refused")}
			case "c":
				return clusterResult{note: "(unchanged)"}
			}
			return clusterResult{}
		})
	if strings.Join(failed, ",") != "b" {
		t.Fatalf("failed = %v, want [b]", failed)
	}
	if got, want := ui.OutputWriter.String(), "Doing a... OK\nDoing c... OK (unchanged)\nDoing d... OK\n"; got != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", got, want)
	}
	if got := ui.ErrorWriter.String(); got != "Doing b... FAILED: connect to b: refused\n" {
		t.Fatalf("stderr: %q", got)
	}
	if peak.Load() > 2 {
		t.Fatalf("%d machines at once with parallelism 2", peak.Load())
	}
}

func TestClusterSummaryExitCode(t *testing.T) {
	ui := cli.NewMockUi()
	if code := clusterSummary(ui, 3, nil); code != 0 || ui.OutputWriter.String() != "3/3 succeeded.\n" {
		t.Fatalf("all ok: code %d, %q", code, ui.OutputWriter.String())
	}
	ui = cli.NewMockUi()
	if code := clusterSummary(ui, 3, []string{"h2", "h3"}); code != 1 || ui.OutputWriter.String() != "1/3 succeeded.\n" ||
		!strings.Contains(ui.ErrorWriter.String(), "Failed on 2 machine(s): h2, h3") {
		t.Fatalf("two failed: code %d, out %q, err %q", code, ui.OutputWriter.String(), ui.ErrorWriter.String())
	}
}

func TestClusterCommandsRejectBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "cluster.yml")
	if err := os.WriteFile(bad, []byte("coordinator:\n  addr: 10.0.0.1\nmachines:\n  - id: \"robot;reboot\"\n    host: 10.0.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADORA_HOME", dir)
	for name, cmd := range map[string]cli.Command{
		"install":   &ClusterInstallCommand{Meta: &Meta{Ui: cli.NewMockUi()}},
		"uninstall": &ClusterUninstallCommand{Meta: &Meta{Ui: cli.NewMockUi()}},
		"upgrade":   &ClusterUpgradeCommand{Meta: &Meta{Ui: cli.NewMockUi()}},
		"up":        &ClusterUpCommand{Meta: &Meta{Ui: cli.NewMockUi()}},
	} {
		t.Run(name, func(t *testing.T) {
			ui := reflectUi(cmd)
			if code := cmd.Run(nil); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "adora cluster "+name+" needs one argument: the cluster file") {
				t.Fatalf("no argument: exit %d, %q", code, ui.ErrorWriter.String())
			}
			ui.ErrorWriter.Reset()
			if code := cmd.Run([]string{bad}); code != 1 || !strings.Contains(ui.ErrorWriter.String(), "cluster.yml:4") {
				t.Fatalf("hostile machine id: exit %d, want a positioned diagnostic, got %q", code, ui.ErrorWriter.String())
			}
			ui.ErrorWriter.Reset()
			if code := cmd.Run([]string{filepath.Join(dir, "missing.yml")}); code != 1 || ui.ErrorWriter.String() == "" {
				t.Fatalf("missing file: exit %d", code)
			}
		})
	}
}

func reflectUi(c cli.Command) *cli.MockUi {
	switch c := c.(type) {
	case *ClusterInstallCommand:
		return c.Meta.Ui.(*cli.MockUi)
	case *ClusterUninstallCommand:
		return c.Meta.Ui.(*cli.MockUi)
	case *ClusterUpgradeCommand:
		return c.Meta.Ui.(*cli.MockUi)
	case *ClusterUpCommand:
		return c.Meta.Ui.(*cli.MockUi)
	}
	panic("unknown command")
}

func TestUnameOfGOARCH(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64"} {
		if got := unameOfGOARCH(goarch); got != want {
			t.Errorf("unameOfGOARCH(%s) = %s, want %s", goarch, got, want)
		}
	}
}

func TestDeliverSCPNodesNeedsTheClusterOnlyForSCP(t *testing.T) {
	ui := cli.NewMockUi()
	req := &proto.Start{Dataflow: config.Dataflow{Nodes: []config.Node{{ID: "a", Path: "/bin/true"}}}}
	if err := deliverSCPNodes(context.Background(), ui, "", req); err != nil {
		t.Fatalf("no scp node: %v", err)
	}
	req.Dataflow.Nodes = append(req.Dataflow.Nodes, config.Node{ID: "b", Path: "./b", Deploy: config.Deploy{Distribute: config.DistributeSCP}})
	if err := deliverSCPNodes(context.Background(), ui, "", req); err == nil || !strings.Contains(err.Error(), "--cluster") {
		t.Fatalf("scp node without a cluster file: %v", err)
	}
}

func TestClusterDownUnreachableCoordinator(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	ui := cli.NewMockUi()
	cmd := &ClusterDownCommand{Meta: &Meta{Ui: ui}}
	start := time.Now()
	// Port 1 on loopback: nothing listens there.
	code := cmd.Run([]string{"-coordinator-addr", "127.0.0.1", "-coordinator-port", "1"})
	if code != 1 || !strings.Contains(ui.ErrorWriter.String(), "destroy the cluster at 127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", code, ui.ErrorWriter.String())
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("took %v to give up on a closed port", el)
	}
}

// TestCoordinatorQueriesRejectArguments: list and cluster status share
// their frame; an argument or an unknown flag gets the problem and the
// command's own help, before any connection.
func TestCoordinatorQueriesRejectArguments(t *testing.T) {
	t.Setenv("ADORA_HOME", t.TempDir())
	for name, newCmd := range map[string]func(cli.Ui) cli.Command{
		"list":           func(ui cli.Ui) cli.Command { return &ListCommand{Meta: &Meta{Ui: ui}} },
		"cluster status": func(ui cli.Ui) cli.Command { return &ClusterStatusCommand{Meta: &Meta{Ui: ui}} },
	} {
		for args, problem := range map[string]string{
			"extra":  "unexpected arguments: extra",
			"--nope": "flag provided but not defined: -nope",
		} {
			ui := cli.NewMockUi()
			c := newCmd(ui)
			if code := c.Run([]string{args}); code != 1 || ui.ErrorWriter.String() != problem+"\n\n"+c.Help()+"\n" {
				t.Errorf("%s %s: exit %d, stderr %q", name, args, code, ui.ErrorWriter)
			}
		}
	}
}
