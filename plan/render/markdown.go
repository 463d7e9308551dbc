package render

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/adora-rs/adora/plan"
)

// GitHubCommentLimit is the largest body GitHub accepts for a comment.
const GitHubCommentLimit = 65536

// MarkdownMarker opens every Markdown plan (invisible on GitHub), so CI
// can find its previous plan comment and update it instead of adding one.
const MarkdownMarker = "<!-- adora-plan -->"

// Markdown renders p for a pull-request comment: the summary line first,
// a table of machine and dataflow changes, then drift and the full plan in
// collapsed sections. The result never exceeds limit bytes (limit <= 0:
// GitHubCommentLimit); what does not fit is cut and the cut is said.
func Markdown(p *plan.Plan, limit int) string {
	if limit <= 0 {
		limit = GitHubCommentLimit
	}
	const reserve = 400 // room for the closing of sections and the truncation note
	b := &budget{limit: limit - reserve}
	s := p.Summarize()
	b.write(MarkdownMarker + "\n### adora plan\n\n")
	if !p.HasChanges() {
		b.write("**No changes.** The fleet matches the configuration.")
		if s.Drift > 0 {
			fmt.Fprintf(b, " Drift: %d.", s.Drift)
		}
		b.write("\n\n")
	} else {
		fmt.Fprintf(b, "**%s**\n\n", SummaryLine(s))
	}
	if len(p.Waves) > 0 {
		fmt.Fprintf(b, "Rolling order: %d wave(s), %d machine(s) per wave.\n\n", len(p.Waves), p.Parallelism())
	}
	mdTable(b, p)
	if len(p.Drift) > 0 {
		fmt.Fprintf(b, "<details><summary>Drift (%d)</summary>\n\n", len(p.Drift))
		b.write("| Resource | Field | Recorded | Observed |\n|---|---|---|---|\n")
		for _, d := range p.Drift {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", d.Address, d.Field, cell(d.Recorded), cell(d.Observed))
		}
		b.write("\n</details>\n\n")
	}
	if p.HasChanges() {
		var full bytes.Buffer
		Human(&full, p, Options{})
		b.write("<details><summary>Full plan</summary>\n\n```diff\n")
		b.write(diffFriendly(full.String()))
		b.write("```\n\n</details>\n")
	}
	return b.finish(limit)
}

func mdTable(b *budget, p *plan.Plan) {
	rows := 0
	for _, c := range p.Changes {
		if c.Action == plan.NoOp || c.Kind == plan.KindNode {
			continue
		}
		if rows == 0 {
			b.write("| | Resource | Action | Wave | Reason |\n|---|---|---|---|---|\n")
		}
		wave := ""
		if c.Wave > 0 {
			wave = fmt.Sprint(c.Wave)
		}
		fmt.Fprintf(b, "| `%s` | `%s` | %s | %s | %s |\n", Symbol(c.Action), c.Address, c.Action, wave, cell(c.Reason))
		rows++
	}
	if rows > 0 {
		b.write("\n")
	}
}

// cell escapes a table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// diffFriendly moves each action symbol to the first column so GitHub's
// diff highlighting colours the line ("~" becomes "!", which diff
// highlighting knows), and escapes code fences.
func diffFriendly(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		t := strings.TrimLeft(l, " ")
		if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-") || strings.HasPrefix(t, "~") || strings.HasPrefix(t, "!") {
			sym := t[:1]
			if sym == "~" {
				sym = "!"
			}
			lines[i] = sym + l[:len(l)-len(t)] + t[1:]
		}
		lines[i] = strings.ReplaceAll(lines[i], "```", "'''")
	}
	return strings.Join(lines, "\n")
}

// budget is a writer that stops accepting text at limit bytes, cutting at
// a line boundary, and remembers how much it dropped.
type budget struct {
	buf     strings.Builder
	limit   int
	dropped int
}

func (b *budget) Write(p []byte) (int, error) { b.write(string(p)); return len(p), nil }

func (b *budget) write(s string) {
	if b.dropped > 0 {
		b.dropped += len(s)
		return
	}
	if b.buf.Len()+len(s) <= b.limit {
		b.buf.WriteString(s)
		return
	}
	room := b.limit - b.buf.Len()
	cut := strings.LastIndex(s[:max(room, 0)], "\n") + 1
	b.buf.WriteString(s[:cut])
	b.dropped = len(s) - cut
}

// finish closes any open code block and section and says what was cut.
func (b *budget) finish(limit int) string {
	if b.dropped == 0 {
		return b.buf.String()
	}
	out := b.buf.String()
	if strings.Count(out, "```")%2 == 1 {
		out += "```\n"
	}
	if strings.Count(out, "<details>") > strings.Count(out, "</details>") {
		out += "\n</details>\n"
	}
	out += fmt.Sprintf("\n> **Truncated:** %d characters of this plan did not fit in a comment. Run `adora show PLANFILE` or see the CI log for the full plan.\n", b.dropped)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}
