package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yamlDecoder walks a yaml.Node tree and gathers diagnostics with positions.
// It never stops at the first problem.
type yamlDecoder struct {
	file  string
	diags Diagnostics
}

// field describes one key of a YAML mapping the decoder accepts.
type field struct {
	name   string
	decode func(key, value *yaml.Node)
}

// MaxYAMLNodes bounds a document's size with every alias expanded, so a
// few lines of nested aliases cannot make decoding take hours.
const MaxYAMLNodes = 1_000_000

// expandedSize counts the nodes of n with aliases expanded, stopping past
// limit. memo holds the sizes already computed.
func expandedSize(n *yaml.Node, limit int, memo map[*yaml.Node]int) int {
	if n == nil {
		return 0
	}
	if v, ok := memo[n]; ok {
		return v
	}
	memo[n] = limit + 1 // a cycle counts as too large
	size := 1
	if n.Kind == yaml.AliasNode {
		size += expandedSize(n.Alias, limit, memo)
	}
	for _, c := range n.Content {
		if size > limit {
			break
		}
		size += expandedSize(c, limit, memo)
	}
	memo[n] = size
	return size
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses src into its document root mapping. It reports syntax
// errors with their line and returns nil when there is nothing to decode.
func (d *yamlDecoder) parseYAML(src []byte) *yaml.Node {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.diags.hintf(Pos{File: d.file}, "a configuration needs at least one key", "the file is empty")
			return nil
		}
		d.syntaxError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.diags.errorf(Pos{File: d.file}, "the file is empty")
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.diags.hintf(d.pos(&extra), "remove the '---' separator and everything after it", "a configuration file holds one YAML document; found a second one")
	}
	root := doc.Content[0]
	if n := expandedSize(root, MaxYAMLNodes, map[*yaml.Node]int{}); n > MaxYAMLNodes {
		d.diags.hintf(d.pos(root), "use fewer aliases (*name)", "the document expands to more than %d YAML nodes", MaxYAMLNodes)
		return nil
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		d.diags.hintf(Pos{File: d.file}, "a configuration needs at least one key", "the file is empty")
		return nil
	}
	return root
}

func (d *yamlDecoder) syntaxError(err error) {
	msg := err.Error()
	p := Pos{File: d.file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.diags.errorf(p, "invalid YAML: %s", msg)
}

func (d *yamlDecoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an unsupported YAML value"
}

func (d *yamlDecoder) typeError(n *yaml.Node, what, want string) {
	d.diags.errorf(d.pos(n), "%s must be %s, not %s", what, want, kindName(n))
}

// mapping decodes the keys of n with fields, reports unknown keys with a
// did-you-mean hint and keys listed in unsupported with their reason, and
// returns the keys present. It returns nil when n is not a mapping.
func (d *yamlDecoder) mapping(n *yaml.Node, what string, fields []field, unsupported map[string]string) map[string]*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.typeError(n, what, "a mapping")
		return nil
	}
	seen := make(map[string]*yaml.Node)
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.diags.errorf(d.pos(k), "%s: keys must be strings, not %s", what, kindName(k))
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			d.diags.hintf(d.pos(k), "write the keys out", "YAML merge keys (<<) are not supported")
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.diags.hintf(d.pos(k), "first set at "+d.pos(prev).String(), "%s: key %q is set twice", what, k.Value)
			continue
		}
		seen[k.Value] = k
		if reason, ok := unsupported[k.Value]; ok {
			d.diags.hintf(d.pos(k), reason, "%s: %q is not supported", what, k.Value)
			continue
		}
		var f *field
		for j := range fields {
			if fields[j].name == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			d.diags.hintf(d.pos(k), suggest(k.Value, names), "%s: unknown field %q", what, k.Value)
			continue
		}
		if f.decode != nil {
			f.decode(k, v)
		}
	}
	return seen
}

// isNull reports whether n is an explicit or implicit YAML null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// str decodes a scalar as a string. Numbers and booleans are taken as
// written (so `gpu: true` is the label value "true"). Null gives "", false.
func (d *yamlDecoder) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.typeError(n, what, "a string")
		return "", false
	}
	return n.Value, true
}

// integer decodes a scalar integer within [lo, hi].
func (d *yamlDecoder) integer(n *yaml.Node, what string, lo, hi int64) (int, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.typeError(n, what, "an integer")
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil || v < lo || v > hi {
		d.diags.errorf(d.pos(n), "%s must be between %d and %d, not %s", what, lo, hi, n.Value)
		return 0, false
	}
	return int(v), true
}

// boolean decodes a scalar boolean.
func (d *yamlDecoder) boolean(n *yaml.Node, what string) (bool, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.typeError(n, what, "true or false")
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.typeError(n, what, "true or false")
		return false, false
	}
	return b, true
}

// duration decodes seconds (an integer or a decimal number, as upstream
// writes them) or a Go duration string such as "500ms".
func (d *yamlDecoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.typeError(n, what, "a number of seconds or a duration such as \"500ms\"")
		return 0, false
	}
	v, err := parseDuration(n.Value, n.Tag == "!!int" || n.Tag == "!!float")
	if err != nil {
		d.diags.hintf(d.pos(n), "write seconds such as 1.5 or a duration such as \"500ms\"", "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

// parseDuration parses seconds (when numeric) or a Go duration; it must be
// finite, not negative and fit in a time.Duration.
func parseDuration(s string, numeric bool) (time.Duration, error) {
	if numeric {
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a number of seconds", s)
		}
		return secondsDuration(f)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q must not be negative", s)
	}
	return v, nil
}

func secondsDuration(f float64) (time.Duration, error) {
	if f < 0 {
		return 0, fmt.Errorf("%v seconds must not be negative", f)
	}
	if f*float64(time.Second) >= math.MaxInt64 {
		return 0, fmt.Errorf("%v seconds is too long", f)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// stringMap decodes a mapping of scalars. check validates each key and
// value and returns an error to report at the key or value.
func (d *yamlDecoder) stringMap(n *yaml.Node, what string, checkKey, checkValue func(string) error) map[string]string {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.typeError(n, what, "a mapping")
		return nil
	}
	out := make(map[string]string)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		key, ok := d.str(k, what+" key")
		if !ok {
			if isNull(k) {
				d.diags.errorf(d.pos(k), "%s: a key must not be empty", what)
			}
			continue
		}
		if _, dup := out[key]; dup {
			d.diags.errorf(d.pos(k), "%s: key %q is set twice", what, key)
			continue
		}
		if checkKey != nil {
			if err := checkKey(key); err != nil {
				d.diags.errorf(d.pos(k), "%s: %v", what, err)
				continue
			}
		}
		val, ok := d.str(v, fmt.Sprintf("%s value of %q", what, key))
		if !ok && !isNull(v) {
			continue
		}
		if checkValue != nil {
			if err := checkValue(val); err != nil {
				d.diags.errorf(d.pos(v), "%s: %v", what, err)
				continue
			}
		}
		out[key] = val
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// stringList decodes a list of scalars.
func (d *yamlDecoder) stringList(n *yaml.Node, what string) ([]string, []*yaml.Node) {
	n = resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, what, "a list")
		return nil, nil
	}
	var out []string
	var nodes []*yaml.Node
	for _, item := range n.Content {
		item = resolve(item)
		s, ok := d.str(item, what+" entry")
		if !ok {
			if isNull(item) {
				d.diags.errorf(d.pos(item), "%s: an entry must not be empty", what)
			}
			continue
		}
		out = append(out, s)
		nodes = append(nodes, item)
	}
	return out, nodes
}
