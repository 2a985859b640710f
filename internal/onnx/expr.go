package onnx

import (
	"sort"
	"strconv"
	"strings"
)

// Symbolic dimension expressions. A dimension derived from symbols (the sum
// of a past and a new sequence length, the product of batch and sequence
// after a flattening reshape) is named by a canonical polynomial such as
// "past_len + seq" or "batch*seq", so that two values computed the same way
// get the same name and equal names keep meaning equal sizes.

// poly maps a monomial (its symbols sorted and joined by "*"; "" for the
// constant term) to its coefficient.
type poly map[string]int64

func constPoly(c int64) poly { return poly{"": c} }

// polyOfDim reads a dimension as a polynomial; false for unknown dims.
func polyOfDim(d Dim) (poly, bool) {
	switch {
	case d.Static():
		return constPoly(d.Value), true
	case d.Param == "":
		return nil, false
	}
	if p, ok := parsePoly(d.Param); ok {
		return p, true
	}
	return poly{d.Param: 1}, true
}

// parsePoly parses the canonical form written by poly.String. Names that
// do not fit the grammar are atoms.
func parsePoly(s string) (poly, bool) {
	if !strings.ContainsAny(s, "+*") && !strings.Contains(s, " - ") {
		return nil, false
	}
	p := poly{}
	sign := int64(1)
	for i, tok := range strings.Split(s, " ") {
		if i%2 == 1 {
			switch tok {
			case "+":
				sign = 1
			case "-":
				sign = -1
			default:
				return nil, false
			}
			continue
		}
		coef := sign
		var syms []string
		for _, f := range strings.Split(tok, "*") {
			if f == "" {
				return nil, false
			}
			if n, err := strconv.ParseInt(f, 10, 64); err == nil {
				coef *= n
				continue
			}
			if !isAtom(f) {
				return nil, false
			}
			syms = append(syms, f)
		}
		sort.Strings(syms)
		p[strings.Join(syms, "*")] += coef
	}
	return p.clean(), true
}

func isAtom(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r == ':' || r == '/' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func (p poly) clean() poly {
	for k, v := range p {
		if v == 0 {
			delete(p, k)
		}
	}
	return p
}

func (p poly) add(q poly, sign int64) poly {
	out := poly{}
	for k, v := range p {
		out[k] += v
	}
	for k, v := range q {
		out[k] += sign * v
	}
	return out.clean()
}

func (p poly) mul(q poly) poly {
	out := poly{}
	for a, x := range p {
		for b, y := range q {
			out[joinMonomials(a, b)] += x * y
		}
	}
	return out.clean()
}

func joinMonomials(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	f := append(strings.Split(a, "*"), strings.Split(b, "*")...)
	sort.Strings(f)
	return strings.Join(f, "*")
}

// div divides by a single term (coefficient times monomial) when every term
// of p is divisible by it.
func (p poly) div(q poly) (poly, bool) {
	if len(q) != 1 {
		if len(p) == len(q) && p.add(q, -1).isZero() {
			return constPoly(1), true
		}
		return nil, false
	}
	var qm string
	var qc int64
	for k, v := range q {
		qm, qc = k, v
	}
	if qc == 0 {
		return nil, false
	}
	out := poly{}
	for k, v := range p {
		if v%qc != 0 {
			return nil, false
		}
		rest, ok := removeFactors(k, qm)
		if !ok {
			return nil, false
		}
		out[rest] += v / qc
	}
	return out.clean(), true
}

func (p poly) isZero() bool { return len(p.clean()) == 0 }

// removeFactors removes the symbols of monomial m from monomial k.
func removeFactors(k, m string) (string, bool) {
	if m == "" {
		return k, true
	}
	if k == "" {
		return "", false
	}
	have := strings.Split(k, "*")
	for _, f := range strings.Split(m, "*") {
		i := sort.SearchStrings(have, f)
		if i >= len(have) || have[i] != f {
			return "", false
		}
		have = append(have[:i], have[i+1:]...)
	}
	return strings.Join(have, "*"), true
}

// String is the canonical form: higher-degree terms first, then by name,
// the constant last; "a + b", "2*a*b - 1".
func (p poly) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	degree := func(k string) int {
		if k == "" {
			return 0
		}
		return strings.Count(k, "*") + 1
	}
	sort.Slice(keys, func(i, j int) bool {
		di, dj := degree(keys[i]), degree(keys[j])
		if di != dj {
			return di > dj
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		c := p[k]
		switch {
		case i == 0 && c < 0:
			b.WriteString("-")
			c = -c
		case i > 0 && c < 0:
			b.WriteString(" - ")
			c = -c
		case i > 0:
			b.WriteString(" + ")
		}
		switch {
		case k == "":
			b.WriteString(strconv.FormatInt(c, 10))
		case c == 1:
			b.WriteString(k)
		default:
			b.WriteString(strconv.FormatInt(c, 10) + "*" + k)
		}
	}
	return b.String()
}

// dim turns a polynomial into a dimension: static when constant, the symbol
// itself for a lone symbol, else a symbol named by the canonical form. A
// negative constant (an invalid size) gives an unknown dimension.
func (p poly) dim() Dim {
	p = p.clean()
	if len(p) == 0 {
		return D(0)
	}
	if c, ok := p[""]; ok && len(p) == 1 {
		if c < 0 {
			return unknownDim
		}
		return D(c)
	}
	if len(p) == 1 {
		for k, v := range p {
			if v == 1 && !strings.Contains(k, "*") {
				return Sym(k)
			}
		}
	}
	if len(p) == 1 {
		for _, v := range p {
			if v < 0 {
				return unknownDim
			}
		}
	}
	return Sym(p.String())
}

// dimArith combines two dimensions: op is '+', '-', '*' or '/'. unknownDim
// dimensions and inexact divisions give unknownDim.
func dimArith(a Dim, op byte, b Dim) Dim {
	pa, ok1 := polyOfDim(a)
	pb, ok2 := polyOfDim(b)
	if !ok1 || !ok2 {
		return unknownDim
	}
	switch op {
	case '+':
		return pa.add(pb, 1).dim()
	case '-':
		return pa.add(pb, -1).dim()
	case '*':
		return pa.mul(pb).dim()
	case '/':
		if q, ok := pa.div(pb); ok {
			return q.dim()
		}
	}
	return unknownDim
}

// dimProduct multiplies dimensions.
func dimProduct(dims []Dim) Dim {
	out := D(1)
	for _, d := range dims {
		out = dimArith(out, '*', d)
		if !out.Static() && out.Param == "" {
			return unknownDim
		}
	}
	return out
}

// Eval computes the size of a dimension given the sizes of the symbols it
// is made of (for example the input sizes of a run). ok is false when a
// symbol has no size or the dimension is unknown.
func (d Dim) Eval(sizes map[string]int64) (int64, bool) {
	if d.Static() {
		return d.Value, true
	}
	if v, ok := sizes[d.Param]; ok {
		return v, true
	}
	p, ok := polyOfDim(d)
	if !ok {
		return 0, false
	}
	var total int64
	for mono, c := range p {
		term := c
		if mono != "" {
			for _, f := range strings.Split(mono, "*") {
				v, ok := sizes[f]
				if !ok {
					return 0, false
				}
				term *= v
			}
		}
		total += term
	}
	return total, true
}
