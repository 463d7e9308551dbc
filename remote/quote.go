// Package remote owns adora's reach into the machines of a fleet: SSH and
// SFTP sessions (batch mode, known_hosts with accept-new semantics), local
// execution for the machine adora runs on, remote command quoting, atomic
// file installation (temp path, fsync, checksum, rename), systemd unit
// rendering, and the machine operations the cluster commands and the apply
// executor call: install, uninstall, upgrade and observe a daemon, start and
// stop an ad hoc daemon, push a node artifact.
//
// Remote commands are only ever built from values that passed a validation
// (ValidWord, ValidHost) and are shell-quoted with Quote. Secrets (the
// coordinator token) travel as file contents over SFTP or stdin, never on a
// command line, and never appear in errors or logs.
package remote

import (
	"fmt"
	"strings"
)

// Quote returns s as one POSIX shell word: wrapped in single quotes, with
// every embedded single quote written as '\”. The result is safe to
// concatenate into a command line for sh, bash and dash.
func Quote(s string) string {
	if s != "" && isPlain(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isPlain reports whether s needs no quoting at all.
func isPlain(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '-' || r == '_' || r == '.' || r == '/' || r == '=' || r == ':' || r == ',' || r == '@' || r == '+') {
			return false
		}
	}
	return true
}

// Command joins words into a command line, quoting each one.
func Command(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// ValidWord reports an error unless s is a non-empty identifier made of
// letters, digits, '_', '.' and '-' (not starting with '-' or '.'): the
// character set of machine ids and label keys/values that end up in unit
// names, file names and daemon flags.
func ValidWord(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > 128 {
		return fmt.Errorf("%s %q is longer than 128 characters", what, s[:32]+"...")
	}
	if s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("%s %q must not start with %q", what, s, s[0])
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return fmt.Errorf("%s %q contains %q: use letters, digits, '_', '.' and '-'", what, s, r)
		}
	}
	return nil
}

// ValidHost reports an error unless s looks like a host name, an IPv4 or an
// IPv6 address (no spaces, quotes or shell metacharacters).
func ValidHost(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if s[0] == '-' {
		return fmt.Errorf("%s %q must not start with '-'", what, s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':' || r == '_' || r == '[' || r == ']') {
			return fmt.Errorf("%s %q contains %q: want a host name or an IP address", what, s, r)
		}
	}
	return nil
}
