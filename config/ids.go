package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/agext/levenshtein"
)

// MaxIDLength is the longest id ValidID accepts. Ids become parts of systemd
// unit names and host names, where 63 is the usual limit.
const MaxIDLength = 63

// ValidID checks that s is a safe identifier: 1 to 63 characters from
// [A-Za-z0-9_.-], not starting with '-' or '.'. Machine ids, node ids,
// dataflow names and label keys must be valid ids, because they end up in
// unit names, file names and remote commands. kind names the identifier in
// the error ("machine id", "label key", ...).
func ValidID(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%s must not be empty", kind)
	}
	if len(s) > MaxIDLength {
		return fmt.Errorf("%s %q is %d characters long; the limit is %d", kind, s, len(s), MaxIDLength)
	}
	if s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("%s %q must not start with %q", kind, s, s[0])
	}
	for _, r := range s {
		if !idChar(r) {
			return fmt.Errorf("%s %q contains %q; only letters, digits, '_', '.' and '-' are allowed", kind, s, r)
		}
	}
	return nil
}

// ValidLabelValue checks a label value: empty, or a string ValidID accepts.
// Empty values are allowed so a label can be a plain flag (gpu: "").
func ValidLabelValue(s string) error {
	if s == "" {
		return nil
	}
	return ValidID("label value", s)
}

func idChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}

// validDataID checks an output or input id: like ValidID, and '/' may
// separate non-empty parts.
func validDataID(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%s must not be empty", kind)
	}
	for _, part := range strings.Split(s, "/") {
		if part == "" {
			return fmt.Errorf("%s %q must not start or end with '/' or contain '//'", kind, s)
		}
		if err := ValidID(kind, part); err != nil {
			return err
		}
	}
	return nil
}

// validHost accepts an IP address or a host name (letters, digits, '-', '.',
// '_'), never starting with '-' so it cannot be read as an ssh option.
func validHost(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%s must not be empty", kind)
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if len(s) > 253 {
		return fmt.Errorf("%s %q is longer than 253 characters", kind, s)
	}
	if s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("%s %q must not start with %q", kind, s, s[0])
	}
	for _, r := range s {
		if !idChar(r) {
			return fmt.Errorf("%s %q contains %q; use an IP address or a host name", kind, s, r)
		}
	}
	return nil
}

// validUser accepts an ssh user name; empty means the default user.
func validUser(s string) error {
	if s == "" {
		return nil
	}
	if s[0] == '-' {
		return fmt.Errorf("ssh user %q must not start with '-'", s)
	}
	for _, r := range s {
		if !idChar(r) && r != '@' && r != '\\' {
			return fmt.Errorf("ssh user %q contains %q", s, r)
		}
	}
	return nil
}

// maxSuggestCandidates bounds the work of one did-you-mean.
const maxSuggestCandidates = 256

// didYouMean returns the candidate closest to s, or "" when none is close
// enough to be a likely typo.
func didYouMean(s string, candidates []string) string {
	if len(candidates) > maxSuggestCandidates || len(s) > MaxIDLength*2 {
		return ""
	}
	best, bestDist := "", -1
	for _, c := range candidates {
		d := levenshtein.Distance(s, c, nil)
		if bestDist < 0 || d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 {
		return ""
	}
	limit := len(s) / 3
	if limit < 2 {
		limit = 2
	}
	if bestDist > limit || bestDist >= len(s) && len(s) > 0 {
		return ""
	}
	return best
}

// suggest renders a did-you-mean hint, or "" when nothing is close.
func suggest(s string, candidates []string) string {
	if m := didYouMean(s, candidates); m != "" {
		return fmt.Sprintf("did you mean %q?", m)
	}
	return ""
}

// FormatLabels renders labels the way the guide's error messages do:
// {"gpu": "true", "arch": "arm64"} with keys sorted.
func FormatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(k))
		b.WriteString(": ")
		b.WriteString(strconv.Quote(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}
