package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// The canonical YAML form: what FormatDataflowYAML and FormatClusterYAML
// write. Every default is spelled out, inputs use the long form and
// durations are Go duration strings, so parsing the output gives back the
// same model (positions aside) whatever syntax the original was.

type yamlDataflow struct {
	Env   map[string]string `yaml:"env,omitempty"`
	Nodes []yamlNode        `yaml:"nodes"`
}

type yamlNode struct {
	ID              string               `yaml:"id"`
	Name            string               `yaml:"name,omitempty"`
	Description     string               `yaml:"description,omitempty"`
	Path            string               `yaml:"path"`
	Args            []string             `yaml:"args,omitempty,flow"`
	Env             map[string]string    `yaml:"env,omitempty"`
	Build           string               `yaml:"build,omitempty"`
	Inputs          map[string]yamlInput `yaml:"inputs,omitempty"`
	Outputs         []string             `yaml:"outputs,omitempty,flow"`
	RestartPolicy   RestartMode          `yaml:"restart_policy"`
	MaxRestarts     int                  `yaml:"max_restarts,omitempty"`
	RestartDelay    string               `yaml:"restart_delay,omitempty"`
	MaxRestartDelay string               `yaml:"max_restart_delay,omitempty"`
	RestartWindow   string               `yaml:"restart_window,omitempty"`
	Deploy          yamlDeploy           `yaml:"_unstable_deploy"`
}

type yamlInput struct {
	Source       string      `yaml:"source"`
	QueueSize    int         `yaml:"queue_size"`
	QueuePolicy  QueuePolicy `yaml:"queue_policy"`
	InputTimeout string      `yaml:"input_timeout,omitempty"`
}

type yamlDeploy struct {
	Machine    string            `yaml:"machine,omitempty"`
	Labels     map[string]string `yaml:"labels,omitempty"`
	Distribute Distribute        `yaml:"distribute"`
	WorkingDir string            `yaml:"working_dir,omitempty"`
}

type yamlCluster struct {
	Coordinator yamlCoordinator `yaml:"coordinator"`
	SSH         yamlSSH         `yaml:"ssh"`
	Machines    []yamlMachine   `yaml:"machines"`
	Dataflows   []yamlRef       `yaml:"dataflows,omitempty"`
}

type yamlCoordinator struct {
	Addr string `yaml:"addr"`
	Port int    `yaml:"port"`
}

type yamlSSH struct {
	User         string `yaml:"user,omitempty"`
	Port         int    `yaml:"port"`
	IdentityFile string `yaml:"identity_file,omitempty"`
}

type yamlMachine struct {
	ID           string            `yaml:"id"`
	Host         string            `yaml:"host"`
	User         string            `yaml:"user,omitempty"`
	Port         int               `yaml:"port"`
	IdentityFile string            `yaml:"identity_file,omitempty"`
	Labels       map[string]string `yaml:"labels,omitempty"`
	Local        bool              `yaml:"local,omitempty"`
	RunAs        string            `yaml:"run_as,omitempty"`
}

type yamlRef struct {
	Name  string            `yaml:"name"`
	Path  string            `yaml:"path,omitempty"`
	Env   map[string]string `yaml:"env,omitempty"`
	Nodes []yamlNode        `yaml:"nodes,omitempty"`
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// FormatDataflowYAML renders df as canonical YAML that ParseDataflow turns
// back into the same Dataflow (positions and Source aside). Use it to ship a
// resolved dataflow (HCL evaluated, defaults applied) to another process.
func FormatDataflowYAML(df *Dataflow) ([]byte, error) {
	return yaml.Marshal(canonicalDataflow(df))
}

func canonicalDataflow(df *Dataflow) yamlDataflow {
	out := yamlDataflow{Env: df.Env, Nodes: make([]yamlNode, len(df.Nodes))}
	for i, n := range df.Nodes {
		yn := yamlNode{
			ID: n.ID, Name: n.Name, Description: n.Description, Path: n.Path, Args: n.Args, Env: n.Env,
			Build: n.Build, Outputs: n.Outputs, RestartPolicy: n.Restart.Mode, MaxRestarts: n.Restart.MaxRestarts,
			RestartDelay:    durationString(n.Restart.RestartDelay),
			MaxRestartDelay: durationString(n.Restart.MaxRestartDelay),
			RestartWindow:   durationString(n.Restart.RestartWindow),
			Deploy: yamlDeploy{Machine: n.Deploy.Machine, Labels: n.Deploy.Labels,
				Distribute: n.Deploy.Distribute, WorkingDir: n.Deploy.WorkingDir},
		}
		if len(n.Inputs) > 0 {
			yn.Inputs = make(map[string]yamlInput, len(n.Inputs))
			for _, in := range n.Inputs {
				yn.Inputs[in.ID] = yamlInput{Source: in.Source.String(), QueueSize: in.QueueSize,
					QueuePolicy: in.QueuePolicy, InputTimeout: durationString(in.InputTimeout)}
			}
		}
		out.Nodes[i] = yn
	}
	return out
}

// FormatClusterYAML renders c as canonical YAML that ParseCluster turns
// back into the same Cluster (positions and Source aside).
func FormatClusterYAML(c *Cluster) ([]byte, error) {
	out := yamlCluster{
		Coordinator: yamlCoordinator{Addr: c.Coordinator.Addr, Port: c.Coordinator.Port},
		SSH:         yamlSSH{User: c.SSH.User, Port: c.SSH.Port, IdentityFile: c.SSH.IdentityFile},
		Machines:    make([]yamlMachine, len(c.Machines)),
	}
	for i, m := range c.Machines {
		out.Machines[i] = yamlMachine{ID: m.ID, Host: m.Host, User: m.User, Port: m.Port,
			IdentityFile: m.IdentityFile, Labels: m.Labels, Local: m.Local, RunAs: m.RunAs}
	}
	for _, r := range c.Dataflows {
		ref := yamlRef{Name: r.Name, Path: r.Path}
		if r.Dataflow != nil {
			inline := canonicalDataflow(r.Dataflow)
			ref.Env, ref.Nodes = inline.Env, inline.Nodes
		}
		out.Dataflows = append(out.Dataflows, ref)
	}
	return yaml.Marshal(out)
}
