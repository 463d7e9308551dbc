package plan

import (
	"fmt"
	"slices"
)

// DeltaItem is one difference between an approved plan and a fresh one.
type DeltaItem struct {
	Address string `json:"address"`
	// Was and Now are the change as approved and as planned now, in
	// words ("upgrade, wave 2"); "" when the plan has no change there.
	Was string `json:"was"`
	Now string `json:"now"`
}

// Delta compares a reviewed plan with a fresh one and returns, by
// address, every change that differs (action, wave or fields), so that
// only the delta needs reviewing again. No-op changes count as absent.
func Delta(approved, fresh *Plan) []DeltaItem {
	was, now := describeChanges(approved), describeChanges(fresh)
	addrs := make([]string, 0, len(was)+len(now))
	for a := range was {
		addrs = append(addrs, a)
	}
	for a := range now {
		if _, ok := was[a]; !ok {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	var out []DeltaItem
	for _, a := range addrs {
		if was[a] != now[a] {
			out = append(out, DeltaItem{Address: a, Was: was[a], Now: now[a]})
		}
	}
	return out
}

func describeChanges(p *Plan) map[string]string {
	out := map[string]string{}
	for _, c := range p.Changes {
		if c.Action == NoOp {
			continue
		}
		d := string(c.Action)
		if c.Wave > 0 {
			d += fmt.Sprintf(", wave %d", c.Wave)
		}
		for _, f := range c.Diffs {
			d += fmt.Sprintf("; %s: %s -> %s", f.Field, orNone(f.Before), orNone(f.After))
		}
		out[c.Address] = d
	}
	return out
}
