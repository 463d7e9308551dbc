package command

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/adora-rs/adora/remote"
	"github.com/adora-rs/adora/runtime/client"
	"github.com/adora-rs/adora/runtime/proto"
)

// ClusterStatusCommand shows the connected daemons.
type ClusterStatusCommand struct{ Meta *Meta }

func (c *ClusterStatusCommand) Synopsis() string {
	return "Show connected daemons and the active dataflow count"
}

func (c *ClusterStatusCommand) Help() string {
	return `Usage: adora cluster status [options]

  Shows every daemon connected to the coordinator (id, last heartbeat,
  machine, labels, version, running nodes) and the number of active
  dataflows. Does not read cluster.yml.

  When daemons report a cross-machine (Zenoh) data plane, a ZENOH column
  says, per daemon, how many of the peers it should link to (the other
  daemons of its running dataflows) it has a link to, which are
  unreachable, and how many connections it refused for lack of valid
  data-plane credentials: "2/2 peers", "1/2 peers (gpu unreachable)".

Options:

  --all     Also list daemons registered before but not connected now
  --json    Print JSON
` + coordFlagsHelp
}

func (c *ClusterStatusCommand) Run(args []string) int {
	var cf coordFlags
	fs := coordFlagSet("cluster status")
	cf.register(fs)
	asJSON := fs.Bool("json", false, "")
	all := fs.Bool("all", false, "")
	return queryCoordinator(c.Meta.Ui, fs, &cf, args, c.Help, func(ctx context.Context, cl *client.Client) int {
		daemons := cl.Daemons
		if *all {
			daemons = cl.AllDaemons
		}
		r, err := daemons(ctx)
		if err != nil {
			c.Meta.Ui.Error("cluster status: " + err.Error())
			return 1
		}
		if *asJSON {
			b, _ := json.MarshalIndent(r, "", "  ")
			c.Meta.Ui.Output(string(b))
			return 0
		}
		c.Meta.Ui.Output(renderClusterStatus(r))
		return 0
	})
}

// renderClusterStatus renders the guide's table plus machine, labels,
// version and nodes.
func renderClusterStatus(r proto.DaemonsReply) string {
	var b strings.Builder
	connected := 0
	for _, d := range r.Daemons {
		if d.Connected {
			connected++
		}
	}
	if connected == 0 {
		b.WriteString("No daemons connected.\n")
	}
	if len(r.Daemons) > 0 {
		zenoh := false
		for _, d := range r.Daemons {
			zenoh = zenoh || d.DataPlane != nil
		}
		w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		header := "DAEMON ID\tLAST HEARTBEAT\tMACHINE\tVERSION\tLABELS\tNODES\tHOST"
		if zenoh {
			header += "\tZENOH"
		}
		fmt.Fprintln(w, header)
		for _, d := range r.Daemons {
			machine := d.MachineID
			if machine == "" {
				machine = "-"
			}
			host := d.Hostname
			if host == "" {
				host = d.RemoteAddr
			}
			if host == "" {
				host = "-"
			}
			beat := ago(r.Now, d.LastHeartbeat)
			if !d.Connected {
				beat = "disconnected (" + beat + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s", d.Name(), beat, machine, d.Version, renderLabels(d.Labels), d.NodesRunning, host)
			if zenoh {
				fmt.Fprintf(w, "\t%s", renderPeers(d.DataPlane))
			}
			fmt.Fprintln(w)
		}
		w.Flush()
	}
	fmt.Fprintf(&b, "\nActive dataflows: %d", r.ActiveDataflows)
	return b.String()
}

// renderPeers renders a daemon's data-plane links for the ZENOH column:
// "2/2 peers", "1/2 peers (gpu unreachable)", with ", N auth refused"
// when it refused connections; "-" without a data plane.
func renderPeers(d *proto.DataPlaneStatus) string {
	if d == nil {
		return "-"
	}
	s := "no peers expected"
	if d.PeersExpected > 0 {
		s = fmt.Sprintf("%d/%d peers", d.PeersUp, d.PeersExpected)
	}
	if len(d.Unreachable) > 0 {
		s += " (" + strings.Join(d.Unreachable, ", ") + " unreachable)"
	}
	if d.Counters.AuthRefused > 0 {
		s += fmt.Sprintf(", %d auth refused", d.Counters.AuthRefused)
	}
	return s
}

// renderLabels renders labels as the daemon's --labels flag has them
// (k1=v1,k2=v2 sorted by key), or "-" when there are none.
func renderLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	return remote.FormatLabelFlag(l)
}
