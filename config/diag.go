package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Severity says whether a Diagnostic blocks loading. The zero value is Error,
// so a Diagnostic built without a severity is never mistaken for a warning.
type Severity int

const (
	Error Severity = iota
	Warning
)

// MarshalText renders s as "error" or "warning" (in JSON too).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses "error" or "warning".
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = Error
	case "warning":
		*s = Warning
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a configuration file, with the position
// a user must look at. Summary says what is wrong; Detail, when set, is a
// short hint on what to do (for example `did you mean "robot"?`).
type Diagnostic struct {
	Pos      Pos      `json:"pos"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Detail   string   `json:"detail,omitempty"`
}

// String renders d as `file:line:col: error: summary (detail)`. Unknown parts
// of the position are left out.
func (d Diagnostic) String() string {
	var b strings.Builder
	if p := d.Pos.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(" (")
		b.WriteString(d.Detail)
		b.WriteString(")")
	}
	return b.String()
}

// String renders p as file:line:col, leaving out unknown parts.
func (p Pos) String() string {
	var parts []string
	if p.File != "" {
		parts = append(parts, p.File)
	}
	if p.Line > 0 {
		parts = append(parts, strconv.Itoa(p.Line))
		if p.Col > 0 {
			parts = append(parts, strconv.Itoa(p.Col))
		}
	}
	return strings.Join(parts, ":")
}

// Diagnostics is every problem found while loading or checking a
// configuration, in the order found. It is also an error (see Err).
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic has Severity Error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns the error diagnostics as an error, or nil when there are none.
// Warnings alone never make an error.
func (ds Diagnostics) Err() error {
	var errs Diagnostics
	for _, d := range ds {
		if d.Severity == Error {
			errs = append(errs, d)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Error renders one diagnostic per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Warnings returns only the warnings of ds.
func (ds Diagnostics) Warnings() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == Warning {
			out = append(out, d)
		}
	}
	return out
}

func (ds *Diagnostics) errorf(p Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: p, Severity: Error, Summary: fmt.Sprintf(format, args...)})
}

func (ds *Diagnostics) warnf(p Pos, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: p, Severity: Warning, Summary: fmt.Sprintf(format, args...)})
}

// hintf adds an error with a hint (rendered in parentheses).
func (ds *Diagnostics) hintf(p Pos, hint string, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Pos: p, Severity: Error, Summary: fmt.Sprintf(format, args...), Detail: hint})
}

// MaxDiagnostics bounds how many diagnostics one file reports; the rest are
// counted in a final error.
const MaxDiagnostics = 500

// capped keeps the first MaxDiagnostics of ds and counts the rest.
func (ds Diagnostics) capped() Diagnostics {
	if len(ds) <= MaxDiagnostics {
		return ds
	}
	out := append(Diagnostics(nil), ds[:MaxDiagnostics]...)
	rest := ds[MaxDiagnostics:]
	more := Diagnostic{Pos: rest[0].Pos, Severity: Warning, Summary: fmt.Sprintf("%d more problems not shown; fix the ones above first", len(rest))}
	if rest.HasErrors() {
		more.Severity = Error
	}
	return append(out, more)
}
