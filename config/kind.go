package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"gopkg.in/yaml.v3"
)

// Kind is what a configuration file describes.
type Kind string

const (
	KindUnknown  Kind = ""
	KindCluster  Kind = "cluster"
	KindDataflow Kind = "dataflow"
)

// DetectKind tells a cluster file from a dataflow file by its top-level
// keys (YAML) or blocks (HCL): machines, coordinator, ssh or dataflows make
// a cluster; nodes (node blocks) a dataflow. Files that do not parse, or
// have none of these, are KindUnknown.
func DetectKind(src []byte, filename string) Kind {
	if IsHCL(filename) {
		f, diags := hclsyntax.ParseConfig(src, filename, hcl.Pos{Line: 1, Column: 1})
		if diags.HasErrors() || f == nil {
			return KindUnknown
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			return KindUnknown
		}
		for _, b := range body.Blocks {
			switch b.Type {
			case "machine", "coordinator", "ssh", "dataflow":
				return KindCluster
			case "node":
				return KindDataflow
			}
		}
		return KindUnknown
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 {
		return KindUnknown
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return KindUnknown
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "machines", "coordinator", "ssh", "dataflows":
			return KindCluster
		case "nodes":
			return KindDataflow
		}
	}
	return KindUnknown
}
