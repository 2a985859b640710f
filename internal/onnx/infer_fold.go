package onnx

import (
	"math"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Folding of small integer computations on shapes: enough to follow the
// Shape -> Gather -> Unsqueeze -> Concat -> Reshape/Expand chains that
// exporters emit, with symbolic dimensions carried through.

func (inf *inferer) foldUnary(n *onnxpb.NodeProto) {
	v, ok := inf.valsOf(n, 0)
	if !ok {
		return
	}
	out := make([]sv, len(v))
	for i, e := range v {
		switch {
		case n.GetOpType() == "Identity":
			out[i] = e
		case !e.ok:
			if n.GetOpType() == "Abs" && e.sym != "" {
				out[i] = e // dimensions are never negative
			}
		case n.GetOpType() == "Neg":
			out[i] = num(-e.v)
		default:
			out[i] = num(abs64(e.v))
		}
	}
	inf.vals[n.Output[0]] = out
	if f, ok := inf.fvals[inName(n, 0)]; ok && n.GetOpType() == "Identity" {
		inf.fvals[n.Output[0]] = f
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func (inf *inferer) foldNot(n *onnxpb.NodeProto) {
	v, ok := inf.valsOf(n, 0)
	if !ok {
		return
	}
	out := make([]sv, len(v))
	for i, e := range v {
		if e.ok {
			out[i] = num(b2i(e.v == 0))
		}
	}
	inf.vals[n.Output[0]] = out
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (inf *inferer) foldCast(n *onnxpb.NodeProto) {
	to := DType(AttrIntOr(n, "to", 0))
	if n.GetOpType() == "CastLike" {
		t, _ := inf.in(n, 1)
		to = t.Elem
	}
	if v, ok := inf.valsOf(n, 0); ok {
		switch to {
		case Int64, Int32, Int16, Int8, Uint8, Uint16, Uint32, Uint64:
			inf.vals[n.Output[0]] = v
		case Bool:
			out := make([]sv, len(v))
			for i, e := range v {
				if e.ok {
					out[i] = num(b2i(e.v != 0))
				}
			}
			inf.vals[n.Output[0]] = out
		default:
			if IsFloat(to) {
				f := make([]float64, len(v))
				for i, e := range v {
					if !e.ok {
						return
					}
					f[i] = float64(e.v)
				}
				inf.fvals[n.Output[0]] = f
			}
		}
		return
	}
	if f, ok := inf.fvals[inName(n, 0)]; ok {
		if IsFloat(to) {
			inf.fvals[n.Output[0]] = f
			return
		}
		out := make([]sv, len(f))
		for i, x := range f {
			if to == Bool {
				out[i] = num(b2i(x != 0))
			} else {
				out[i] = num(int64(x)) // truncation toward zero, as Cast does
			}
		}
		inf.vals[n.Output[0]] = out
	}
}

// foldable reports whether input i has tracked values and rank <= 1, where
// elementwise broadcasting of the value lists is simple.
func (inf *inferer) foldable(n *onnxpb.NodeProto, i int) ([]sv, bool) {
	v, ok := inf.valsOf(n, i)
	if !ok {
		return nil, false
	}
	t, _ := inf.in(n, i)
	if !t.RankKnown || len(t.Dims) > 1 {
		return nil, false
	}
	return v, true
}

func pairwise(a, b []sv, f func(x, y sv) sv) ([]sv, bool) {
	if len(a) != len(b) && len(a) != 1 && len(b) != 1 {
		return nil, false
	}
	n := max(len(a), len(b))
	if len(a) == 0 || len(b) == 0 {
		n = 0
	}
	out := make([]sv, n)
	for i := range out {
		x, y := a[0], b[0]
		if len(a) > 1 {
			x = a[i]
		}
		if len(b) > 1 {
			y = b[i]
		}
		out[i] = f(x, y)
	}
	return out, true
}

func (inf *inferer) foldBinary(n *onnxpb.NodeProto) {
	op := n.GetOpType()
	if len(n.Input) != 2 {
		if (op == "Max" || op == "Min" || op == "Sum") && len(n.Input) == 1 {
			if v, ok := inf.foldable(n, 0); ok {
				inf.vals[n.Output[0]] = v
			}
		}
		return
	}
	a, ok1 := inf.foldable(n, 0)
	b, ok2 := inf.foldable(n, 1)
	if !ok1 || !ok2 {
		return
	}
	f := binaryFold(op)
	if f == nil {
		return
	}
	if out, ok := pairwise(a, b, f); ok {
		inf.vals[n.Output[0]] = out
	}
}

func binaryFold(op string) func(x, y sv) sv {
	unknown := sv{}
	both := func(g func(x, y int64) (int64, bool)) func(x, y sv) sv {
		return func(x, y sv) sv {
			if x.ok && y.ok {
				if r, ok := g(x.v, y.v); ok {
					return num(r)
				}
			}
			return unknown
		}
	}
	switch op {
	case "Add", "Sub", "Mul":
		return func(x, y sv) sv { return svArith(x, op[0], y) }
	case "Div":
		return func(x, y sv) sv {
			if x.ok && y.ok {
				if y.v == 0 {
					return unknown
				}
				return num(x.v / y.v) // integer Div truncates
			}
			return svArith(x, '/', y) // exact divisions only
		}
	case "Mod":
		return both(func(x, y int64) (int64, bool) {
			if y == 0 {
				return 0, false
			}
			r := x % y
			if r != 0 && (r < 0) != (y < 0) {
				r += y // Mod with fmod=0 follows the divisor's sign
			}
			return r, true
		})
	case "Max":
		return func(x, y sv) sv {
			switch {
			case x.ok && y.ok:
				return num(max(x.v, y.v))
			case y.ok && y.v <= 0 && x.sym != "":
				return x // a dimension is >= 0
			case x.ok && x.v <= 0 && y.sym != "":
				return y
			case x.sym != "" && x.sym == y.sym:
				return x
			}
			return unknown
		}
	case "Min":
		return func(x, y sv) sv {
			switch {
			case x.ok && y.ok:
				return num(min(x.v, y.v))
			case x.sym != "" && x.sym == y.sym:
				return x
			case y.ok && y.v >= math.MaxInt32 && x.sym != "":
				return x
			case x.ok && x.v >= math.MaxInt32 && y.sym != "":
				return y
			}
			return unknown
		}
	case "Equal":
		return func(x, y sv) sv {
			switch {
			case x.ok && y.ok:
				return num(b2i(x.v == y.v))
			case x.sym != "" && x.sym == y.sym:
				return num(1)
			case x.sym != "" && y.ok && y.v < 0, y.sym != "" && x.ok && x.v < 0:
				return num(0) // a dimension is never negative (the -1 tests of exporters)
			}
			return unknown
		}
	case "Less":
		return both(func(x, y int64) (int64, bool) { return b2i(x < y), true })
	case "Greater":
		return both(func(x, y int64) (int64, bool) { return b2i(x > y), true })
	case "LessOrEqual":
		return both(func(x, y int64) (int64, bool) { return b2i(x <= y), true })
	case "GreaterOrEqual":
		return both(func(x, y int64) (int64, bool) { return b2i(x >= y), true })
	case "And":
		return both(func(x, y int64) (int64, bool) { return b2i(x != 0 && y != 0), true })
	case "Or":
		return both(func(x, y int64) (int64, bool) { return b2i(x != 0 || y != 0), true })
	case "Xor":
		return both(func(x, y int64) (int64, bool) { return b2i((x != 0) != (y != 0)), true })
	}
	return nil
}

func (inf *inferer) foldWhere(n *onnxpb.NodeProto) {
	c, ok1 := inf.foldable(n, 0)
	a, ok2 := inf.foldable(n, 1)
	b, ok3 := inf.foldable(n, 2)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	ca, ok := pairwise(c, a, func(x, y sv) sv { return x })
	if !ok {
		return
	}
	av, ok := pairwise(a, c, func(x, y sv) sv { return x })
	if !ok {
		return
	}
	// Broadcast all three to one length.
	nn := max(len(ca), len(b))
	get := func(s []sv, i int) sv {
		if len(s) == 1 {
			return s[0]
		}
		return s[i]
	}
	if (len(ca) != nn && len(ca) != 1) || (len(b) != nn && len(b) != 1) || (len(av) != nn && len(av) != 1) {
		return
	}
	out := make([]sv, nn)
	for i := range out {
		cond := get(ca, i)
		switch {
		case !cond.ok:
			out[i] = sv{}
		case cond.v != 0:
			out[i] = get(av, i)
		default:
			out[i] = get(b, i)
		}
	}
	inf.vals[n.Output[0]] = out
}

// svPoly reads a tracked value as a polynomial.
func svPoly(s sv) (poly, bool) {
	if s.ok {
		return constPoly(s.v), true
	}
	if s.sym != "" {
		return polyOfDim(Sym(s.sym))
	}
	return nil, false
}

// svArith is +, -, * or exact / on tracked values, symbolic ones included.
func svArith(x sv, op byte, y sv) sv {
	px, ok1 := svPoly(x)
	py, ok2 := svPoly(y)
	if !ok1 || !ok2 {
		return sv{}
	}
	var p poly
	switch op {
	case 'A', '+':
		p = px.add(py, 1)
	case 'S', '-':
		p = px.add(py, -1)
	case 'M', '*':
		p = px.mul(py)
	default:
		q, ok := px.div(py)
		if !ok {
			return sv{}
		}
		p = q
	}
	if c, ok := p[""]; len(p) == 0 || (ok && len(p) == 1) {
		return num(c)
	}
	if d := p.dim(); d.Param != "" {
		return sv{sym: d.Param}
	}
	return sv{}
}

// svDim is a tracked value as a dimension (unknown when it is not one).
func svDim(s sv) Dim {
	if d, ok := s.dim(); ok {
		return d
	}
	return unknownDim
}
