package config

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// MaxInstances bounds count and for_each, so a typo cannot expand one block
// into millions of machines or nodes.
const MaxInstances = 10000

// hclDecoder evaluates an HCL file: variables, locals, then the blocks of
// the model, gathering every diagnostic.
type hclDecoder struct {
	file  string
	diags Diagnostics
	ctx   *hcl.EvalContext
}

// parseHCL parses src; it returns nil when the file is not valid HCL.
func parseHCL(src []byte, file string) (*hclDecoder, *hclsyntax.Body) {
	d := &hclDecoder{file: file}
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	f, diags := hclsyntax.ParseConfig(src, file, hcl.Pos{Line: 1, Column: 1})
	d.addHCL(diags)
	if diags.HasErrors() || f == nil {
		return d, nil
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return d, nil
	}
	w := &forDepth{d: d}
	hclsyntax.Walk(body, w)
	if w.nested {
		return d, nil
	}
	return d, body
}

// forDepth finds for expressions nested in for expressions: they multiply
// sizes (1024 x 1024 elements is seconds of work), so they are refused.
type forDepth struct {
	d      *hclDecoder
	depth  int
	nested bool
}

func (w *forDepth) Enter(n hclsyntax.Node) hcl.Diagnostics {
	if _, ok := n.(*hclsyntax.ForExpr); ok {
		w.depth++
		if w.depth == 2 && !w.nested {
			w.nested = true
			w.d.diags.hintf(w.d.pos(n.Range()), "compute the inner list in a local first", "for expressions must not be nested")
		}
	}
	return nil
}

func (w *forDepth) Exit(n hclsyntax.Node) hcl.Diagnostics {
	if _, ok := n.(*hclsyntax.ForExpr); ok {
		w.depth--
	}
	return nil
}

func (d *hclDecoder) pos(r hcl.Range) Pos {
	return Pos{File: d.file, Line: r.Start.Line, Col: r.Start.Column}
}

// addHCL converts hcl diagnostics, lower-casing their summaries to match
// ours.
func (d *hclDecoder) addHCL(ds hcl.Diagnostics) {
	for _, hd := range ds {
		diag := Diagnostic{Severity: Error, Summary: lowerFirst(hd.Summary), Detail: strings.TrimSuffix(hd.Detail, ".")}
		if hd.Severity == hcl.DiagWarning {
			diag.Severity = Warning
		}
		if m := unknownFuncRE.FindStringSubmatch(hd.Detail); m != nil {
			// hcl picks its suggestion in map order; pick ours stably.
			diag.Detail = suggest(m[1], slices.Sorted(maps.Keys(functions)))
		}
		if m := unknownVarRE.FindStringSubmatch(hd.Detail); m != nil {
			diag.Detail = suggest(m[1], scopeNames(hd.EvalContext))
		}
		if s, detail, ok := undefinedName(hd); ok {
			diag.Summary, diag.Detail = s, detail
		}
		if hd.Subject != nil {
			diag.Pos = d.pos(*hd.Subject)
		} else {
			diag.Pos = Pos{File: d.file}
		}
		d.diags = append(d.diags, diag)
	}
}

var (
	unknownFuncRE = regexp.MustCompile(`^There is no function named "([^"]*)"`)
	unknownVarRE  = regexp.MustCompile(`^There is no variable named "([^"]*)"`)
	noAttrRE      = regexp.MustCompile(`^This object does not have an attribute named "([^"]*)"`)
)

// scopeNames lists the variables visible in ctx, sorted.
func scopeNames(ctx *hcl.EvalContext) []string {
	var names []string
	for ; ctx != nil; ctx = ctx.Parent() {
		for k := range ctx.Variables {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// undefinedName rewrites "unsupported attribute" on var.X or local.X into
// "undefined variable X", with a did-you-mean among the declared names.
func undefinedName(hd *hcl.Diagnostic) (summary, detail string, ok bool) {
	m := noAttrRE.FindStringSubmatch(hd.Detail)
	expr, isTraversal := hd.Expression.(*hclsyntax.ScopeTraversalExpr)
	if m == nil || !isTraversal || len(expr.Traversal) < 2 || hd.EvalContext == nil {
		return "", "", false
	}
	root := expr.Traversal.RootName()
	if step, isAttr := expr.Traversal[1].(hcl.TraverseAttr); !isAttr || step.Name != m[1] || (root != "var" && root != "local") {
		return "", "", false
	}
	var declared []string
	for ctx := hd.EvalContext; ctx != nil; ctx = ctx.Parent() {
		if v, found := ctx.Variables[root]; found && v.Type().IsObjectType() {
			for name := range v.Type().AttributeTypes() {
				declared = append(declared, name)
			}
			break
		}
	}
	sort.Strings(declared)
	detail = suggest(m[1], declared)
	if root == "var" {
		if detail == "" {
			detail = fmt.Sprintf(`declare it: variable %q { default = ... }`, m[1])
		}
		return fmt.Sprintf("undefined variable %q", m[1]), detail, true
	}
	if detail == "" {
		detail = fmt.Sprintf("define it in a locals block: %s = ...", m[1])
	}
	return fmt.Sprintf("undefined local %q", m[1]), detail, true
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || len(s) > n && unicode.IsUpper(rune(s[n])) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// functions is the function library of adora HCL files: the common
// terraform functions that make sense without a file system. Each is
// wrapped by bounded, which refuses arguments (and, for join, replace and
// format, results) larger than MaxValueSize before any work is done.
var functions = boundAll(map[string]function.Function{
	"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc,
	"max": stdlib.MaxFunc, "min": stdlib.MinFunc, "parseint": stdlib.ParseIntFunc,
	"format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc,
	"join": stdlib.JoinFunc, "split": stdlib.SplitFunc, "lower": stdlib.LowerFunc,
	"upper": stdlib.UpperFunc, "replace": stdlib.ReplaceFunc, "trimspace": stdlib.TrimSpaceFunc,
	"trimprefix": stdlib.TrimPrefixFunc, "trimsuffix": stdlib.TrimSuffixFunc, "substr": stdlib.SubstrFunc,
	"concat": stdlib.ConcatFunc, "length": stdlib.LengthFunc, "range": stdlib.RangeFunc,
	"merge": stdlib.MergeFunc, "keys": stdlib.KeysFunc, "values": stdlib.ValuesFunc,
	"lookup": stdlib.LookupFunc, "contains": stdlib.ContainsFunc, "flatten": stdlib.FlattenFunc,
	"distinct": stdlib.DistinctFunc, "element": stdlib.ElementFunc, "zipmap": stdlib.ZipmapFunc,
	"coalesce": stdlib.CoalesceFunc, "slice": stdlib.SliceFunc, "sort": stdlib.SortFunc,
	"tostring": stdlib.MakeToFunc(cty.String), "tonumber": stdlib.MakeToFunc(cty.Number),
	"tobool": stdlib.MakeToFunc(cty.Bool), "toset": stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
	"tolist": stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)), "tomap": stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
})

func boundAll(fs map[string]function.Function) map[string]function.Function {
	for name, f := range fs {
		fs[name] = bounded(name, f)
	}
	return fs
}

// wideVerb matches a format verb with a width or precision of 5 digits or
// more, which could make format allocate gigabytes.
var wideVerb = regexp.MustCompile(`%[-+# 0]*(\[\d+\])?\d{5,}|%[^a-zA-Z%]*\.\d{5,}`)

// bounded wraps f so that oversized work is refused before it starts.
func bounded(name string, f function.Function) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type: func(args []cty.Value) (cty.Type, error) {
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if err := checkCall(name, args); err != nil {
				return cty.NilVal, err
			}
			return f.Call(args)
		},
	})
}

// checkCall refuses calls whose arguments, or predictable results, exceed
// MaxValueSize.
func checkCall(name string, args []cty.Value) error {
	total := 0
	for _, a := range args {
		total += valueSize(a, MaxValueSize)
	}
	if total > MaxValueSize {
		return fmt.Errorf("arguments are too large (over %d elements and bytes)", MaxValueSize)
	}
	str := func(i int) (string, bool) {
		if i >= len(args) || !args[i].IsKnown() || args[i].IsNull() || args[i].Type() != cty.String {
			return "", false
		}
		return args[i].AsString(), true
	}
	switch name {
	case "format", "formatlist":
		if f, ok := str(0); ok && wideVerb.MatchString(f) {
			return fmt.Errorf("format widths are limited to 4 digits")
		}
	case "join":
		// result = separator x (elements - 1) + elements
		if sep, ok := str(0); ok {
			n := 0
			for _, l := range args[1:] {
				if l.IsKnown() && !l.IsNull() && l.CanIterateElements() {
					n += l.LengthInt()
				}
			}
			if n > 0 && len(sep)*(n-1) > MaxValueSize {
				return fmt.Errorf("result would be too large")
			}
		}
	case "replace":
		// at most len(s)/len(old)+1 replacements of len(new) bytes
		sv, ok1 := str(0)
		old, ok2 := str(1)
		repl, ok3 := str(2)
		if ok1 && ok2 && ok3 && len(repl) > len(old) {
			n := len(sv) + 1
			if len(old) > 0 {
				n = len(sv)/len(old) + 1
			}
			if n*(len(repl)-len(old)) > MaxValueSize {
				return fmt.Errorf("result would be too large")
			}
		}
	}
	return nil
}

// sortedAttrs returns a body's attributes in source order.
func sortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

// setup evaluates the variable and locals blocks into d.ctx.
func (d *hclDecoder) setup(body *hclsyntax.Body, opts Options) {
	vars := make(map[string]cty.Value)
	declared := make(map[string]hcl.Range)
	for _, b := range body.Blocks {
		if b.Type != "variable" {
			continue
		}
		if len(b.Labels) != 1 {
			d.diags.hintf(d.pos(b.DefRange()), `write variable "NAME" { default = ... }`, "a variable block needs exactly one name")
			continue
		}
		name := b.Labels[0]
		if prev, dup := declared[name]; dup {
			d.diags.hintf(d.pos(b.LabelRanges[0]), "first declared at "+d.pos(prev).String(), "variable %q is declared twice", name)
			continue
		}
		declared[name] = b.LabelRanges[0]
		if opts.Declared != nil {
			opts.Declared[name] = true
		}
		if !hclsyntax.ValidIdentifier(name) {
			d.diags.errorf(d.pos(b.LabelRanges[0]), "variable name %q is not a valid identifier", name)
			continue
		}
		if v, ok := d.variable(b, name, opts); ok {
			vars[name] = v
		}
	}
	if !opts.AllowUndeclaredVars {
		names := make([]string, 0, len(declared))
		for n := range declared {
			names = append(names, n)
		}
		for _, n := range slices.Sorted(maps.Keys(opts.Vars)) {
			if _, ok := declared[n]; !ok {
				d.diags.hintf(Pos{File: d.file}, suggest(n, names), "-var %s: no variable %q is declared in this file", n, n)
			}
		}
	}
	d.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}, Functions: functions}
	d.locals(body)
}

func (d *hclDecoder) variable(b *hclsyntax.Block, name string, opts Options) (cty.Value, bool) {
	var ty cty.Type = cty.DynamicPseudoType
	var def *hclsyntax.Attribute
	d.body(b.Body, fmt.Sprintf("variable %q", name), map[string]func(*hclsyntax.Attribute){
		"default":     func(a *hclsyntax.Attribute) { def = a },
		"description": nil,
		"type": func(a *hclsyntax.Attribute) {
			t, diags := typeexpr.TypeConstraint(a.Expr)
			d.addHCL(diags)
			if !diags.HasErrors() {
				ty = t
			}
		},
	}, nil, nil)
	if raw, ok := opts.Vars[name]; ok {
		v := cty.StringVal(raw)
		if ty != cty.String && ty != cty.DynamicPseudoType {
			expr, diags := hclsyntax.ParseExpression([]byte(raw), "-var "+name, hcl.Pos{Line: 1, Column: 1})
			if diags.HasErrors() {
				d.diags.errorf(Pos{File: d.file}, "-var %s: %q is not a valid %s", name, raw, ty.FriendlyName())
				return cty.NilVal, false
			}
			if v, diags = expr.Value(&hcl.EvalContext{Functions: functions}); diags.HasErrors() {
				d.diags.errorf(Pos{File: d.file}, "-var %s: %q is not a valid %s", name, raw, ty.FriendlyName())
				return cty.NilVal, false
			}
		}
		return d.convertVar(v, ty, name, d.pos(b.LabelRanges[0]))
	}
	if def == nil {
		d.diags.hintf(d.pos(b.LabelRanges[0]), "set default = ... or pass -var "+name+"=VALUE", "variable %q has no value", name)
		return cty.NilVal, false
	}
	v, diags := def.Expr.Value(&hcl.EvalContext{Functions: functions})
	d.addHCL(diags)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	return d.convertVar(v, ty, name, d.pos(def.Expr.Range()))
}

func (d *hclDecoder) convertVar(v cty.Value, ty cty.Type, name string, p Pos) (cty.Value, bool) {
	if ty == cty.DynamicPseudoType {
		return v, true
	}
	out, err := convert.Convert(v, ty)
	if err != nil {
		d.diags.errorf(p, "variable %q: value is not a %s: %v", name, ty.FriendlyName(), err)
		return cty.NilVal, false
	}
	return out, true
}

// locals evaluates every locals block; a local may use variables and other
// locals, in any order, without cycles.
func (d *hclDecoder) locals(body *hclsyntax.Body) {
	pending := make(map[string]*hclsyntax.Attribute)
	for _, b := range body.Blocks {
		if b.Type != "locals" {
			continue
		}
		if len(b.Labels) != 0 {
			d.diags.errorf(d.pos(b.LabelRanges[0]), "a locals block takes no name")
		}
		if len(b.Body.Blocks) > 0 {
			d.diags.errorf(d.pos(b.Body.Blocks[0].DefRange()), "a locals block holds only name = value lines")
		}
		for _, a := range sortedAttrs(b.Body) {
			if prev, dup := pending[a.Name]; dup {
				d.diags.hintf(d.pos(a.NameRange), "first defined at "+d.pos(prev.NameRange).String(), "local %q is defined twice", a.Name)
				continue
			}
			pending[a.Name] = a
		}
	}
	values := make(map[string]cty.Value)
	d.ctx.Variables["local"] = cty.ObjectVal(values)
	for len(pending) > 0 {
		progress := false
		for _, name := range slices.Sorted(maps.Keys(pending)) {
			a := pending[name]
			if !d.localsReady(a.Expr, values, pending) {
				continue
			}
			v, diags := a.Expr.Value(d.ctx)
			d.addHCL(diags)
			if diags.HasErrors() {
				v = cty.DynamicVal
			} else if valueSize(v, MaxValueSize) > MaxValueSize {
				d.diags.errorf(d.pos(a.Expr.Range()), "local %q is too large (over %d elements and bytes)", name, MaxValueSize)
				v = cty.DynamicVal
			}
			values[name] = v
			d.ctx.Variables["local"] = cty.ObjectVal(values)
			delete(pending, name)
			progress = true
		}
		if !progress {
			for _, name := range slices.Sorted(maps.Keys(pending)) {
				d.diags.hintf(d.pos(pending[name].NameRange), "locals must not refer to each other in a cycle", "local %q cannot be evaluated", name)
			}
			return
		}
	}
}

func (d *hclDecoder) localsReady(expr hclsyntax.Expression, done map[string]cty.Value, pending map[string]*hclsyntax.Attribute) bool {
	for _, tr := range expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		attr, ok := tr[1].(hcl.TraverseAttr)
		if !ok {
			continue
		}
		if _, ok := done[attr.Name]; ok {
			continue
		}
		if _, ok := pending[attr.Name]; ok {
			return false
		}
	}
	return true
}

// body checks the attributes and blocks of b against the accepted names,
// calling the handler of each one present (in source order). Unknown names
// get a did-you-mean; unsupported ones their reason.
func (d *hclDecoder) body(b *hclsyntax.Body, what string, attrs map[string]func(*hclsyntax.Attribute), blocks map[string]func(*hclsyntax.Block), unsupported map[string]string) {
	attrNames := slices.Sorted(maps.Keys(attrs))
	blockNames := slices.Sorted(maps.Keys(blocks))
	for _, a := range sortedAttrs(b) {
		if reason, ok := unsupported[a.Name]; ok {
			d.diags.hintf(d.pos(a.NameRange), reason, "%s: %q is not supported", what, a.Name)
			continue
		}
		h, ok := attrs[a.Name]
		if !ok {
			hint := suggest(a.Name, attrNames)
			if _, isBlock := blocks[a.Name]; isBlock {
				hint = fmt.Sprintf("%s is a block: write %s { ... }", a.Name, a.Name)
			}
			d.diags.hintf(d.pos(a.NameRange), hint, "%s: unknown field %q", what, a.Name)
			continue
		}
		if h != nil {
			h(a)
		}
	}
	for _, blk := range b.Blocks {
		if reason, ok := unsupported[blk.Type]; ok {
			d.diags.hintf(d.pos(blk.TypeRange), reason, "%s: %q is not supported", what, blk.Type)
			continue
		}
		h, ok := blocks[blk.Type]
		if !ok {
			hint := suggest(blk.Type, blockNames)
			if _, isAttr := attrs[blk.Type]; isAttr {
				hint = fmt.Sprintf("%s is a field: write %s = ...", blk.Type, blk.Type)
			}
			d.diags.hintf(d.pos(blk.TypeRange), hint, "%s: unknown block %q", what, blk.Type)
			continue
		}
		if h != nil {
			h(blk)
		}
	}
}

// instance is one expansion of a block with count or for_each.
type instance struct {
	ctx *hcl.EvalContext
	id  string // the default id
}

// expand evaluates count or for_each on a block and returns one evaluation
// context per instance. Without either, the block is one instance with id
// label.
func (d *hclDecoder) expand(b *hclsyntax.Block, label string) []instance {
	countA, forEachA := b.Body.Attributes["count"], b.Body.Attributes["for_each"]
	switch {
	case countA != nil && forEachA != nil:
		d.diags.hintf(d.pos(forEachA.NameRange), "use one of them", "count and for_each cannot both be set")
		return nil
	case countA != nil:
		v, ok := d.value(countA.Expr, d.ctx)
		if !ok {
			return nil
		}
		n, ok := d.toInt(v, d.pos(countA.Expr.Range()), "count", 0, MaxInstances)
		if !ok {
			return nil
		}
		out := make([]instance, n)
		for i := range out {
			out[i] = instance{ctx: d.child(map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(i))})}), id: fmt.Sprintf("%s-%d", label, i)}
		}
		return out
	case forEachA != nil:
		return d.forEach(forEachA)
	}
	return []instance{{ctx: d.ctx, id: label}}
}

func (d *hclDecoder) forEach(a *hclsyntax.Attribute) []instance {
	v, ok := d.value(a.Expr, d.ctx)
	if !ok {
		return nil
	}
	p := d.pos(a.Expr.Range())
	ty := v.Type()
	if !(ty.IsMapType() || ty.IsObjectType() || ty.IsSetType()) {
		d.diags.hintf(p, "use a map, or toset([...]) for a list of strings", "for_each must be a map or a set of strings, not %s", ty.FriendlyName())
		return nil
	}
	if v.LengthInt() > MaxInstances {
		d.diags.errorf(p, "for_each has %d elements; the limit is %d", v.LengthInt(), MaxInstances)
		return nil
	}
	var out []instance
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		if ty.IsSetType() {
			s, err := convert.Convert(val, cty.String)
			if err != nil || s.IsNull() {
				d.diags.errorf(p, "for_each: a set must hold strings")
				return nil
			}
			k, val = s, s
		}
		each := cty.ObjectVal(map[string]cty.Value{"key": k, "value": val})
		out = append(out, instance{ctx: d.child(map[string]cty.Value{"each": each}), id: k.AsString()})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (d *hclDecoder) child(vars map[string]cty.Value) *hcl.EvalContext {
	c := d.ctx.NewChild()
	c.Variables = vars
	return c
}

// value evaluates expr; ok is false (and a diagnostic added) when it fails
// or is not fully known.
func (d *hclDecoder) value(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, bool) {
	v, diags := expr.Value(ctx)
	d.addHCL(diags)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		d.diags.errorf(d.pos(expr.Range()), "value cannot be determined")
		return cty.NilVal, false
	}
	if valueSize(v, MaxValueSize) > MaxValueSize {
		d.diags.errorf(d.pos(expr.Range()), "value is too large (over %d elements and bytes)", MaxValueSize)
		return cty.NilVal, false
	}
	v, _ = v.Unmark()
	return v, true
}
