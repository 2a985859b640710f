package onnx

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// rule computes the output types of one node (and folds integer values).
type rule func(inf *inferer, n *onnxpb.NodeProto) ([]TypeInfo, error)

// rules maps operator types to their rules, in the files named below. init
// fills it: If and Loop infer their subgraphs through node, which reads it,
// and a package-level initializer may not depend on itself.
var rules map[string]rule

func init() {
	rules = map[string]rule{}
	add := func(r rule, ops ...string) {
		for _, op := range ops {
			if rules[op] != nil {
				panic("onnx: two shape rules for " + op)
			}
			rules[op] = r
		}
	}
	addSet := func(r rule, set map[string]bool) {
		for op := range set {
			add(r, op)
		}
	}
	// infer_elementwise.go
	addSet((*inferer).unary, unaryOps)
	addSet((*inferer).arith, broadcastOps)
	addSet((*inferer).compare, compareOps)
	add((*inferer).not, "Not")
	add((*inferer).predicate, "IsNaN", "IsInf")
	add((*inferer).randomLike, "RandomUniformLike", "RandomNormalLike", "Bernoulli", "EyeLike")
	add((*inferer).quantize, "QuantizeLinear")
	add((*inferer).dequantize, "DequantizeLinear")
	add((*inferer).cast, "Cast")
	add((*inferer).castLike, "CastLike")
	add((*inferer).dropout, "Dropout")
	add((*inferer).where, "Where")
	// infer_reduce.go
	addSet((*inferer).reduce, reduceOps)
	add((*inferer).argReduce, "ArgMax", "ArgMin")
	add((*inferer).topK, "TopK")
	add((*inferer).layerNorm, "LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
		"SkipSimplifiedLayerNormalization", "RMSNormalization")
	add((*inferer).lossOp, "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss")
	// infer_shape.go
	add((*inferer).reshape, "Reshape")
	add((*inferer).flatten, "Flatten")
	add((*inferer).transpose, "Transpose")
	add((*inferer).unsqueeze, "Unsqueeze")
	add((*inferer).squeeze, "Squeeze")
	add((*inferer).concat, "Concat")
	add((*inferer).split, "Split")
	add((*inferer).expand, "Expand")
	add((*inferer).tile, "Tile")
	// infer_index.go
	add((*inferer).slice, "Slice")
	add((*inferer).pad, "Pad")
	add((*inferer).gather, "Gather")
	add((*inferer).gatherElements, "GatherElements")
	add((*inferer).gatherND, "GatherND")
	add((*inferer).oneHot, "OneHot")
	add((*inferer).nonZero, "NonZero")
	// infer_const.go
	add((*inferer).shape, "Shape")
	add((*inferer).size, "Size")
	add((*inferer).constantOfShape, "ConstantOfShape")
	add((*inferer).constant, "Constant")
	add((*inferer).rangeOp, "Range")
	// infer_linalg.go
	add((*inferer).matmul, "MatMul", "FusedMatMul", "MatMulInteger")
	add((*inferer).gemm, "Gemm")
	add((*inferer).einsum, "Einsum")
	add((*inferer).attention, "Attention", "MultiHeadAttention")
	// infer_control.go
	add((*inferer).ifOp, "If")
	add((*inferer).loop, "Loop")
}

// node computes the output types of one node (and folds integer values);
// an operator without a rule gives nothing.
func (inf *inferer) node(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	switch normDomain(n.GetDomain()) {
	case "", "com.microsoft", "ai.onnx.ml":
	default:
		return nil, nil // a custom domain: nothing known
	}
	if r := rules[n.GetOpType()]; r != nil {
		return r(inf, n)
	}
	return nil, nil
}

// in returns the type of input i, and false when the input is absent.
func (inf *inferer) in(n *onnxpb.NodeProto, i int) (TypeInfo, bool) {
	if i >= len(n.Input) || n.Input[i] == "" {
		return TypeInfo{}, false
	}
	t, ok := inf.types[n.Input[i]]
	return t, ok
}

// inName is the name of input i, "" when absent.
func inName(n *onnxpb.NodeProto, i int) string {
	if i < len(n.Input) {
		return n.Input[i]
	}
	return ""
}

func (inf *inferer) in0(n *onnxpb.NodeProto) TypeInfo {
	t, _ := inf.in(n, 0)
	return t
}

// valsOf returns the tracked element values of input i.
func (inf *inferer) valsOf(n *onnxpb.NodeProto, i int) ([]sv, bool) {
	if i >= len(n.Input) || n.Input[i] == "" {
		return nil, false
	}
	v, ok := inf.vals[n.Input[i]]
	return v, ok
}

// intsOf returns the values of input i when every one is an exact number.
func (inf *inferer) intsOf(n *onnxpb.NodeProto, i int) ([]int64, bool) {
	v, ok := inf.valsOf(n, i)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(v))
	for j, e := range v {
		if !e.ok {
			return nil, false
		}
		out[j] = e.v
	}
	return out, true
}

// axesOf reads axes from input idx when present, else from the attribute
// (the form used before the operator moved axes to an input).
func (inf *inferer) axesOf(n *onnxpb.NodeProto, idx int) (axes []int64, given, known bool) {
	if idx < len(n.Input) && n.Input[idx] != "" {
		v, ok := inf.intsOf(n, idx)
		return v, true, ok
	}
	if a, ok := AttrIntsOf(n, "axes"); ok {
		return a, true, true
	}
	return nil, false, true
}

func normAxis(axis int64, rank int) (int, error) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

func same(t TypeInfo) []TypeInfo { return []TypeInfo{t} }

// unknownDims is n dimensions about which nothing is known. (The zero Dim
// is a static 0, not an unknown.)
func unknownDims[N int | int64](n N) []Dim {
	out := make([]Dim, n)
	for i := range out {
		out[i] = unknownDim
	}
	return out
}

func withElem(t TypeInfo, e DType) TypeInfo {
	t.Elem = e
	return t
}

func nums(v []int64) []sv {
	if v == nil {
		return nil
	}
	out := make([]sv, len(v))
	for i, x := range v {
		out[i] = num(x)
	}
	return out
}
