package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// CheckPlacement checks the _unstable_deploy of every node of df against
// the cluster c: a machine must be a machine of c, and label requirements
// must be met by at least one machine. It does not decide placement (see
// package placement); it finds what can never be placed.
func CheckPlacement(c *Cluster, df *Dataflow) Diagnostics {
	var diags Diagnostics
	ids := c.MachineIDs()
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	satisfiable := make(map[string]bool) // by FormatLabels of the requirement
	for _, n := range df.Nodes {
		dep := n.Deploy
		if dep.Machine != "" {
			if !known[dep.Machine] {
				hint := suggest(dep.Machine, ids)
				if hint == "" {
					hint = "machines are " + quoteList(ids)
				}
				diags.hintf(dep.Pos, hint, "node %q: unknown machine %q", n.ID, dep.Machine)
			}
			continue
		}
		if len(dep.Labels) == 0 {
			continue
		}
		key := FormatLabels(dep.Labels)
		ok, seen := satisfiable[key]
		if !seen {
			ok = anyMachineMatches(c, dep.Labels)
			satisfiable[key] = ok
		}
		if !ok {
			diags.hintf(dep.Pos, "add the labels to a machine of "+clusterName(c)+" or change the requirement",
				"node %q: no machine matches labels %s", n.ID, key)
		}
	}
	return diags
}

func clusterName(c *Cluster) string {
	if c.Source == "" {
		return "the cluster"
	}
	return filepath.Base(c.Source)
}

func anyMachineMatches(c *Cluster, want map[string]string) bool {
	for _, m := range c.Machines {
		if LabelsMatch(m.Labels, want) {
			return true
		}
	}
	return false
}

// LabelsMatch reports whether have is a superset of want: every key of want
// is in have with the same value.
func LabelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// quoteList renders up to 8 quoted strings, then how many more there are.
func quoteList(ss []string) string {
	const show = 8
	var b strings.Builder
	for i, s := range ss {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(ss)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}

// LoadProject loads a cluster file, the dataflows its dataflows: list names
// (paths relative to the cluster file) and the extra dataflow files, and
// cross-checks every dataflow against the cluster. A listed dataflow is
// named by its list entry, an extra one by its file name without extension.
// An empty clusterPath means DefaultCluster.
//
// The maps and cluster are returned even when there are errors, holding
// whatever could be decoded; check HasErrors.
func LoadProject(clusterPath string, extraDataflows ...string) (*Cluster, map[string]*Dataflow, Diagnostics) {
	return LoadProjectOptions(clusterPath, Options{}, extraDataflows...)
}

// LoadProjectOptions is LoadProject with Options (HCL variables, applied to
// every HCL file).
func LoadProjectOptions(clusterPath string, opts Options, extraDataflows ...string) (*Cluster, map[string]*Dataflow, Diagnostics) {
	var diags Diagnostics
	var c *Cluster
	opts.AllowUndeclaredVars = true
	if opts.Declared == nil {
		opts.Declared = make(map[string]bool)
	}
	if clusterPath == "" {
		c = DefaultCluster()
	} else {
		var ds Diagnostics
		c, ds = LoadClusterOptions(clusterPath, opts)
		diags = append(diags, ds...)
		if c == nil {
			return nil, nil, diags
		}
	}
	dfs := make(map[string]*Dataflow)
	where := make(map[string]Pos)
	add := func(name, path string, at Pos, inline *Dataflow) {
		if prev, dup := where[name]; dup {
			diags.hintf(at, "first named at "+prev.String()+"; rename one file", "two dataflows are named %q", name)
			return
		}
		where[name] = at
		if inline != nil {
			dfs[name] = inline
			diags = append(diags, CheckPlacement(c, inline)...)
			return
		}
		if _, err := os.Stat(path); err != nil && os.IsNotExist(err) && at.Line > 0 {
			diags.hintf(at, "paths are relative to the cluster file", "dataflow %q: file %s not found", name, path)
			return
		}
		df, ds := LoadDataflowOptions(path, opts)
		diags = append(diags, ds...)
		if df == nil {
			return
		}
		dfs[name] = df
		diags = append(diags, CheckPlacement(c, df)...)
	}
	dir := filepath.Dir(clusterPath)
	listed := make(map[string]bool)
	for _, r := range c.Dataflows {
		if r.Name != "" && r.Dataflow != nil {
			add(r.Name, "", r.Pos, r.Dataflow)
			continue
		}
		if r.Name == "" || r.Path == "" {
			continue
		}
		p := r.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		listed[sameFileKey(p)] = true
		add(r.Name, p, r.Pos, nil)
	}
	for _, p := range extraDataflows {
		if listed[sameFileKey(p)] {
			continue // already loaded under its listed name
		}
		name := nameFromPath(p)
		if err := ValidID("dataflow name", name); err != nil {
			diags.hintf(Pos{File: p}, "rename the file", "%v", err)
			continue
		}
		add(name, p, Pos{File: p}, nil)
	}
	for _, n := range opts.UndeclaredVars() {
		diags.hintf(Pos{File: clusterPath}, suggest(n, slices.Sorted(maps.Keys(opts.Declared))), "-var %s: no file of the project declares variable %q", n, n)
	}
	return c, dfs, diags
}

// sameFileKey identifies a file path for de-duplication: absolute and
// cleaned, or as given when it cannot be made absolute.
func sameFileKey(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

// DataflowNames returns the keys of dfs sorted.
func DataflowNames(dfs map[string]*Dataflow) []string {
	names := make([]string, 0, len(dfs))
	for n := range dfs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// StripPositions zeroes, in place, every Pos field and every Source field
// reachable from v (a *Cluster, *Dataflow, map[string]*Dataflow or any
// pointer to such data), so values decoded from YAML and from HCL compare
// equal with reflect.DeepEqual. It returns v.
func StripPositions[T any](v T) T {
	strip(reflect.ValueOf(v))
	return v
}

var posType = reflect.TypeOf(Pos{})

func strip(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			strip(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == posType {
			if v.CanSet() {
				v.Set(reflect.Zero(posType))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !v.Type().Field(i).IsExported() {
				continue
			}
			if v.Type().Field(i).Name == "Source" && f.Kind() == reflect.String && f.CanSet() {
				f.SetString("")
				continue
			}
			strip(f)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			strip(v.Index(i))
		}
	case reflect.Map:
		if v.Type().Elem().Kind() == reflect.Pointer {
			for _, k := range v.MapKeys() {
				strip(v.MapIndex(k))
			}
		}
	}
}

// CheckDataflow applies defaults to a Dataflow built in code (queue size,
// queue policy, restart mode, distribute; inputs sorted) and cross-checks
// it like ParseDataflow does: node ids valid and unique, every input wired
// to an existing node and output. Field values are not re-validated beyond
// ids.
func CheckDataflow(df *Dataflow) Diagnostics {
	var diags Diagnostics
	for _, n := range df.Nodes {
		if err := validNodeID(n.ID); err != nil && n.ID != "" {
			diags.errorf(n.Pos, "%v", err)
		}
		if n.ID == "" {
			diags.errorf(n.Pos, "node id must not be empty")
		}
	}
	return append(diags, finishDataflow(df, Pos{File: df.Source})...)
}

// CheckCluster applies defaults to a Cluster built in code (ports, SSH user
// and identity) and checks machine ids are valid and unique.
func CheckCluster(c *Cluster) Diagnostics {
	var diags Diagnostics
	for _, m := range c.Machines {
		if err := ValidID("machine id", m.ID); err != nil {
			diags.errorf(m.Pos, "%v", err)
		}
	}
	return append(diags, finishCluster(c, Pos{File: c.Source})...)
}
