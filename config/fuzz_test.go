package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// addFixtures seeds a fuzz target with every fixture whose name ends in ext.
func addFixtures(f *testing.F, ext string) {
	f.Helper()
	for _, glob := range []string{"../testfixtures/guide/*/*", "../testfixtures/hcl/*/*"} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			if strings.HasSuffix(p, ext) {
				src, err := os.ReadFile(p)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(src)
			}
		}
	}
}

// checkDiags is the fuzz property: every diagnostic names the file and says
// something, and decoding is deterministic.
func checkDiags(t *testing.T, src []byte, diags, again Diagnostics, file string) {
	t.Helper()
	for _, d := range diags {
		if d.Pos.File != file || d.Summary == "" {
			t.Fatalf("bad diagnostic %#v", d)
		}
		if strings.Contains(d.Summary, "%!") && !strings.Contains(string(src), "%!") {
			t.Fatalf("format error in diagnostic: %s", d)
		}
	}
	if !reflect.DeepEqual(diags, again) {
		t.Fatalf("not deterministic:\n%v\n---\n%v", diags, again)
	}
}

func FuzzParseDataflow(f *testing.F) {
	addFixtures(f, ".yml")
	for _, tt := range malformed {
		f.Add([]byte(tt.src))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		df, diags := ParseDataflow(src, "f.yml")
		_, again := ParseDataflow(src, "f.yml")
		checkDiags(t, src, diags, again, "f.yml")
		if df == nil && !diags.HasErrors() {
			t.Fatal("nil dataflow without an error")
		}
		if !diags.HasErrors() {
			roundTripDataflow(t, df)
		}
	})
}

func FuzzParseCluster(f *testing.F) {
	addFixtures(f, ".yml")
	for _, tt := range malformed {
		f.Add([]byte(tt.src))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, diags := ParseCluster(src, "c.yml")
		_, again := ParseCluster(src, "c.yml")
		checkDiags(t, src, diags, again, "c.yml")
		if c == nil && !diags.HasErrors() {
			t.Fatal("nil cluster without an error")
		}
		if !diags.HasErrors() {
			roundTripCluster(t, c)
		}
	})
}

// FuzzParseHCL feeds the same bytes to the HCL cluster and dataflow
// decoders.
func FuzzParseHCL(f *testing.F) {
	addFixtures(f, ".hcl")
	f.Add([]byte(`node "a" { path = format("%99999999d", 1) }`))
	f.Add([]byte(`machine "m" { count = 1e12 }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, diags := ParseCluster(src, "c.hcl")
		_, again := ParseCluster(src, "c.hcl")
		checkDiags(t, src, diags, again, "c.hcl")
		if c == nil && !diags.HasErrors() {
			t.Fatal("nil cluster without an error")
		}
		if !diags.HasErrors() {
			roundTripCluster(t, c)
		}
		df, diags := ParseDataflow(src, "d.hcl")
		_, again = ParseDataflow(src, "d.hcl")
		checkDiags(t, src, diags, again, "d.hcl")
		if df == nil && !diags.HasErrors() {
			t.Fatal("nil dataflow without an error")
		}
		if !diags.HasErrors() {
			roundTripDataflow(t, df)
		}
	})
}

func TestBoundedFormat(t *testing.T) {
	_, diags := ParseDataflow([]byte(`node "a" { path = format("%99999d", 1) }`), "d.hcl")
	if !strings.Contains(diags.Error(), "format widths are limited to 4 digits") {
		t.Fatalf("diagnostics:\n%v", diags)
	}
	df, diags := ParseDataflow([]byte(`node "a" { path = format("./bin-%03d", 7) }`), "d.hcl")
	if len(diags) > 0 || df.Nodes[0].Path != "./bin-007" {
		t.Fatalf("format broken: %v %v", diags, df)
	}
}

func TestHCLSizeLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("locals {\n  l0 = \"xxxxxxxxxxxxxxxx\"\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  l%d = \"${local.l%d}${local.l%d}\"\n", i, i-1, i-1)
	}
	b.WriteString("}\nnode \"a\" { path = local.l40 }\n")
	_, diags := ParseDataflow([]byte(b.String()), "d.hcl")
	if !strings.Contains(diags.Error(), "is too large") {
		t.Fatalf("doubling locals not stopped:\n%v", diags)
	}
	_, diags = ParseDataflow([]byte("locals {\n  x = [for i in range(1024) : [for j in range(1024) : j]]\n}\n"), "d.hcl")
	if !strings.Contains(diags.Error(), "d.hcl:2:31: error: for expressions must not be nested") {
		t.Fatalf("nested for not refused:\n%v", diags)
	}
}

func TestYAMLAliasExpansionLimit(t *testing.T) {
	// Each level doubles: 2^25 nodes from a few hundred bytes.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x]\n")
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	b.WriteString("nodes: *a25\n")
	_, diags := ParseDataflow([]byte(b.String()), "bomb.yml")
	if got := diags.Error(); !strings.Contains(got, "bomb.yml:1:1: error: the document expands to more than 1000000 YAML nodes") {
		t.Fatalf("alias bomb not refused:\n%s", got)
	}
}

func TestDiagnosticsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("nodes:\n")
	for i := 0; i < 2*MaxDiagnostics; i++ {
		fmt.Fprintf(&b, "  - id: n%d\n    path: ./n\n    inputs: {i: missing%d/o}\n", i, i)
	}
	_, diags := ParseDataflow([]byte(b.String()), "wide.yml")
	if len(diags) != MaxDiagnostics+1 || !diags.HasErrors() {
		t.Fatalf("got %d diagnostics", len(diags))
	}
	if last := diags[MaxDiagnostics].String(); !strings.Contains(last, "500 more problems not shown") {
		t.Fatalf("last = %s", last)
	}
}

func TestHCLFunctionBounds(t *testing.T) {
	tests := []struct{ src, want string }{
		{`locals {
  a = join("", [for i in range(1000) : "0123456789"])
  b = join("", [for i in range(1024) : local.a])
}
node "a" { path = "x" }`, `d.hcl:3:7: error: error in function call (Call to function "join" failed: arguments are too large`},
		{`locals {
  s = join("", [for i in range(1000) : "0123456789"])
}
node "a" { path = join(local.s, range(1000)) }`, `result would be too large`},
		{`locals {
  s = join("", [for i in range(1000) : "aaaaaaaaaa"])
}
node "a" { path = replace(local.s, "a", join("", [for i in range(200) : "b"])) }`, `result would be too large`},
	}
	for _, tt := range tests {
		_, diags := ParseDataflow([]byte(tt.src), "d.hcl")
		if !strings.Contains(diags.Error(), tt.want) {
			t.Errorf("diagnostics:\n%v\nwant %q", diags, tt.want)
		}
	}
	df, diags := ParseDataflow([]byte(`node "a" { path = replace(join("-", ["a", "b"]), "-", "/") }`), "d.hcl")
	if len(diags) > 0 || df.Nodes[0].Path != "a/b" {
		t.Fatalf("normal calls broken: %v", diags)
	}
}

// shellQuote quotes s for splitArgs in single quotes; a single quote inside
// becomes close quote, escaped quote, open quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// FuzzSplitArgs: whatever splitArgs accepts, quoting its words and
// splitting again gives the same words.
func FuzzSplitArgs(f *testing.F) {
	for _, s := range []string{"", "a b", `--name "hello world"`, `'x'\'' y'`, `a\ b "c\"d" 'e'`, "\t\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitArgs(s)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		again, err := splitArgs(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(words, again) && !(len(words) == 0 && len(again) == 0) {
			t.Fatalf("%q -> %q -> %q (%v)", s, words, again, err)
		}
	})
}
