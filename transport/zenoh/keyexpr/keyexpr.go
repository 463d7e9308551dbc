// Package keyexpr implements Zenoh key expressions: the canonical-form
// check and intersection with the wildcards `*` (exactly one chunk) and
// `**` (any number of chunks, including none).
//
// A key expression is a '/'-separated list of non-empty chunks. A chunk
// that starts with '@' is verbatim: wildcards never match it, only the
// identical chunk does. The sub-chunk wildcard `$*` is accepted in
// expressions received from peers (it is then matched conservatively, as
// if the chunk were `*`), but refused in local subscriptions and
// publications, which is what Check enforces.
package keyexpr

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error Check returns.
var ErrInvalid = errors.New("invalid key expression")

// Check reports whether s is a canonical key expression we accept: no
// empty chunk, no leading or trailing '/', no '#' or '?', '*' only as a
// whole chunk `*` or `**`, no `**/**` (write `**`), no `**/*` (write
// `*/**`), no wildcard inside a verbatim '@' chunk, and no '$'.
func Check(s string) error {
	if err := check(s, false); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalid, s, err.Error())
	}
	return nil
}

// CheckRemote is Check, but allows `$*` inside chunks as Zenoh does.
func CheckRemote(s string) error {
	if err := check(s, true); err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalid, s, err.Error())
	}
	return nil
}

func check(s string, dollar bool) error {
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
		if err := checkChunk(c, i, dollar); err != nil {
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

func checkChunk(c string, i int, dollar bool) error {
	switch {
	case c == "":
		return fmt.Errorf("chunk %d is empty (no leading, trailing or double '/')", i+1)
	case c == "*" || c == "**":
		return nil
	case c[0] == '@' && strings.ContainsAny(c, "*$"):
		return fmt.Errorf("verbatim chunk %q cannot hold wildcards", c)
	}
	if !dollar {
		if strings.ContainsAny(c, "*$") {
			return fmt.Errorf("chunk %q: '*' must be a whole chunk ('*' or '**'); '$' is not supported", c)
		}
		return nil
	}
	rest := strings.ReplaceAll(c, "$*", "\x00")
	if strings.ContainsAny(rest, "*$") {
		return fmt.Errorf("chunk %q: '*' and '$' only as '$*'", c)
	}
	if strings.Contains(rest, "\x00\x00") || rest == "\x00" {
		return fmt.Errorf("chunk %q is not canonical", c)
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
	// '*' matches any chunk; a '$*' chunk is matched conservatively.
	return x == "*" || y == "*" || strings.Contains(x, "$*") || strings.Contains(y, "$*")
}
