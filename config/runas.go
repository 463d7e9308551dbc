package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// MaxUserNameLength is the longest user name run_as accepts (the limit of
// useradd).
const MaxUserNameLength = 32

// ValidUserName checks s as the user a daemon runs as (run_as): 1 to 32
// characters from the POSIX portable set (letters, digits, '_', '.' and
// '-'), starting with a letter or '_'. So it is never empty, an option, a
// number systemd would take for a uid, a path, or anything a unit file or
// a shell would interpret.
func ValidUserName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("user name must not be empty")
	case len(s) > MaxUserNameLength:
		return fmt.Errorf("user name %q is longer than %d characters", s, MaxUserNameLength)
	}
	for i, r := range s {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_'
		if i == 0 && !letter {
			return fmt.Errorf("user name %q must start with a letter or '_'", s)
		}
		if !letter && !(r >= '0' && r <= '9') && r != '.' && r != '-' {
			return fmt.Errorf("user name %q contains %q; only letters, digits, '_', '.' and '-' are allowed", s, r)
		}
	}
	return nil
}

// runAsHint says what run_as accepts.
const runAsHint = "name a user that exists on the machine, or root; remove run_as to run as the SSH user"

// runAs checks the run_as value s of machine what, found at p, and returns
// it ("" when it is not valid).
func (ds *Diagnostics) runAs(s string, p Pos, what string) string {
	if err := ValidUserName(s); err != nil {
		ds.hintf(p, runAsHint, "%s: run_as: %v", what, err)
		return ""
	}
	return s
}

// runAs decodes a machine's run_as; null is reported like "".
func (d *yamlDecoder) runAs(v *yaml.Node, what string) string {
	s, ok := d.str(v, what+": run_as")
	if !ok && !isNull(resolve(v)) {
		return ""
	}
	return d.diags.runAs(s, d.pos(v), what)
}
