package onnx

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

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

var reduceOps = map[string]bool{
	"ReduceMean": true, "ReduceSum": true, "ReduceMax": true, "ReduceMin": true, "ReduceProd": true,
	"ReduceL1": true, "ReduceL2": true, "ReduceLogSum": true, "ReduceLogSumExp": true, "ReduceSumSquare": true,
}

// node computes the output types of one node (and folds integer values).
func (inf *inferer) node(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	op := n.GetOpType()
	switch domain := normDomain(n.GetDomain()); domain {
	case "", "com.microsoft", "ai.onnx.ml":
	default:
		return nil, nil // a custom domain: nothing known
	}
	x := inf.in0(n)
	switch {
	case unaryOps[op]:
		if op == "Identity" || op == "Neg" || op == "Abs" {
			inf.foldUnary(n)
		}
		return same(x), nil
	case broadcastOps[op]:
		return inf.broadcastNode(n, x.Elem)
	case compareOps[op]:
		return inf.broadcastNode(n, Bool)
	case reduceOps[op]:
		return inf.reduce(n)
	}
	switch op {
	case "Not":
		inf.foldNot(n)
		return same(withElem(x, Bool)), nil
	case "RandomUniformLike", "RandomNormalLike", "Bernoulli", "EyeLike":
		if dt := AttrIntOr(n, "dtype", 0); dt != 0 {
			return same(withElem(x, DType(dt))), nil
		}
		return same(x), nil
	case "QuantizeLinear":
		elem := Uint8
		if zp, ok := inf.in(n, 2); ok {
			elem = zp.Elem
		} else if dt := AttrIntOr(n, "output_dtype", 0); dt != 0 {
			elem = DType(dt)
		}
		return same(withElem(x, elem)), nil
	case "DequantizeLinear":
		scale, _ := inf.in(n, 1)
		return same(withElem(x, scale.Elem)), nil
	case "IsNaN", "IsInf":
		return same(withElem(x, Bool)), nil
	case "Cast":
		inf.foldCast(n)
		return same(withElem(x, DType(AttrIntOr(n, "to", 0)))), nil
	case "CastLike":
		inf.foldCast(n)
		t, _ := inf.in(n, 1)
		return same(withElem(x, t.Elem)), nil
	case "Dropout":
		return []TypeInfo{x, withElem(x, Bool)}, nil
	case "Where":
		return inf.where(n)
	case "LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
		"SkipSimplifiedLayerNormalization", "RMSNormalization":
		return inf.layerNorm(n, x)
	case "MatMul", "FusedMatMul", "MatMulInteger":
		return inf.matmul(n)
	case "Gemm":
		return inf.gemm(n)
	case "Gather":
		return inf.gather(n)
	case "GatherElements":
		idx, _ := inf.in(n, 1)
		return same(TypeInfo{Elem: x.Elem, Dims: idx.Dims, RankKnown: idx.RankKnown}), nil
	case "GatherND":
		return inf.gatherND(n)
	case "Reshape":
		return inf.reshape(n)
	case "Flatten":
		return inf.flatten(n)
	case "Transpose":
		return inf.transpose(n)
	case "Unsqueeze":
		return inf.unsqueeze(n)
	case "Squeeze":
		return inf.squeeze(n)
	case "Concat":
		return inf.concat(n)
	case "Slice":
		return inf.slice(n)
	case "Split":
		return inf.split(n)
	case "Expand":
		return inf.expand(n)
	case "Tile":
		return inf.tile(n)
	case "Einsum":
		return inf.einsum(n)
	case "Shape":
		return inf.shape(n)
	case "Size":
		if x.RankKnown {
			if p := dimProduct(x.Dims); p.Static() || p.Param != "" {
				inf.vals[n.Output[0]] = []sv{svOfDim(p)}
			}
		}
		return same(Tensor(Int64)), nil
	case "ConstantOfShape":
		return inf.constantOfShape(n)
	case "Constant":
		return inf.constant(n)
	case "Range":
		return inf.rangeOp(n)
	case "ArgMax", "ArgMin":
		return inf.argReduce(n)
	case "TopK":
		return inf.topK(n)
	case "NonZero":
		rank := unknownDim // the output is [rank of x, number of non-zeros] in any case
		if x.RankKnown {
			rank = D(int64(len(x.Dims)))
		}
		return same(Tensor(Int64, rank, unknownDim)), nil
	case "OneHot":
		return inf.oneHot(n)
	case "Pad":
		return inf.pad(n)
	case "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss":
		return inf.lossOp(n)
	case "If":
		return inf.ifOp(n)
	case "Loop":
		return inf.loop(n)
	case "Attention", "MultiHeadAttention":
		return inf.attention(n)
	}
	return nil, nil
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

func (inf *inferer) reduce(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	keep := AttrIntOr(n, "keepdims", 1) == 1
	axes, _, known := inf.axesOf(n, 1)
	noop := AttrIntOr(n, "noop_with_empty_axes", 0) == 1
	if !x.RankKnown {
		if known && len(axes) == 0 && !noop && !keep {
			return same(Tensor(x.Elem)), nil // every axis reduced: a scalar whatever the rank
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	if !known {
		if keep {
			return same(Tensor(x.Elem, unknownDims(r)...)), nil // each dim kept or 1: unknown
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if len(axes) == 0 {
		if noop {
			return same(x), nil
		}
		axes = make([]int64, r)
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	red := map[int]bool{}
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		red[ax] = true
	}
	var dims []Dim
	for i, d := range x.Dims {
		switch {
		case !red[i]:
			dims = append(dims, d)
		case keep:
			dims = append(dims, D(1))
		}
	}
	return same(Tensor(x.Elem, dims...)), nil
}

func (inf *inferer) argReduce(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: Int64}), nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", 0), len(x.Dims))
	if err != nil {
		return nil, err
	}
	dims := append([]Dim{}, x.Dims...)
	if AttrIntOr(n, "keepdims", 1) == 1 {
		dims[ax] = D(1)
	} else {
		dims = append(dims[:ax], dims[ax+1:]...)
	}
	return same(Tensor(Int64, dims...)), nil
}

func (inf *inferer) layerNorm(n *onnxpb.NodeProto, x TypeInfo) ([]TypeInfo, error) {
	stash := Float32
	if s := AttrIntOr(n, "stash_type", 1); s != 1 {
		stash = DType(s)
	}
	if !x.RankKnown {
		return []TypeInfo{x, {Elem: stash}, {Elem: stash}, x}, nil
	}
	op := n.GetOpType()
	if op == "SkipLayerNormalization" || op == "SkipSimplifiedLayerNormalization" {
		// Outputs: output, mean (unused by the simplified form),
		// inv_std_var, input_skip_bias_sum; stats over the last axis.
		if len(x.Dims) == 0 {
			return nil, fmt.Errorf("%s needs an input of rank >= 1", op)
		}
		stat := append(append([]Dim{}, x.Dims[:len(x.Dims)-1]...), D(1))
		return []TypeInfo{x, Tensor(stash, stat...), Tensor(stash, stat...), x}, nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", -1), len(x.Dims))
	if err != nil {
		return nil, err
	}
	stat := append([]Dim{}, x.Dims...)
	for i := ax; i < len(stat); i++ {
		stat[i] = D(1)
	}
	if op == "SimplifiedLayerNormalization" || op == "RMSNormalization" {
		return []TypeInfo{x, Tensor(stash, stat...)}, nil
	}
	return []TypeInfo{x, Tensor(stash, stat...), Tensor(stash, stat...)}, nil
}

func (inf *inferer) matmul(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	a := inf.in0(n)
	b, _ := inf.in(n, 1)
	elem := a.Elem
	if n.GetOpType() == "MatMulInteger" {
		elem = Int32
	}
	if !a.RankKnown || !b.RankKnown {
		return same(TypeInfo{Elem: elem}), nil
	}
	ad, bd := append([]Dim{}, a.Dims...), append([]Dim{}, b.Dims...)
	if len(ad) == 0 || len(bd) == 0 {
		return nil, fmt.Errorf("MatMul operands must have rank >= 1, got %v and %v", DimsString(ad), DimsString(bd))
	}
	if n.GetOpType() == "FusedMatMul" {
		if AttrIntOr(n, "transA", 0) == 1 && len(ad) >= 2 {
			ad[len(ad)-1], ad[len(ad)-2] = ad[len(ad)-2], ad[len(ad)-1]
		}
		if AttrIntOr(n, "transB", 0) == 1 && len(bd) >= 2 {
			bd[len(bd)-1], bd[len(bd)-2] = bd[len(bd)-2], bd[len(bd)-1]
		}
	}
	aVec, bVec := len(ad) == 1, len(bd) == 1
	if aVec {
		ad = []Dim{D(1), ad[0]}
	}
	if bVec {
		bd = []Dim{bd[0], D(1)}
	}
	k1, k2 := ad[len(ad)-1], bd[len(bd)-2]
	if k1.Static() && k2.Static() && k1.Value != k2.Value {
		return nil, fmt.Errorf("inner dimensions differ: %v times %v", DimsString(a.Dims), DimsString(b.Dims))
	}
	batch, err := inf.broadcastDims(ad[:len(ad)-2], bd[:len(bd)-2])
	if err != nil {
		return nil, err
	}
	out := batch
	if !aVec {
		out = append(out, ad[len(ad)-2])
	}
	if !bVec {
		out = append(out, bd[len(bd)-1])
	}
	return same(Tensor(elem, out...)), nil
}

func (inf *inferer) gemm(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	a := inf.in0(n)
	b, _ := inf.in(n, 1)
	if !a.RankKnown || !b.RankKnown || len(a.Dims) != 2 || len(b.Dims) != 2 {
		return same(Tensor(a.Elem, unknownDim, unknownDim)), nil
	}
	m, k1 := a.Dims[0], a.Dims[1]
	if AttrIntOr(n, "transA", 0) == 1 {
		m, k1 = k1, m
	}
	k2, nn := b.Dims[0], b.Dims[1]
	if AttrIntOr(n, "transB", 0) == 1 {
		k2, nn = nn, k2
	}
	if k1.Static() && k2.Static() && k1.Value != k2.Value {
		return nil, fmt.Errorf("inner dimensions differ: %d and %d", k1.Value, k2.Value)
	}
	return same(Tensor(a.Elem, m, nn)), nil
}

func (inf *inferer) gather(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	idx, _ := inf.in(n, 1)
	if !x.RankKnown || !idx.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", 0), len(x.Dims))
	if err != nil {
		return nil, err
	}
	dims := append(append(append([]Dim{}, x.Dims[:ax]...), idx.Dims...), x.Dims[ax+1:]...)
	// Fold Gather on a 1-D shape vector with constant indices.
	if vals, ok := inf.valsOf(n, 0); ok && len(x.Dims) == 1 {
		if is, ok := inf.intsOf(n, 1); ok {
			out := make([]sv, len(is))
			good := true
			for i, j := range is {
				if j < 0 {
					j += int64(len(vals))
				}
				if j < 0 || j >= int64(len(vals)) {
					good = false
					break
				}
				out[i] = vals[j]
			}
			if good {
				inf.vals[n.Output[0]] = out
			}
		}
	}
	return same(Tensor(x.Elem, dims...)), nil
}

func (inf *inferer) gatherND(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	idx, _ := inf.in(n, 1)
	if !x.RankKnown || !idx.RankKnown || len(idx.Dims) == 0 || !idx.Dims[len(idx.Dims)-1].Static() {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	b := int(AttrIntOr(n, "batch_dims", 0))
	last := int(idx.Dims[len(idx.Dims)-1].Value)
	if b < 0 || b+last > len(x.Dims) || b > len(idx.Dims)-1 {
		return nil, fmt.Errorf("indices last dimension %d plus batch_dims %d exceeds data rank %d", last, b, len(x.Dims))
	}
	dims := append(append([]Dim{}, idx.Dims[:len(idx.Dims)-1]...), x.Dims[b+last:]...)
	return same(Tensor(x.Elem, dims...)), nil
}

func (inf *inferer) reshape(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	st, _ := inf.in(n, 1)
	target, ok := inf.valsOf(n, 1)
	if !ok {
		if st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			return same(Tensor(x.Elem, unknownDims(st.Dims[0].Value)...)), nil
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	allowZero := AttrIntOr(n, "allowzero", 0) == 1
	out := make([]Dim, len(target))
	infer := -1
	for i, e := range target {
		switch {
		case e.ok && e.v == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", target)
			}
			infer = i
		case e.ok && e.v == 0 && !allowZero:
			if !x.RankKnown {
				out[i] = unknownDim
			} else if i >= len(x.Dims) {
				return nil, fmt.Errorf("shape has 0 at position %d but the input has rank %d", i, len(x.Dims))
			} else {
				out[i] = x.Dims[i]
			}
		case e.ok && e.v < -1:
			return nil, fmt.Errorf("invalid shape value %d", e.v)
		default:
			if d, ok := e.dim(); ok {
				out[i] = d
			} else {
				out[i] = unknownDim
			}
		}
	}
	if x.RankKnown {
		in := dimProduct(x.Dims)
		if infer >= 0 {
			rest := append(append([]Dim{}, out[:infer]...), out[infer+1:]...)
			known := dimProduct(rest)
			out[infer] = unknownDim
			if known.Value != 0 {
				out[infer] = dimArith(in, '/', known)
			}
			if in.Static() && known.Static() && known.Value != 0 && in.Value%known.Value != 0 {
				return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", DimsString(x.Dims), in.Value, target)
			}
		} else if in.Static() {
			if p := dimProduct(out); p.Static() && p.Value != in.Value {
				return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", DimsString(x.Dims), in.Value, DimsString(out), p.Value)
			}
		}
	} else if infer >= 0 {
		out[infer] = unknownDim
	}
	if vals, ok := inf.valsOf(n, 0); ok {
		if p := dimProduct(out); p.Static() && p.Value == int64(len(vals)) {
			inf.vals[n.Output[0]] = vals
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) flatten(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(Tensor(x.Elem, unknownDim, unknownDim)), nil
	}
	ax := AttrIntOr(n, "axis", 1)
	if ax < 0 {
		ax += int64(len(x.Dims))
	}
	if ax < 0 || ax > int64(len(x.Dims)) {
		return nil, fmt.Errorf("axis %d out of range for rank %d", ax, len(x.Dims))
	}
	return same(Tensor(x.Elem, dimProduct(x.Dims[:ax]), dimProduct(x.Dims[ax:]))), nil
}

func (inf *inferer) transpose(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	perm, ok := AttrIntsOf(n, "perm")
	if !ok {
		perm = make([]int64, r)
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v does not match rank %d", perm, r)
	}
	out := make([]Dim, r)
	seen := make([]bool, r)
	for i, p := range perm {
		ax, err := normAxis(p, r)
		if err != nil || seen[ax] {
			return nil, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, r-1)
		}
		seen[ax] = true
		out[i] = x.Dims[ax]
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) unsqueeze(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	axes, _, known := inf.axesOf(n, 1)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if !known {
		if st, ok := inf.in(n, 1); ok && st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			return same(Tensor(x.Elem, unknownDims(len(x.Dims)+int(st.Dims[0].Value))...)), nil
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims) + len(axes)
	ins := map[int]bool{}
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if ins[ax] {
			return nil, fmt.Errorf("axis %d repeated in %v", a, axes)
		}
		ins[ax] = true
	}
	out := make([]Dim, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, D(1))
		} else {
			out = append(out, x.Dims[j])
			j++
		}
	}
	if vals, ok := inf.valsOf(n, 0); ok {
		inf.vals[n.Output[0]] = vals
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) squeeze(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	axes, given, known := inf.axesOf(n, 1)
	if !x.RankKnown || !known {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	drop := map[int]bool{}
	if !given || len(axes) == 0 {
		for i, d := range x.Dims {
			if !d.Static() {
				return same(TypeInfo{Elem: x.Elem}), nil // might or might not be 1
			}
			if d.Value == 1 {
				drop[i] = true
			}
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(x.Dims))
		if err != nil {
			return nil, err
		}
		if d := x.Dims[ax]; d.Static() && d.Value != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of size %d", a, d.Value)
		}
		drop[ax] = true
	}
	var out []Dim
	for i, d := range x.Dims {
		if !drop[i] {
			out = append(out, d)
		}
	}
	if vals, ok := inf.valsOf(n, 0); ok {
		inf.vals[n.Output[0]] = vals
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) concat(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	var elem DType
	var ts []TypeInfo
	partial := false
	for i := range n.Input {
		t, ok := inf.in(n, i)
		if !ok {
			continue
		}
		if elem == Undefined {
			elem = t.Elem
		}
		if !t.RankKnown {
			partial = true // the inputs share one rank: the others give it
			continue
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return same(TypeInfo{Elem: elem}), nil
	}
	r := len(ts[0].Dims)
	ax, err := normAxis(AttrIntOr(n, "axis", 0), r)
	if err != nil {
		return nil, err
	}
	out := append([]Dim{}, ts[0].Dims...)
	for _, t := range ts[1:] {
		if len(t.Dims) != r {
			return nil, fmt.Errorf("inputs have ranks %d and %d", r, len(t.Dims))
		}
		for i, d := range t.Dims {
			if i == ax {
				continue
			}
			switch {
			case out[i].Static() && d.Static() && out[i].Value != d.Value:
				return nil, fmt.Errorf("dimension %d differs: %d and %d", i, out[i].Value, d.Value)
			case !out[i].Static() && d.Static():
				out[i] = d
			case !out[i].Static() && out[i].Param == "":
				out[i] = d
			}
		}
	}
	if partial {
		out[ax] = unknownDim
		return same(Tensor(elem, out...)), nil
	}
	// The concatenated axis: the sum of the sizes.
	sum := D(0)
	for _, t := range ts {
		sum = dimArith(sum, '+', t.Dims[ax])
	}
	out[ax] = sum
	// Fold concatenation of 1-D shape vectors.
	if r == 1 {
		var vals []sv
		all := true
		for i := range n.Input {
			v, ok := inf.valsOf(n, i)
			if n.Input[i] == "" {
				continue
			}
			if !ok {
				all = false
				break
			}
			vals = append(vals, v...)
		}
		if all {
			inf.vals[n.Output[0]] = vals
		}
	}
	return same(Tensor(elem, out...)), nil
}

// clampIndex normalises a Slice start or end against a static size.
func clampIndex(v, size int64, step int64) int64 {
	if v < 0 {
		v += size
	}
	if step > 0 {
		return max(0, min(v, size))
	}
	return max(-1, min(v, size-1))
}

func (inf *inferer) slice(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	var starts, ends, axes, steps []sv
	var ok1, ok2 bool
	if len(n.Input) > 1 {
		starts, ok1 = inf.valsOf(n, 1)
		ends, ok2 = inf.valsOf(n, 2)
		if a, ok := inf.valsOf(n, 3); ok {
			axes = a
		} else if len(n.Input) > 3 && n.Input[3] != "" {
			ok1 = false
		}
		if s, ok := inf.valsOf(n, 4); ok {
			steps = s
		} else if len(n.Input) > 4 && n.Input[4] != "" {
			ok1 = false
		}
	} else {
		s, _ := AttrIntsOf(n, "starts")
		e, _ := AttrIntsOf(n, "ends")
		a, _ := AttrIntsOf(n, "axes")
		starts, ends, axes = nums(s), nums(e), nums(a)
		ok1, ok2 = true, true
	}
	if !ok1 || !ok2 {
		// Which axes change is unknown unless axes are given.
		out := append([]Dim{}, x.Dims...)
		if a, ok := inf.intsOf(n, 3); ok {
			for _, ax := range a {
				if i, err := normAxis(ax, r); err == nil {
					out[i] = unknownDim
				}
			}
			return same(Tensor(x.Elem, out...)), nil
		}
		return same(Tensor(x.Elem, unknownDims(r)...)), nil
	}
	if len(starts) != len(ends) {
		return nil, fmt.Errorf("starts has %d values, ends %d", len(starts), len(ends))
	}
	out := append([]Dim{}, x.Dims...)
	for i := range starts {
		ax := int64(i)
		if axes != nil {
			if i >= len(axes) || !axes[i].ok {
				return same(Tensor(x.Elem, unknownDims(r)...)), nil
			}
			ax = axes[i].v
		}
		a, err := normAxis(ax, r)
		if err != nil {
			return nil, err
		}
		step := int64(1)
		if steps != nil {
			if i >= len(steps) || !steps[i].ok {
				out[a] = unknownDim
				continue
			}
			step = steps[i].v
		}
		if step == 0 {
			return nil, fmt.Errorf("slice step is 0")
		}
		out[a] = sliceDim(x.Dims[a], starts[i], ends[i], step)
	}
	// Fold slices of shape vectors.
	if vals, ok := inf.valsOf(n, 0); ok && r == 1 && len(starts) == 1 && starts[0].ok && ends[0].ok {
		step := int64(1)
		if steps != nil && steps[0].ok {
			step = steps[0].v
		}
		size := int64(len(vals))
		s, e := clampIndex(starts[0].v, size, step), clampIndex(ends[0].v, size, step)
		var sub []sv
		for j := s; (step > 0 && j < e) || (step < 0 && j > e); j += step {
			sub = append(sub, vals[j])
		}
		inf.vals[n.Output[0]] = sub
	}
	return same(Tensor(x.Elem, out...)), nil
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

// sliceDim is the size of one sliced dimension. With symbolic sizes, in
// steps of 1, starts and ends are assumed to lie within the dimension, as
// they do in valid exports (x[:, :-1], x[:, -1:], x[:, past:past+seq]).
func sliceDim(d Dim, start, end sv, step int64) Dim {
	const big = math.MaxInt32 // exporters write INT64_MAX or INT32_MAX for "to the end"
	if d.Static() && start.ok && end.ok {
		s := clampIndex(start.v, d.Value, step)
		e := clampIndex(end.v, d.Value, step)
		if step > 0 {
			if e <= s {
				return D(0)
			}
			return D((e - s + step - 1) / step)
		}
		if s <= e {
			return D(0)
		}
		return D((s - e - step - 1) / -step)
	}
	if step != 1 {
		return unknownDim
	}
	bound := func(v sv, isEnd bool) (Dim, bool) {
		switch {
		case v.sym != "":
			return Sym(v.sym), true
		case !v.ok:
			return Dim{}, false
		case v.v >= big:
			return d, isEnd
		case v.v <= -big:
			return D(0), !isEnd
		case v.v >= 0:
			if d.Static() {
				return D(min(v.v, d.Value)), true
			}
			return D(v.v), !isEnd // x[:5] of a symbolic size is min(5, S)
		}
		return dimArith(d, '+', D(v.v)), true // negative: counted from the end
	}
	s, ok1 := bound(start, false)
	e, ok2 := bound(end, true)
	if !ok1 || !ok2 {
		return unknownDim
	}
	return dimArith(e, '-', s)
}

func (inf *inferer) split(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	nout := len(n.Output)
	if !x.RankKnown {
		return repeat(TypeInfo{Elem: x.Elem}, nout), nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", 0), len(x.Dims))
	if err != nil {
		return nil, err
	}
	var sizes []int64
	known := true
	if len(n.Input) > 1 && n.Input[1] != "" {
		sizes, known = inf.intsOf(n, 1)
	} else if s, ok := AttrIntsOf(n, "split"); ok {
		sizes = s
	}
	outs := make([]TypeInfo, nout)
	for i := range outs {
		dims := append([]Dim{}, x.Dims...)
		switch {
		case !known:
			dims[ax] = unknownDim
		case sizes != nil:
			if len(sizes) != nout {
				return nil, fmt.Errorf("split has %d sizes for %d outputs", len(sizes), nout)
			}
			dims[ax] = D(sizes[i])
		case x.Dims[ax].Static():
			total := x.Dims[ax].Value
			chunk := (total + int64(nout) - 1) / int64(nout)
			if AttrIntOr(n, "num_outputs", 0) == 0 && total%int64(nout) != 0 {
				return nil, fmt.Errorf("cannot split size %d evenly into %d outputs", total, nout)
			}
			dims[ax] = D(min(chunk, max(0, total-int64(i)*chunk)))
		default:
			dims[ax] = unknownDim
		}
		outs[i] = Tensor(x.Elem, dims...)
	}
	if sizes != nil && x.Dims[ax].Static() {
		var sum int64
		for _, s := range sizes {
			sum += s
		}
		if sum != x.Dims[ax].Value {
			return nil, fmt.Errorf("split sizes %v do not add up to %d", sizes, x.Dims[ax].Value)
		}
	}
	return outs, nil
}

func repeat(t TypeInfo, n int) []TypeInfo {
	out := make([]TypeInfo, n)
	for i := range out {
		out[i] = t
	}
	return out
}

func (inf *inferer) expand(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	st, _ := inf.in(n, 1)
	target, ok := inf.valsOf(n, 1)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if !ok {
		if st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			k := int(st.Dims[0].Value)
			r := max(k, len(x.Dims))
			out := unknownDims(r)
			off := r - len(x.Dims)
			for i, d := range x.Dims {
				if d.Value != 1 {
					out[off+i] = d // the target is d or 1 here
				}
			}
			return same(Tensor(x.Elem, out...)), nil
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	tdims := make([]Dim, len(target))
	for i, e := range target {
		if d, ok := e.dim(); ok {
			tdims[i] = d
		} else {
			tdims[i] = unknownDim
		}
	}
	// Broadcasting where the target's unknown entries may be 1.
	r := max(len(tdims), len(x.Dims))
	out := make([]Dim, r)
	for i := 0; i < r; i++ {
		var a, b Dim = D(1), D(1)
		if j := i - (r - len(x.Dims)); j >= 0 {
			a = x.Dims[j]
		}
		if j := i - (r - len(tdims)); j >= 0 {
			b = tdims[j]
		}
		if !b.Static() && b.Param == "" {
			if a.Value == 1 {
				out[i] = unknownDim
			} else {
				out[i] = a
			}
			continue
		}
		d, err := inf.broadcastDim(a, b)
		if err != nil {
			return nil, fmt.Errorf("cannot expand %v to %v: %w", DimsString(x.Dims), DimsString(tdims), err)
		}
		out[i] = d
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) tile(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	reps, ok := inf.intsOf(n, 1)
	out := make([]Dim, len(x.Dims))
	if ok && len(reps) != len(x.Dims) {
		return nil, fmt.Errorf("repeats has %d values for rank %d", len(reps), len(x.Dims))
	}
	for i, d := range x.Dims {
		switch {
		case !ok:
			out[i] = unknownDim
		case reps[i] == 1:
			out[i] = d
		default:
			out[i] = dimArith(d, '*', D(reps[i]))
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) einsum(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	eq := strings.ReplaceAll(AttrStringOr(n, "equation", ""), " ", "")
	x := inf.in0(n)
	lhs, rhs, explicit := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != len(n.Input) {
		return nil, fmt.Errorf("equation %q has %d operands, node has %d inputs", eq, len(terms), len(n.Input))
	}
	labels := map[byte]Dim{}
	count := map[byte]int{}
	var ell []Dim
	for i, term := range terms {
		t, _ := inf.in(n, i)
		hasEll := strings.Contains(term, "...")
		if !t.RankKnown {
			if hasEll {
				return same(TypeInfo{Elem: x.Elem}), nil
			}
			t = Tensor(t.Elem, unknownDims(len(term))...) // the term gives the rank
		}
		plain := strings.ReplaceAll(term, "...", "")
		nell := len(t.Dims) - len(plain)
		if (!hasEll && nell != 0) || nell < 0 {
			return nil, fmt.Errorf("equation term %q does not match operand %d of rank %d", term, i, len(t.Dims))
		}
		j := 0
		for k := 0; k < len(term); k++ {
			if strings.HasPrefix(term[k:], "...") {
				var err error
				if ell, err = inf.broadcastDims(ell, t.Dims[j:j+nell]); err != nil {
					return nil, err
				}
				j += nell
				k += 2
				continue
			}
			c := term[k]
			d := t.Dims[j]
			j++
			count[c]++
			if prev, ok := labels[c]; !ok || prev.unknown() {
				labels[c] = d
			} else if !d.unknown() {
				m, err := inf.broadcastDim(prev, d)
				if err != nil {
					return nil, fmt.Errorf("label %q: %w", c, err)
				}
				labels[c] = m
			}
		}
	}
	var out []Dim
	if explicit {
		for k := 0; k < len(rhs); k++ {
			if strings.HasPrefix(rhs[k:], "...") {
				out = append(out, ell...)
				k += 2
				continue
			}
			d, ok := labels[rhs[k]]
			if !ok {
				return nil, fmt.Errorf("output label %q does not appear in the inputs of %q", rhs[k], eq)
			}
			out = append(out, d)
		}
	} else {
		out = append(out, ell...)
		var once []byte
		for c, k := range count {
			if k == 1 {
				once = append(once, c)
			}
		}
		sort.Slice(once, func(i, j int) bool { return once[i] < once[j] })
		for _, c := range once {
			out = append(out, labels[c])
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) shape(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(Tensor(Int64, unknownDim)), nil
	}
	r := int64(len(x.Dims))
	start, end := AttrIntOr(n, "start", 0), AttrIntOr(n, "end", r)
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = max(0, min(start, r)), max(0, min(end, r))
	if end < start {
		end = start
	}
	vals := make([]sv, 0, end-start)
	for _, d := range x.Dims[start:end] {
		vals = append(vals, svOfDim(d))
	}
	inf.vals[n.Output[0]] = vals
	return same(Tensor(Int64, D(end-start))), nil
}

func (inf *inferer) constantOfShape(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	elem := Float32
	var fill *onnxpb.TensorProto
	if a := FindAttr(n, "value"); a != nil && a.T != nil {
		fill = a.T
		elem = DType(a.T.GetDataType())
	}
	st, _ := inf.in(n, 0)
	vals, ok := inf.valsOf(n, 0)
	if !ok {
		if st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			return same(Tensor(elem, unknownDims(st.Dims[0].Value)...)), nil
		}
		return same(TypeInfo{Elem: elem}), nil
	}
	dims := make([]Dim, len(vals))
	for i, v := range vals {
		if d, ok := v.dim(); ok {
			dims[i] = d
		} else {
			dims[i] = unknownDim
		}
	}
	if p := dimProduct(dims); p.Static() && p.Value <= maxKnownElems {
		var v int64
		good := true
		if fill != nil {
			iv, err := ToInt64s(fill)
			good = err == nil && len(iv) == 1
			if good {
				v = iv[0]
			}
		} else {
			good = false
		}
		if good {
			out := make([]sv, p.Value)
			for i := range out {
				out[i] = num(v)
			}
			inf.vals[n.Output[0]] = out
		}
	}
	return same(Tensor(elem, dims...)), nil
}

func (inf *inferer) constant(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	out := n.Output[0]
	for _, a := range n.Attribute {
		switch a.GetName() {
		case "value":
			if a.T == nil {
				return nil, fmt.Errorf("attribute value holds no tensor")
			}
			inf.recordConst(out, a.T)
			return same(TypeInfoOfTensor(a.T)), nil
		case "value_float":
			inf.fvals[out] = []float64{float64(a.GetF())}
			return same(Tensor(Float32)), nil
		case "value_floats":
			return same(Tensor(Float32, D(int64(len(a.Floats))))), nil
		case "value_int":
			inf.vals[out] = []sv{num(a.GetI())}
			return same(Tensor(Int64)), nil
		case "value_ints":
			inf.vals[out] = nums(a.Ints)
			return same(Tensor(Int64, D(int64(len(a.Ints))))), nil
		case "value_string":
			return same(Tensor(String)), nil
		case "value_strings":
			return same(Tensor(String, D(int64(len(a.Strings))))), nil
		case "sparse_value":
			if a.SparseTensor != nil {
				return same(Tensor(DType(a.SparseTensor.GetValues().GetDataType()), Dims(a.SparseTensor.GetDims()...)...)), nil
			}
		}
	}
	return nil, fmt.Errorf("Constant has no value attribute")
}

func (inf *inferer) rangeOp(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	start, ok1 := inf.valsOf(n, 0)
	limit, ok2 := inf.valsOf(n, 1)
	delta, ok3 := inf.valsOf(n, 2)
	if ok1 && ok2 && ok3 && len(start) == 1 && len(limit) == 1 && len(delta) == 1 {
		s, l, d := start[0], limit[0], delta[0]
		if s.ok && l.ok && d.ok && d.v != 0 {
			cnt := max(0, (l.v-s.v+d.v-1)/d.v)
			if d.v < 0 {
				cnt = max(0, (s.v-l.v-d.v-1)/(-d.v))
			}
			if cnt <= maxKnownElems {
				vals := make([]sv, cnt)
				for i := range vals {
					vals[i] = num(s.v + int64(i)*d.v)
				}
				inf.vals[n.Output[0]] = vals
			}
			return same(Tensor(x.Elem, D(cnt))), nil
		}
		if d.ok && d.v == 1 && (s.sym != "" || l.sym != "") {
			// Range(start, limit, 1) has limit - start elements.
			return same(Tensor(x.Elem, dimArith(svDim(l), '-', svDim(s)))), nil
		}
	}
	// Float ranges with constant bounds.
	fs, f1 := inf.fvals[inName(n, 0)]
	fl, f2 := inf.fvals[inName(n, 1)]
	fd, f3 := inf.fvals[inName(n, 2)]
	if f1 && f2 && f3 && len(fs) == 1 && len(fl) == 1 && len(fd) == 1 && fd[0] != 0 {
		return same(Tensor(x.Elem, D(int64(max(0, math.Ceil((fl[0]-fs[0])/fd[0])))))), nil
	}
	return same(Tensor(x.Elem, unknownDim)), nil
}

func (inf *inferer) topK(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return []TypeInfo{{Elem: x.Elem}, {Elem: Int64}}, nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", -1), len(x.Dims))
	if err != nil {
		return nil, err
	}
	dims := append([]Dim{}, x.Dims...)
	if k, ok := inf.valsOf(n, 1); ok && len(k) == 1 {
		if d, ok := k[0].dim(); ok {
			dims[ax] = d
		} else {
			dims[ax] = unknownDim
		}
	} else if k := AttrIntOr(n, "k", -1); k >= 0 && len(n.Input) == 1 {
		dims[ax] = D(k)
	} else {
		dims[ax] = unknownDim
	}
	return []TypeInfo{Tensor(x.Elem, dims...), Tensor(Int64, dims...)}, nil
}

func (inf *inferer) oneHot(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	idx := inf.in0(n)
	vt, _ := inf.in(n, 2)
	if !idx.RankKnown {
		return same(TypeInfo{Elem: vt.Elem}), nil
	}
	r := len(idx.Dims) + 1
	ax, err := normAxis(AttrIntOr(n, "axis", -1), r)
	if err != nil {
		return nil, err
	}
	depth := unknownDim
	if v, ok := inf.valsOf(n, 1); ok && len(v) == 1 {
		if d, ok := v[0].dim(); ok {
			depth = d
		}
	} else if f, ok := inf.fvals[inName(n, 1)]; ok && len(f) == 1 {
		depth = D(int64(f[0]))
	}
	dims := append(append(append([]Dim{}, idx.Dims[:ax]...), depth), idx.Dims[ax:]...)
	return same(Tensor(vt.Elem, dims...)), nil
}

func (inf *inferer) pad(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	var pads []int64
	ok := true
	if len(n.Input) > 1 && n.Input[1] != "" {
		pads, ok = inf.intsOf(n, 1)
	} else {
		pads, _ = AttrIntsOf(n, "pads")
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if a, given, known := inf.axesOf(n, 3); given {
		if !known {
			ok = false
		} else {
			axes = axes[:0]
			for _, v := range a {
				ax, err := normAxis(v, r)
				if err != nil {
					return nil, err
				}
				axes = append(axes, ax)
			}
		}
	}
	out := append([]Dim{}, x.Dims...)
	if !ok || len(pads) != 2*len(axes) {
		return same(Tensor(x.Elem, unknownDims(r)...)), nil
	}
	for i, ax := range axes {
		add := pads[i] + pads[i+len(axes)]
		switch {
		case add == 0:
		default:
			out[ax] = dimArith(out[ax], '+', D(add))
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) lossOp(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	labels, _ := inf.in(n, 1)
	loss := Tensor(x.Elem)
	if AttrStringOr(n, "reduction", "mean") == "none" {
		loss = TypeInfo{Elem: x.Elem, Dims: labels.Dims, RankKnown: labels.RankKnown}
	}
	return []TypeInfo{loss, x}, nil
}

func (inf *inferer) attention(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown || len(x.Dims) != 3 {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if n.GetOpType() == "MultiHeadAttention" {
		v, ok := inf.in(n, 2)
		hidden := x.Dims[2]
		if ok && v.RankKnown && len(v.Dims) == 3 {
			hidden = v.Dims[2]
		} else if ok && v.RankKnown && len(v.Dims) == 4 {
			hidden = dimProduct([]Dim{v.Dims[1], v.Dims[3]})
		}
		return same(Tensor(x.Elem, x.Dims[0], x.Dims[1], hidden)), nil
	}
	hidden := unknownDim
	if sizes, ok := AttrIntsOf(n, "qkv_hidden_sizes"); ok && len(sizes) == 3 {
		hidden = D(sizes[2])
	} else if w, ok := inf.in(n, 1); ok && w.RankKnown && len(w.Dims) == 2 && w.Dims[1].Static() {
		hidden = D(w.Dims[1].Value / 3)
	}
	return same(Tensor(x.Elem, x.Dims[0], x.Dims[1], hidden)), nil
}

// ifOp infers both branches and merges their outputs.
func (inf *inferer) ifOp(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	var branches [][]TypeInfo
	for _, name := range []string{"then_branch", "else_branch"} {
		a := FindAttr(n, name)
		if a == nil || a.G == nil {
			return nil, fmt.Errorf("If has no %s", name)
		}
		if err := inf.graph(a.G); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var outs []TypeInfo
		for _, vi := range a.G.Output {
			outs = append(outs, inf.types[vi.GetName()])
		}
		branches = append(branches, outs)
	}
	if len(branches[0]) != len(branches[1]) {
		return nil, fmt.Errorf("If branches have %d and %d outputs", len(branches[0]), len(branches[1]))
	}
	out := make([]TypeInfo, len(branches[0]))
	for i := range out {
		out[i] = inf.mergeAlternatives(branches[0][i], branches[1][i])
	}
	return out, nil
}

// mergeAlternatives is the type of a value that is one of a or b.
func (inf *inferer) mergeAlternatives(a, b TypeInfo) TypeInfo {
	elem := a.Elem
	if elem == Undefined {
		elem = b.Elem
	}
	if !a.RankKnown || !b.RankKnown || len(a.Dims) != len(b.Dims) {
		return TypeInfo{Elem: elem}
	}
	dims := make([]Dim, len(a.Dims))
	for i := range dims {
		if a.Dims[i].Same(b.Dims[i]) {
			dims[i] = a.Dims[i]
		} else {
			dims[i] = unknownDim
		}
	}
	return Tensor(elem, dims...)
}

// loop infers the body once, with the loop-carried values typed from the
// initial values, and gives scan outputs a leading unknown dimension.
func (inf *inferer) loop(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	a := FindAttr(n, "body")
	if a == nil || a.G == nil {
		return nil, fmt.Errorf("Loop has no body")
	}
	body := a.G
	if len(n.Input) < 2 {
		return nil, fmt.Errorf("Loop needs the trip count and condition inputs (empty names for none)")
	}
	carried := len(n.Input) - 2
	if len(body.Input) != carried+2 {
		return nil, fmt.Errorf("Loop body has %d inputs for %d loop-carried values", len(body.Input), carried)
	}
	// Body inputs without a declared type take the loop's: graph keeps a
	// preset type when the declaration says nothing.
	for i, vi := range body.Input {
		var t TypeInfo
		switch i {
		case 0:
			t = Tensor(Int64)
		case 1:
			t = Tensor(Bool)
		default:
			t, _ = inf.in(n, i)
		}
		inf.types[vi.GetName()] = t
	}
	if len(body.Output) != 1+carried+max(0, len(n.Output)-carried) {
		return nil, fmt.Errorf("Loop body has %d outputs, the node %d loop-carried values and %d outputs", len(body.Output), carried, len(n.Output))
	}
	if err := inf.graph(body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	var out []TypeInfo
	for i, vi := range body.Output[1:] {
		t := inf.types[vi.GetName()]
		if i < carried {
			init, _ := inf.in(n, i+2)
			out = append(out, inf.mergeAlternatives(init, t))
			continue
		}
		if t.RankKnown {
			t = Tensor(t.Elem, append([]Dim{unknownDim}, t.Dims...)...)
		}
		out = append(out, t)
	}
	return out, nil
}
