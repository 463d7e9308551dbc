package command

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/posener/complete"

	"github.com/adora-rs/adora/config"
	"github.com/adora-rs/adora/placement"
)

// ValidateCommand checks cluster and dataflow files and prints every
// diagnostic.
type ValidateCommand struct{ Meta *Meta }

func (c *ValidateCommand) Synopsis() string { return "Check cluster and dataflow files" }

func (c *ValidateCommand) Help() string {
	return strings.TrimSpace(`
Usage: adora validate [options] [FILES...]

  Checks cluster files (cluster.yml, cluster.hcl) and dataflow files
  (YAML or HCL) and prints every problem found, with file:line:col.
  Each file is recognised as a cluster or a dataflow by its top-level keys.

  With a cluster file, the dataflows its dataflows: list names and the
  dataflow files given are checked against it: machines named in
  _unstable_deploy must exist and label requirements must be met by a
  machine. At most one cluster file may be given.

  Without FILES, validates ./cluster.yml (or ./cluster.hcl) and its
  dataflows.

  Exit status: 0 when there are no errors (warnings allowed), 1 otherwise.

Options:

  -json            Print one JSON object instead: format_version, valid,
                   diagnostics (pos, severity, summary, detail) and the
                   files checked.
  -placement       Also print where each node would run on the cluster's
                   machines, and by which rule.
  -var NAME=VALUE  Set an HCL variable; repeatable.
`)
}

// cfgVars is a repeatable -var NAME=VALUE flag.
type cfgVars map[string]string

func (v cfgVars) String() string { return "" }

func (v cfgVars) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	v[name] = value
	return nil
}

// cfgParseArgs parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func cfgParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func (c *ValidateCommand) Run(args []string) int {
	vars := cfgVars{}
	var showPlacement, asJSON bool
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(&cfgErrWriter{ui: c.Meta.Ui})
	fs.Var(vars, "var", "HCL variable NAME=VALUE")
	fs.BoolVar(&showPlacement, "placement", false, "print node placement")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.Usage = func() { c.Meta.Ui.Error(c.Help()) }
	files, err := cfgParseArgs(fs, args)
	if err != nil {
		return 1
	}
	opts := config.Options{Vars: vars}
	if len(files) == 0 {
		def := cfgDefaultClusterFile()
		if def == "" {
			c.Meta.Ui.Error("adora validate: no cluster.yml or cluster.hcl in the current directory; pass the files to check")
			return 1
		}
		files = []string{def}
	}
	var clusterFile string
	var dataflows []string
	for _, f := range files {
		kind, err := cfgFileKind(f)
		if err != nil {
			c.Meta.Ui.Error(err.Error())
			return 1
		}
		if kind != config.KindCluster {
			dataflows = append(dataflows, f)
			continue
		}
		if clusterFile != "" {
			c.Meta.Ui.Error(fmt.Sprintf("adora validate: %s and %s are both cluster files; pass one", clusterFile, f))
			return 1
		}
		clusterFile = f
	}
	if asJSON {
		return c.checkJSON(clusterFile, dataflows, opts)
	}
	return c.check(clusterFile, dataflows, opts, showPlacement)
}

// validateJSON is the -json output. Bump FormatVersion on incompatible
// changes.
type validateJSON struct {
	FormatVersion int                `json:"format_version"`
	Valid         bool               `json:"valid"`
	Cluster       string             `json:"cluster,omitempty"`
	Dataflows     map[string]string  `json:"dataflows"` // name -> file
	Diagnostics   config.Diagnostics `json:"diagnostics"`
}

func (c *ValidateCommand) checkJSON(clusterFile string, dataflows []string, opts config.Options) int {
	out := validateJSON{FormatVersion: 1, Cluster: clusterFile, Dataflows: map[string]string{}, Diagnostics: config.Diagnostics{}}
	if clusterFile != "" {
		_, dfs, ds := config.LoadProjectOptions(clusterFile, opts, dataflows...)
		out.Diagnostics = append(out.Diagnostics, ds...)
		for name, df := range dfs {
			out.Dataflows[name] = df.Source
		}
	} else {
		dfs, ds := cfgLoadDataflows(dataflows, opts)
		out.Diagnostics = append(out.Diagnostics, ds...)
		for f := range dfs {
			out.Dataflows[graphName(f)] = f
		}
	}
	out.Valid = !out.Diagnostics.HasErrors()
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		c.Meta.Ui.Error(fmt.Sprintf("adora validate: %v", err))
		return 1
	}
	c.Meta.Ui.Output(string(b))
	if !out.Valid {
		return 1
	}
	return 0
}

func (c *ValidateCommand) check(clusterFile string, dataflows []string, opts config.Options, showPlacement bool) int {
	var diags config.Diagnostics
	var summary []string
	if clusterFile != "" {
		cl, dfs, ds := config.LoadProjectOptions(clusterFile, opts, dataflows...)
		diags = ds
		if cl != nil {
			summary = append(summary, fmt.Sprintf("OK  cluster %s: %s", clusterFile, cfgPlural(len(cl.Machines), "machine")))
		}
		for _, name := range config.DataflowNames(dfs) {
			summary = append(summary, fmt.Sprintf("OK  dataflow %s (%s): %s", name, dfs[name].Source, cfgPlural(len(dfs[name].Nodes), "node")))
			if showPlacement && cl != nil {
				decisions, _ := placement.Place(dfs[name].Nodes, placement.DaemonsFromCluster(cl))
				for _, d := range decisions {
					summary = append(summary, "    "+d.String())
				}
			}
		}
	} else {
		dfs, ds := cfgLoadDataflows(dataflows, opts)
		diags = ds
		for _, f := range dataflows {
			if df := dfs[f]; df != nil {
				summary = append(summary, fmt.Sprintf("OK  dataflow %s: %s", f, cfgPlural(len(df.Nodes), "node")))
			}
		}
	}
	cfgPrintDiagnostics(c.Meta, diags)
	if diags.HasErrors() {
		n := 0
		for _, d := range diags {
			if d.Severity == config.Error {
				n++
			}
		}
		c.Meta.Ui.Error(fmt.Sprintf("%s found.", cfgPlural(n, "error")))
		return 1
	}
	for _, s := range summary {
		c.Meta.Ui.Output(s)
	}
	return 0
}

// cfgLoadDataflows loads dataflow files without a cluster, sharing -var
// values between them: a variable must be declared by at least one file.
func cfgLoadDataflows(files []string, opts config.Options) (map[string]*config.Dataflow, config.Diagnostics) {
	opts.AllowUndeclaredVars = true
	opts.Declared = make(map[string]bool)
	out := make(map[string]*config.Dataflow)
	var diags config.Diagnostics
	for _, f := range files {
		df, ds := config.LoadDataflowOptions(f, opts)
		diags = append(diags, ds...)
		if df != nil {
			out[f] = df
		}
	}
	for _, n := range opts.UndeclaredVars() {
		diags = append(diags, config.Diagnostic{Summary: fmt.Sprintf("-var %s: no file declares variable %q", n, n)})
	}
	return out, diags
}

// cfgPrintDiagnostics writes errors and warnings to the error stream.
func cfgPrintDiagnostics(m *Meta, diags config.Diagnostics) {
	for _, d := range diags {
		if d.Severity == config.Warning {
			m.Ui.Warn(d.String())
		} else {
			m.Ui.Error(d.String())
		}
	}
}

func cfgPlural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// cfgDefaultClusterFile is ./cluster.yml, ./cluster.yaml or ./cluster.hcl,
// whichever exists first, or "".
func cfgDefaultClusterFile() string {
	for _, f := range []string{"cluster.yml", "cluster.yaml", "cluster.hcl"} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// cfgFileKind reads f and tells whether it is a cluster or a dataflow file.
// Files it cannot classify are treated as dataflows, whose diagnostics then
// say what is wrong.
func cfgFileKind(f string) (config.Kind, error) {
	src, err := os.ReadFile(f)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("%s: error: file not found", f)
		}
		return "", fmt.Errorf("%s: error: %v", f, err)
	}
	switch filepath.Ext(f) {
	case ".yml", ".yaml", ".hcl":
	default:
		return "", fmt.Errorf("%s: error: unknown file type; use .yml, .yaml or .hcl", f)
	}
	if k := config.DetectKind(src, f); k != config.KindUnknown {
		return k, nil
	}
	return config.KindDataflow, nil
}

// cfgErrWriter sends flag package output to the Ui's error stream.
type cfgErrWriter struct {
	ui interface{ Error(string) }
}

func (w *cfgErrWriter) Write(p []byte) (int, error) {
	w.ui.Error(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// cfgFilePredictor completes configuration file names.
var cfgFilePredictor = complete.PredictFunc(func(a complete.Args) []string {
	var out []string
	for _, p := range complete.PredictFiles("*").Predict(a) {
		switch {
		case strings.HasSuffix(p, "/"), strings.HasSuffix(p, ".yml"), strings.HasSuffix(p, ".yaml"), strings.HasSuffix(p, ".hcl"):
			out = append(out, p)
		}
	}
	return out
})

// AutocompleteArgs completes cluster and dataflow files.
func (c *ValidateCommand) AutocompleteArgs() complete.Predictor { return cfgFilePredictor }

// AutocompleteFlags lists validate's flags.
func (c *ValidateCommand) AutocompleteFlags() complete.Flags {
	return complete.Flags{"-json": complete.PredictNothing, "-placement": complete.PredictNothing, "-var": complete.PredictAnything}
}
