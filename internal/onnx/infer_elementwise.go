package onnx

import (
	"fmt"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

var unaryOps = map[string]bool{
	"Sqrt": true, "Reciprocal": true, "Neg": true, "Exp": true, "Log": true, "Tanh": true, "Erf": true,
	"Relu": true, "Sigmoid": true, "Abs": true, "Softplus": true, "Softsign": true, "Floor": true, "Ceil": true,
	"Round": true, "Sign": true, "Identity": true, "Sin": true, "Cos": true, "Tan": true, "Asin": true,
	"Acos": true, "Atan": true, "Sinh": true, "Cosh": true, "Asinh": true, "Acosh": true, "Atanh": true,
	"Elu": true, "Selu": true, "Celu": true, "LeakyRelu": true, "ThresholdedRelu": true, "HardSigmoid": true,
	"HardSwish": true, "Mish": true, "Gelu": true, "Softmax": true, "LogSoftmax": true, "Hardmax": true,
	"Clip": true, "CumSum": true, "Trilu": true, "Shrink": true, "LpNormalization": true, "BitwiseNot": true,
	"MeanVarianceNormalization": true, "InstanceNormalization": true, "BatchNormalization": true,
	"ScatterElements": true, "ScatterND": true, "Scatter": true, "ReverseSequence": true,
	// com.microsoft, as found in ONNX Runtime-optimized exports:
	"FastGelu": true, "BiasGelu": true, "QuickGelu": true, "BiasAdd": true,
}

var broadcastOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Mod": true, "PRelu": true,
	"BitShift": true, "BitwiseAnd": true, "BitwiseOr": true, "BitwiseXor": true,
	"Min": true, "Max": true, "Sum": true, "Mean": true,
}

var compareOps = map[string]bool{
	"Equal": true, "Less": true, "Greater": true, "LessOrEqual": true, "GreaterOrEqual": true,
	"And": true, "Or": true, "Xor": true,
}

func (inf *inferer) unary(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	if op := n.GetOpType(); op == "Identity" || op == "Neg" || op == "Abs" {
		inf.foldUnary(n)
	}
	return same(inf.in0(n)), nil
}

// arith is an elementwise operator whose result has its operands' type.
func (inf *inferer) arith(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	return inf.broadcastNode(n, inf.in0(n).Elem)
}

func (inf *inferer) compare(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	return inf.broadcastNode(n, Bool)
}

// predicate is an elementwise test such as IsNaN: bools of x's shape.
func (inf *inferer) predicate(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	return same(withElem(inf.in0(n), Bool)), nil
}

func (inf *inferer) not(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	inf.foldNot(n)
	return inf.predicate(n)
}

func (inf *inferer) randomLike(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if dt := AttrIntOr(n, "dtype", 0); dt != 0 {
		return same(withElem(x, DType(dt))), nil
	}
	return same(x), nil
}

func (inf *inferer) quantize(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	elem := Uint8
	if zp, ok := inf.in(n, 2); ok {
		elem = zp.Elem
	} else if dt := AttrIntOr(n, "output_dtype", 0); dt != 0 {
		elem = DType(dt)
	}
	return same(withElem(inf.in0(n), elem)), nil
}

func (inf *inferer) dequantize(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	scale, _ := inf.in(n, 1)
	return same(withElem(inf.in0(n), scale.Elem)), nil
}

func (inf *inferer) cast(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	inf.foldCast(n)
	return same(withElem(inf.in0(n), DType(AttrIntOr(n, "to", 0)))), nil
}

func (inf *inferer) castLike(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	inf.foldCast(n)
	t, _ := inf.in(n, 1)
	return same(withElem(inf.in0(n), t.Elem)), nil
}

func (inf *inferer) dropout(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	return []TypeInfo{x, withElem(x, Bool)}, nil
}

func (inf *inferer) broadcastNode(n *onnxpb.NodeProto, elem DType) ([]TypeInfo, error) {
	var dims []Dim
	rankKnown := true
	count := 0
	for i := range n.Input {
		t, ok := inf.in(n, i)
		if !ok {
			continue
		}
		if !t.RankKnown {
			rankKnown = false
			continue
		}
		if count == 0 {
			dims = append([]Dim{}, t.Dims...)
		} else {
			var err error
			if dims, err = inf.broadcastDims(dims, t.Dims); err != nil {
				return nil, err
			}
		}
		count++
	}
	if elem == Undefined {
		// The first typed operand decides (Pow's exponent may differ).
		for i := range n.Input {
			if t, ok := inf.in(n, i); ok && t.Elem != Undefined {
				elem = t.Elem
				break
			}
		}
	}
	if !rankKnown {
		return same(TypeInfo{Elem: elem}), nil
	}
	inf.foldBinary(n)
	return same(TypeInfo{Elem: elem, Dims: dims, RankKnown: true}), nil
}

func (inf *inferer) where(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	c, _ := inf.in(n, 0)
	a, _ := inf.in(n, 1)
	b, _ := inf.in(n, 2)
	elem := a.Elem
	if elem == Undefined {
		elem = b.Elem
	}
	if !c.RankKnown || !a.RankKnown || !b.RankKnown {
		return same(TypeInfo{Elem: elem}), nil
	}
	d, err := inf.broadcastDims(c.Dims, a.Dims)
	if err == nil {
		d, err = inf.broadcastDims(d, b.Dims)
	}
	if err != nil {
		return nil, err
	}
	inf.foldWhere(n)
	return same(Tensor(elem, d...)), nil
}

// broadcastDims merges two shapes by multidirectional (numpy) broadcasting.
func (inf *inferer) broadcastDims(a, b []Dim) ([]Dim, error) {
	return broadcastDimsWith(a, b, inf.freshDim)
}

func (inf *inferer) broadcastDim(x, y Dim) (Dim, error) {
	return broadcastDimWith(x, y, inf.freshDim)
}

// BroadcastDims merges two shapes by multidirectional (numpy)
// broadcasting. Where two different symbols meet the size is unknown; two
// static sizes that differ (neither 1) are an error.
func BroadcastDims(a, b []Dim) ([]Dim, error) {
	return broadcastDimsWith(a, b, UnknownDim)
}

// broadcastDimsWith is BroadcastDims where undecided calls for the size of
// two symbols that may differ.
func broadcastDimsWith(a, b []Dim, undecided func() Dim) ([]Dim, error) {
	if len(a) < len(b) {
		a, b = b, a
	}
	out := make([]Dim, len(a))
	off := len(a) - len(b)
	copy(out, a[:off])
	for i := range b {
		x, y := a[off+i], b[i]
		d, err := broadcastDimWith(x, y, undecided)
		if err != nil {
			return nil, fmt.Errorf("cannot broadcast %v with %v: %w", DimsString(a), DimsString(b), err)
		}
		out[off+i] = d
	}
	return out, nil
}

func broadcastDimWith(x, y Dim, undecided func() Dim) (Dim, error) {
	switch {
	case x.Value == 1:
		return y, nil
	case y.Value == 1:
		return x, nil
	case x.Static() && y.Static():
		if x.Value != y.Value {
			return Dim{}, fmt.Errorf("dimensions %d and %d differ", x.Value, y.Value)
		}
		return x, nil
	case x.Static():
		return x, nil // y must be x (or 1, which gives x too)
	case y.Static():
		return y, nil
	case x.Same(y):
		return x, nil
	}
	return undecided(), nil
}

// DimsString writes dimensions as [2,batch,?].
func DimsString(d []Dim) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = x.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}
