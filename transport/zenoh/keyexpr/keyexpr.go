// Package keyexpr implements Zenoh key expressions: the canonical-form
// check and intersection with the wildcards `*` (exactly one chunk), `**`
// (any number of chunks, including none) and `$*` (any run of characters
// inside one chunk, as in `img$*` or `$*-left`).
//
// A key expression is a '/'-separated list of non-empty chunks. A chunk
// that starts with '@' is verbatim: wildcards never match it, only the
// identical chunk does.
package keyexpr

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error Check returns.
var ErrInvalid = errors.New("invalid key expression")

// Check reports whether s is a canonical key expression: no empty chunk,
// no leading or trailing '/', no '#' or '?', '*' only as a whole chunk
// (`*` or `**`) or as `$*` inside a chunk, '$' only in `$*`, no `$*$*`,
// no chunk that is just `$*` (write `*`), no `**/**` (write `**`), no
// `**/*` (write `*/**`), and no wildcard in a verbatim '@' chunk.
func Check(s string) error {
	if err := check(s); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalid, s, err.Error())
	}
	return nil
}

// CheckRemote is Check; it is kept for expressions received from peers.
func CheckRemote(s string) error { return Check(s) }

func check(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, "#?") {
		return errors.New("'#' and '?' are not allowed")
	}
	prev := ""
	for i, rest, more := 0, s, true; more; i++ {
		var c string
		c, rest, more = strings.Cut(rest, "/")
		if err := checkChunk(c, i); err != nil {
			return err
		}
		if prev == "**" && c == "**" {
			return errors.New("'**/**' is not canonical, write '**'")
		}
		if prev == "**" && c == "*" {
			return errors.New("'**/*' is not canonical, write '*/**'")
		}
		prev = c
	}
	return nil
}

func checkChunk(c string, i int) error {
	switch {
	case c == "":
		return fmt.Errorf("chunk %d is empty (no leading, trailing or double '/')", i+1)
	case c == "*" || c == "**":
		return nil
	case c[0] == '@' && strings.ContainsAny(c, "*$"):
		return fmt.Errorf("verbatim chunk %q cannot hold wildcards", c)
	}
	rest := strings.ReplaceAll(c, "$*", "\x00")
	if strings.ContainsAny(rest, "*$") {
		return fmt.Errorf("chunk %q: '*' stands alone ('*', '**') or follows '$' ('$*'); '$' only in '$*'", c)
	}
	if rest == "\x00" {
		return fmt.Errorf("chunk %q is not canonical, write '*'", c)
	}
	if strings.Contains(rest, "\x00\x00") {
		return fmt.Errorf("chunk %q is not canonical, write one '$*'", c)
	}
	return nil
}

// IsWild reports whether s holds a wildcard.
func IsWild(s string) bool { return strings.Contains(s, "*") }

// Intersects reports whether some key matches both expressions. Both
// must pass CheckRemote; the result for other strings is unspecified.
func Intersects(a, b string) bool {
	if a == b {
		return true
	}
	if !IsWild(a) && !IsWild(b) {
		return false
	}
	ca, cb := strings.Split(a, "/"), strings.Split(b, "/")
	m := matcher{a: ca, b: cb, memo: make([]int8, (len(ca)+1)*(len(cb)+1))}
	return m.run(0, 0)
}

type matcher struct {
	a, b []string
	memo []int8 // 0 unknown, 1 true, 2 false
}

func (m *matcher) run(i, j int) bool {
	k := i*(len(m.b)+1) + j
	if m.memo[k] != 0 {
		return m.memo[k] == 1
	}
	r := m.step(i, j)
	m.memo[k] = 2
	if r {
		m.memo[k] = 1
	}
	return r
}

func (m *matcher) step(i, j int) bool {
	a, b := m.a, m.b
	if i == len(a) && j == len(b) {
		return true
	}
	if i < len(a) && a[i] == "**" {
		if m.run(i+1, j) || (j < len(b) && !verbatim(b[j]) && m.run(i, j+1)) {
			return true
		}
	}
	if j < len(b) && b[j] == "**" {
		if m.run(i, j+1) || (i < len(a) && !verbatim(a[i]) && m.run(i+1, j)) {
			return true
		}
	}
	if i == len(a) || j == len(b) || a[i] == "**" || b[j] == "**" {
		return false
	}
	return chunkIntersects(a[i], b[j]) && m.run(i+1, j+1)
}

func verbatim(c string) bool { return c != "" && c[0] == '@' }

func chunkIntersects(x, y string) bool {
	if x == y {
		return true
	}
	if verbatim(x) || verbatim(y) {
		return false
	}
	if x == "*" || y == "*" {
		return true
	}
	if !strings.Contains(x, "$*") && !strings.Contains(y, "$*") {
		return false
	}
	return globIntersects(tokens(x), tokens(y))
}

// star stands for `$*` in a tokenised chunk.
const star = -1

func tokens(c string) []int {
	t := make([]int, 0, len(c))
	for i := 0; i < len(c); i++ {
		if c[i] == '$' && i+1 < len(c) && c[i+1] == '*' {
			t = append(t, star)
			i++
			continue
		}
		t = append(t, int(c[i]))
	}
	return t
}

// globIntersects reports whether some string matches both patterns, where
// star matches any run of bytes (dynamic programming over both).
func globIntersects(p, q []int) bool {
	memo := make([]int8, (len(p)+1)*(len(q)+1))
	var run func(i, j int) bool
	run = func(i, j int) bool {
		k := i*(len(q)+1) + j
		if memo[k] != 0 {
			return memo[k] == 1
		}
		r := false
		switch {
		case i == len(p) && j == len(q):
			r = true
		case i < len(p) && p[i] == star:
			r = run(i+1, j) || (j < len(q) && run(i, j+1))
		case j < len(q) && q[j] == star:
			r = run(i, j+1) || (i < len(p) && run(i+1, j))
		case i < len(p) && j < len(q):
			r = p[i] == q[j] && run(i+1, j+1)
		}
		memo[k] = 2
		if r {
			memo[k] = 1
		}
		return r
	}
	return run(0, 0)
}
