package keyexpr

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{"a", true}, {"a/b/c", true}, {"*", true}, {"**", true}, {"a/*/c", true},
		{"a/**/c", true}, {"*/**", true}, {"@a/b", true}, {"a/@b/c", true},
		{"adora/default/df/output/cam/image", true}, {"a-b_c.d/e:f", true},
		{"", false}, {"/a", false}, {"a/", false}, {"a//b", false}, {"a/b*", false},
		{"a/*b", false}, {"a/***", false}, {"**/**", false}, {"a/**/**/b", false},
		{"**/*", false}, {"a/**/*", false}, {"a#b", false}, {"a?b", false},
		{"a/$*", false}, {"@*", false}, {"@a*", false}, {"a/b$*", true},
		{"a/$*b", true}, {"a/x$*y$*z", true}, {"a/$*$*b", false}, {"a/$b", false}, {"@a$*", false},
	} {
		err := Check(tc.expr)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.expr, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) error does not wrap ErrInvalid", tc.expr)
		}
	}
}

func TestIntersects(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a/b/c", "a/b/c", true}, {"a/b/c", "a/b/d", false}, {"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/b/c", false}, {"a/**/c", "a/c", true}, {"a/**/c", "a/b/b/c", true},
		{"a/**", "a", true}, {"a/**", "b/a", false}, {"**", "a/b/c", true},
		{"*", "a/b", false}, {"*", "a", true}, {"a/*", "a/**", true}, {"*/b", "a/*", true},
		{"a/**/b/**/c", "a/x/b/y/c", true}, {"a/**/b/**/c", "a/c/b", false},
		{"a/*/**", "a", false}, {"a/*/**", "a/b", true},
		{"@a/b", "*/b", false}, {"@a/b", "**", false}, {"@a/b", "@a/*", true},
		{"a/@b", "a/**", false}, {"a/@b", "a/@b", true}, {"a/**/@b", "a/x/@b", true},
		{"**/@b", "@b", true}, {"a/**/@b", "a/@c/@b", false},
		{"adora/n/d/output/cam/**", "adora/n/d/output/cam/image/@ack", false},
		{"a/b$*", "a/bc", true}, {"a/b$*", "a/b", true}, {"a/b$*", "a/cb", false},
		{"a/b$*", "a/@b", false}, {"a/$*c", "a/b$*", true}, {"a/x$*y", "a/x$*z", false},
		{"a/$*-l$*", "a/cam-left", true}, {"a/$*-l$*", "a/cam-right", false}, {"a/b$*", "a/*", true},
		{"a/b$*/c", "a/**", true}, {"a/b$*", "**/bx", true},
	} {
		if got := Intersects(tc.a, tc.b); got != tc.want {
			t.Errorf("Intersects(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := Intersects(tc.b, tc.a); got != tc.want {
			t.Errorf("Intersects(%q, %q) = %v, want %v (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestIntersectsLongIsFast(t *testing.T) {
	// Memoisation keeps many '**' polynomial.
	a := strings.Repeat("**/x/", 40) + "y"
	b := strings.Repeat("x/", 200) + "z"
	if Intersects(a, b) {
		t.Fatal("want no intersection")
	}
}

func FuzzIntersects(f *testing.F) {
	f.Add("a/*/c", "a/**")
	f.Add("@a/**", "**/b")
	f.Fuzz(func(t *testing.T, a, b string) {
		if CheckRemote(a) != nil || CheckRemote(b) != nil {
			return
		}
		if Intersects(a, b) != Intersects(b, a) {
			t.Fatalf("not symmetric: %q %q", a, b)
		}
		if !Intersects(a, a) {
			t.Fatalf("%q does not intersect itself", a)
		}
		if !strings.HasPrefix(a, "@") && !strings.Contains(a, "/@") && !Intersects("**", a) {
			t.Fatalf("** does not match %q", a)
		}
	})
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a/b", "a/**/c", "a$*b/*", "@x/y", "a//b", "**/**"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Check(s) != nil {
			return
		}
		// canonical expressions have no empty chunk and intersect themselves
		if strings.Contains(s, "//") || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
			t.Fatalf("%q accepted", s)
		}
		if !Intersects(s, s) {
			t.Fatalf("%q does not intersect itself", s)
		}
	})
}
