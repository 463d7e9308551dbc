package remote

import (
	"os/exec"
	"strings"
	"testing"
)

var hostile = []string{
	"",
	"plain",
	"with space",
	"it's",
	"'",
	"''",
	`"double"`,
	"$(touch /tmp/adora-pwned)",
	"`id`",
	"a;rm -rf /",
	"x && y || z",
	"new\nline",
	"tab\there",
	"back\\slash",
	"$HOME",
	"${IFS}",
	"*",
	"~root",
	"-n",
	"--labels=a=b,c=d",
	"glob[ab]?",
	"unicode é ✓",
	"#comment",
	"a|b>c<d",
	"!bang",
	"'\\''",
}

// TestQuoteThroughShell feeds each quoted string to a real sh and checks
// that exactly the original string comes back as one argument.
func TestQuoteThroughShell(t *testing.T) {
	for _, s := range hostile {
		t.Run(s, func(t *testing.T) {
			cmd := "printf '%s\\0' " + Quote(s)
			out, err := exec.Command("sh", "-c", cmd).Output()
			if err != nil {
				t.Fatalf("sh -c %q: %v", cmd, err)
			}
			if got := string(out); got != s+"\x00" {
				t.Fatalf("Quote(%q) = %s; shell saw %q", s, Quote(s), got)
			}
		})
	}
}

func TestCommandKeepsWordsApart(t *testing.T) {
	words := []string{"printf", "%s\\0", "a b", "c;d", "'e'", ""}
	out, err := exec.Command("sh", "-c", Command(words...)).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "a b\x00c;d\x00'e'\x00\x00"
	if string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// unquote is a minimal POSIX reader for the subset Quote produces.
func unquote(q string) (string, bool) {
	if isPlain(q) && q != "" {
		return q, true
	}
	var b strings.Builder
	in := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			in = !in
		case in:
			b.WriteByte(c)
		case c == '\\' && i+1 < len(q):
			i++
			b.WriteByte(q[i])
		default:
			return "", false
		}
	}
	return b.String(), !in
}

func FuzzQuote(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		got, ok := unquote(q)
		if !ok || got != s {
			t.Fatalf("Quote(%q) = %q reads back as %q (ok=%v)", s, q, got, ok)
		}
	})
}

func TestValidWordAndHost(t *testing.T) {
	for _, tc := range []struct {
		s        string
		word, ho bool
	}{
		{"robot", true, true},
		{"gpu-server.1_a", true, true},
		{"10.77.1.2", true, true},
		{"::1", false, true},
		{"", false, false},
		{"-oProxyCommand=x", false, false},
		{"a b", false, false},
		{"a;b", false, false},
		{".hidden", false, true},
		{"$(id)", false, false},
	} {
		if err := ValidWord("id", tc.s); (err == nil) != tc.word {
			t.Errorf("ValidWord(%q) = %v, want ok=%v", tc.s, err, tc.word)
		}
		if err := ValidHost("host", tc.s); (err == nil) != tc.ho {
			t.Errorf("ValidHost(%q) = %v, want ok=%v", tc.s, err, tc.ho)
		}
	}
}
