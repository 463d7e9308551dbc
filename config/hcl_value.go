package config

// Conversions from evaluated HCL values to the model's Go types, each
// reporting a diagnostic at the value's position when the type is wrong.

import (
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// MaxValueSize bounds the size of any evaluated HCL value (elements plus
// string bytes), so expressions that double a value line after line stop
// early instead of exhausting memory.
const MaxValueSize = 1 << 20

// valueSize returns the size of v, stopping once it passes limit.
func valueSize(v cty.Value, limit int) int {
	if v.IsNull() || !v.IsKnown() {
		return 1
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return 1 + len(v.AsString())
	case ty.IsListType() || ty.IsSetType() || ty.IsMapType() || ty.IsTupleType() || ty.IsObjectType():
		n := 1
		for it := v.ElementIterator(); it.Next() && n <= limit; {
			k, e := it.Element()
			n += valueSize(k, limit-n) + valueSize(e, limit-n)
		}
		return n
	}
	return 1
}

func (d *hclDecoder) toStr(v cty.Value, p Pos, what string) (string, bool) {
	if v.IsNull() {
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() {
		d.diags.errorf(p, "%s must be a string, not %s", what, v.Type().FriendlyName())
		return "", false
	}
	return s.AsString(), true
}

func (d *hclDecoder) toInt(v cty.Value, p Pos, what string, lo, hi int64) (int, bool) {
	if v.IsNull() {
		d.diags.errorf(p, "%s must be an integer, not null", what)
		return 0, false
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil || n.IsNull() {
		d.diags.errorf(p, "%s must be an integer, not %s", what, v.Type().FriendlyName())
		return 0, false
	}
	bf := n.AsBigFloat()
	i, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || i < lo || i > hi {
		d.diags.errorf(p, "%s must be an integer between %d and %d, not %s", what, lo, hi, bf.Text('g', 10))
		return 0, false
	}
	return int(i), true
}

func (d *hclDecoder) toBool(v cty.Value, p Pos, what string) (bool, bool) {
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || b.IsNull() {
		d.diags.errorf(p, "%s must be true or false, not %s", what, v.Type().FriendlyName())
		return false, false
	}
	return b.True(), true
}

func (d *hclDecoder) toDuration(v cty.Value, p Pos, what string) (time.Duration, bool) {
	var dur time.Duration
	var err error
	switch {
	case v.IsNull():
		return 0, false
	case v.Type() == cty.Number:
		f, _ := v.AsBigFloat().Float64()
		if math.IsInf(f, 0) {
			err = fmt.Errorf("%v seconds is too long", v.AsBigFloat().Text('g', 10))
		} else {
			dur, err = secondsDuration(f)
		}
	case v.Type() == cty.String:
		dur, err = parseDuration(v.AsString(), false)
	default:
		err = fmt.Errorf("must be seconds or a duration such as \"500ms\", not %s", v.Type().FriendlyName())
	}
	if err != nil {
		d.diags.hintf(p, "write seconds such as 1.5 or a duration such as \"500ms\"", "%s: %v", what, err)
		return 0, false
	}
	return dur, true
}

// toStringMap converts a map or object of strings. at holds the position
// of each key when known; p is used otherwise.
func (d *hclDecoder) toStringMap(v cty.Value, p Pos, at map[string]Pos, what string, checkKey, checkValue func(string) error) map[string]string {
	if v.IsNull() {
		return nil
	}
	ty := v.Type()
	if !ty.IsMapType() && !ty.IsObjectType() {
		d.diags.errorf(p, "%s must be a map, not %s", what, ty.FriendlyName())
		return nil
	}
	out := make(map[string]string)
	for it := v.ElementIterator(); it.Next(); {
		k, val := it.Element()
		key := k.AsString()
		kp, ok := at[key]
		if !ok {
			kp = p
		}
		if checkKey != nil {
			if err := checkKey(key); err != nil {
				d.diags.errorf(kp, "%s: %v", what, err)
				continue
			}
		}
		s := ""
		if !val.IsNull() {
			if s, ok = d.toStr(val, kp, fmt.Sprintf("%s value of %q", what, key)); !ok {
				continue
			}
		}
		if checkValue != nil {
			if err := checkValue(s); err != nil {
				d.diags.errorf(kp, "%s: %v", what, err)
				continue
			}
		}
		out[key] = s
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// toStringList converts a list, tuple or set of strings.
func (d *hclDecoder) toStringList(v cty.Value, p Pos, what string) []string {
	if v.IsNull() {
		return nil
	}
	ty := v.Type()
	if !ty.IsListType() && !ty.IsTupleType() && !ty.IsSetType() {
		d.diags.errorf(p, "%s must be a list, not %s", what, ty.FriendlyName())
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, val := it.Element()
		if val.IsNull() {
			d.diags.errorf(p, "%s: an entry must not be null", what)
			continue
		}
		if s, ok := d.toStr(val, p, what+" entry"); ok {
			out = append(out, s)
		}
	}
	return out
}
