package autodiff

import (
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// dim is one dimension as far as it is known before running the graph: a
// size (v >= 0), a named symbolic size (sym != ""), or nothing (v < 0, no
// name). Two dims are provably equal only when both have the same size or
// the same name.
type dim struct {
	v   int64
	sym string
}

var unknownDim = dim{v: -1}

func (d dim) static() bool { return d.v >= 0 }

func (d dim) same(e dim) bool {
	if d.static() || e.static() {
		return d.v == e.v
	}
	return d.sym != "" && d.sym == e.sym
}

// info is the element type and shape of a value as far as they are known.
// rank < 0 means unknown rank (dims is then nil); dtype 0 means unknown.
type info struct {
	dtype int32
	rank  int
	dims  []dim
}

func unknownInfo() info { return info{rank: -1} }

func withRank(dt int32, r int) info {
	d := make([]dim, r)
	for i := range d {
		d[i] = unknownDim
	}
	return info{dtype: dt, rank: r, dims: d}
}

func staticInfo(dt int32, dims []int64) info {
	in := info{dtype: dt, rank: len(dims), dims: make([]dim, len(dims))}
	for i, v := range dims {
		in.dims[i] = dim{v: v}
	}
	return in
}

// staticDims returns the shape if every dim is a known size.
func (in info) staticDims() ([]int64, bool) {
	if in.rank < 0 {
		return nil, false
	}
	out := make([]int64, in.rank)
	for i, d := range in.dims {
		if !d.static() {
			return nil, false
		}
		out[i] = d.v
	}
	return out, true
}

func (in info) sameShape(o info) bool {
	if in.rank < 0 || in.rank != o.rank {
		return false
	}
	for i := range in.dims {
		if !in.dims[i].same(o.dims[i]) {
			return false
		}
	}
	return true
}

func infoFromType(t *onnxpb.TypeProto) info {
	tt := t.GetTensorType()
	if tt == nil {
		return unknownInfo()
	}
	in := info{dtype: tt.GetElemType(), rank: -1}
	if tt.Shape == nil {
		return in
	}
	in.rank = len(tt.Shape.Dim)
	in.dims = make([]dim, in.rank)
	for i, d := range tt.Shape.Dim {
		switch {
		case d.GetDimParam() != "":
			in.dims[i] = dim{v: -1, sym: d.GetDimParam()}
		case d.Value != nil && d.GetDimValue() >= 0:
			if _, ok := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimValue); ok {
				in.dims[i] = dim{v: d.GetDimValue()}
			} else {
				in.dims[i] = unknownDim
			}
		default:
			in.dims[i] = unknownDim
		}
	}
	return in
}

// broadcastDims gives the numpy-broadcast shape of several infos.
func broadcastInfo(dt int32, ins ...info) info {
	r := 0
	for _, in := range ins {
		if in.rank < 0 {
			return info{dtype: dt, rank: -1}
		}
		if in.rank > r {
			r = in.rank
		}
	}
	out := withRank(dt, r)
	for i := 0; i < r; i++ {
		var cur *dim
		for _, in := range ins {
			j := i - (r - in.rank)
			if j < 0 {
				continue
			}
			d := in.dims[j]
			if cur == nil {
				c := d
				cur = &c
				continue
			}
			switch {
			case d.static() && d.v == 1:
			case cur.static() && cur.v == 1:
				*cur = d
			case cur.same(d):
			case d.static():
				*cur = d // a named dim must equal a size > 1
			case cur.static():
			default:
				*cur = unknownDim
			}
		}
		out.dims[i] = *cur
	}
	return out
}

// inferInfos fills c.infos for every value of the graph: declared types
// (inputs, outputs, value_info, initializers) win; the rest is derived node
// by node for the operators ortrain meets in seq2seq graphs. Unknown stays
// unknown; a rule that needs a rank reports it.
func (c *ctx) inferInfos() {
	g := c.g
	for _, t := range g.Initializer {
		c.infos[t.GetName()] = staticInfo(t.GetDataType(), t.Dims)
	}
	for _, lists := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, vi := range lists {
			if vi.Type == nil {
				continue
			}
			in := infoFromType(vi.Type)
			if old, ok := c.infos[vi.GetName()]; ok && in.rank < 0 {
				continue
			} else if ok && in.dtype == 0 {
				in.dtype = old.dtype
			}
			c.infos[vi.GetName()] = in
		}
	}
	// The IR package's inference (with shape-constant folding) comes first;
	// a contradiction it reports is left for ONNX Runtime to name, and the
	// local rules below fill whatever it could not derive.
	types, _ := onnx.InferShapes(g, c.opsets)
	for name, t := range types {
		if t.Elem == onnx.Undefined && !t.RankKnown {
			continue
		}
		in := info{dtype: int32(t.Elem), rank: -1}
		if t.RankKnown {
			in.rank = len(t.Dims)
			in.dims = make([]dim, in.rank)
			for i, d := range t.Dims {
				switch {
				case d.Value >= 0:
					in.dims[i] = dim{v: d.Value}
				case d.Param != "":
					in.dims[i] = dim{v: -1, sym: d.Param}
				default:
					in.dims[i] = unknownDim
				}
			}
		}
		if old, ok := c.infos[name]; ok {
			if in.dtype == 0 {
				in.dtype = old.dtype
			}
			if in.rank < 0 {
				in.rank, in.dims = old.rank, old.dims
			}
		}
		c.infos[name] = in
	}
	for _, n := range g.Node {
		outs := c.inferNode(n)
		for i, o := range n.Output {
			if o == "" || i >= len(outs) {
				continue
			}
			old, ok := c.infos[o]
			if !ok {
				c.infos[o] = outs[i]
				continue
			}
			// Fill gaps in declared info from the derived one.
			if old.dtype == 0 {
				old.dtype = outs[i].dtype
			}
			if old.rank < 0 && outs[i].rank >= 0 {
				old.rank, old.dims = outs[i].rank, outs[i].dims
			}
			c.infos[o] = old
		}
	}
}

func (c *ctx) info(name string) info {
	if in, ok := c.infos[name]; ok {
		return in
	}
	return unknownInfo()
}

// normAxis maps a possibly negative axis into [0, r).
func normAxis(a int64, r int) int {
	if a < 0 {
		a += int64(r)
	}
	return int(a)
}

// reduceAxes returns the axes a Reduce* node reduces (from its attribute or
// constant second input) and whether they are known; all=true when every
// axis is reduced.
func (c *ctx) reduceAxes(n *onnxpb.NodeProto, r int) (axes []int, known bool) {
	var raw []int64
	if a, ok := attrInts(n, "axes"); ok {
		raw = a
	} else if len(n.Input) > 1 && n.Input[1] != "" {
		v, ok := c.constInts(n.Input[1])
		if !ok {
			return nil, false
		}
		raw = v
	}
	if len(raw) == 0 {
		if attrInt(n, "noop_with_empty_axes", 0) == 1 {
			return []int{}, true
		}
		all := make([]int, r)
		for i := range all {
			all[i] = i
		}
		return all, true
	}
	seen := map[int]bool{}
	for _, a := range raw {
		ax := normAxis(a, r)
		if !seen[ax] {
			seen[ax] = true
			axes = append(axes, ax)
		}
	}
	return sortedInts(axes), true
}

func sortedInts(a []int) []int {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
	return a
}

func (c *ctx) in(n *onnxpb.NodeProto, i int) info {
	if i >= len(n.Input) || n.Input[i] == "" {
		return unknownInfo()
	}
	return c.info(n.Input[i])
}

// inferNode derives the output infos of one node.
func (c *ctx) inferNode(n *onnxpb.NodeProto) []info {
	x := c.in(n, 0)
	same := func() []info { return []info{x} }
	switch n.GetDomain() {
	case "", "ai.onnx":
	case "com.microsoft":
		switch n.GetOpType() {
		case "Gelu", "FastGelu", "BiasGelu", "QuickGelu":
			return same()
		case "SimplifiedLayerNormalization", "LayerNormalization":
			return c.inferLayerNorm(n, x)
		}
		return nil
	default:
		return nil
	}
	switch op := n.GetOpType(); op {
	case "Identity", "Neg", "Exp", "Log", "Tanh", "Erf", "Relu", "Sigmoid", "Sqrt", "Reciprocal", "Abs",
		"Softmax", "LogSoftmax", "Gelu", "Trilu", "Clip", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
		"Softplus", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "CumSum", "Mish", "HardSwish", "Celu":
		return same()
	case "Not", "IsNaN", "IsInf":
		return []info{{dtype: tBool, rank: x.rank, dims: x.dims}}
	case "Dropout":
		return []info{x, {dtype: tBool, rank: x.rank, dims: x.dims}}
	case "Cast":
		return []info{{dtype: int32(attrInt(n, "to", 0)), rank: x.rank, dims: x.dims}}
	case "CastLike":
		return []info{{dtype: c.in(n, 1).dtype, rank: x.rank, dims: x.dims}}
	case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Max", "Min", "Sum", "Mean", "PRelu":
		ins := make([]info, len(n.Input))
		for i := range n.Input {
			ins[i] = c.in(n, i)
		}
		return []info{broadcastInfo(x.dtype, ins...)}
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor":
		return []info{broadcastInfo(tBool, x, c.in(n, 1))}
	case "Where":
		return []info{broadcastInfo(c.in(n, 1).dtype, x, c.in(n, 1), c.in(n, 2))}
	case "LayerNormalization":
		return c.inferLayerNorm(n, x)
	case "MatMul":
		return []info{matmulInfo(x, c.in(n, 1))}
	case "Gemm":
		b := c.in(n, 1)
		out := withRank(x.dtype, 2)
		if x.rank == 2 {
			out.dims[0] = x.dims[attrInt(n, "transA", 0)]
		}
		if b.rank == 2 {
			out.dims[1] = b.dims[1-attrInt(n, "transB", 0)]
		}
		return []info{out}
	case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceLogSum":
		if x.rank < 0 {
			_, hasAxes := attrInts(n, "axes")
			hasAxes = hasAxes || len(n.Input) > 1 && n.Input[1] != ""
			if !hasAxes && attrInt(n, "keepdims", 1) == 0 && attrInt(n, "noop_with_empty_axes", 0) == 0 {
				return []info{{dtype: x.dtype, rank: 0}} // everything reduced
			}
			return []info{{dtype: x.dtype, rank: -1}}
		}
		axes, ok := c.reduceAxes(n, x.rank)
		if !ok {
			if attrInt(n, "keepdims", 1) == 1 {
				return []info{withRank(x.dtype, x.rank)}
			}
			return []info{{dtype: x.dtype, rank: -1}}
		}
		return []info{reducedInfo(x, axes, attrInt(n, "keepdims", 1) == 1)}
	case "ArgMax", "ArgMin":
		if x.rank < 0 {
			return []info{{dtype: tInt64, rank: -1}}
		}
		out := reducedInfo(x, []int{normAxis(attrInt(n, "axis", 0), x.rank)}, attrInt(n, "keepdims", 1) == 1)
		out.dtype = tInt64
		return []info{out}
	case "Gather":
		idx := c.in(n, 1)
		if x.rank < 0 || idx.rank < 0 {
			return []info{{dtype: x.dtype, rank: -1}}
		}
		a := normAxis(attrInt(n, "axis", 0), x.rank)
		dims := append(append(append([]dim{}, x.dims[:a]...), idx.dims...), x.dims[a+1:]...)
		return []info{{dtype: x.dtype, rank: len(dims), dims: dims}}
	case "GatherElements":
		idx := c.in(n, 1)
		return []info{{dtype: x.dtype, rank: idx.rank, dims: idx.dims}}
	case "ScatterND", "ScatterElements":
		return same()
	case "Shape":
		if x.rank < 0 {
			return []info{withRank(tInt64, 1)}
		}
		s, e := shapeRange(n, x.rank)
		return []info{staticInfo(tInt64, []int64{int64(e - s)})}
	case "Size":
		return []info{staticInfo(tInt64, nil)}
	case "Reshape":
		return []info{c.reshapeInfo(x, n.Input[1])}
	case "Flatten":
		out := withRank(x.dtype, 2)
		if sd, ok := x.staticDims(); ok {
			a := normAxis(attrInt(n, "axis", 1), x.rank)
			p, q := int64(1), int64(1)
			for i, d := range sd {
				if i < a {
					p *= d
				} else {
					q *= d
				}
			}
			out.dims = []dim{{v: p}, {v: q}}
		}
		return []info{out}
	case "Transpose":
		if x.rank < 0 {
			return same()
		}
		perm := transposePerm(n, x.rank)
		out := withRank(x.dtype, x.rank)
		for i, p := range perm {
			out.dims[i] = x.dims[p]
		}
		return []info{out}
	case "Unsqueeze":
		axes, ok := c.nodeAxes(n)
		if !ok || x.rank < 0 {
			return []info{{dtype: x.dtype, rank: -1}}
		}
		r := x.rank + len(axes)
		isNew := map[int]bool{}
		for _, a := range axes {
			isNew[normAxis(a, r)] = true
		}
		out := withRank(x.dtype, r)
		j := 0
		for i := 0; i < r; i++ {
			if isNew[i] {
				out.dims[i] = dim{v: 1}
			} else {
				out.dims[i] = x.dims[j]
				j++
			}
		}
		return []info{out}
	case "Squeeze":
		if x.rank < 0 {
			return same()
		}
		axes, ok := c.nodeAxes(n)
		if !ok {
			return []info{{dtype: x.dtype, rank: -1}}
		}
		drop := map[int]bool{}
		if len(axes) == 0 {
			for i, d := range x.dims {
				if !d.static() {
					return []info{{dtype: x.dtype, rank: -1}}
				}
				if d.v == 1 {
					drop[i] = true
				}
			}
		}
		for _, a := range axes {
			drop[normAxis(a, x.rank)] = true
		}
		out := info{dtype: x.dtype}
		for i, d := range x.dims {
			if !drop[i] {
				out.dims = append(out.dims, d)
			}
		}
		out.rank = len(out.dims)
		return []info{out}
	case "Concat":
		if x.rank < 0 {
			return same()
		}
		a := normAxis(attrInt(n, "axis", 0), x.rank)
		out := withRank(x.dtype, x.rank)
		copy(out.dims, x.dims)
		total := int64(0)
		for i := range n.Input {
			in := c.in(n, i)
			if in.rank != x.rank || !in.dims[a].static() || total < 0 {
				total = -1
				continue
			}
			total += in.dims[a].v
		}
		out.dims[a] = dim{v: total}
		if total < 0 {
			out.dims[a] = unknownDim
		}
		return []info{out}
	case "Split":
		return c.splitInfos(n, x)
	case "Slice":
		return []info{c.sliceInfo(n, x)}
	case "Expand":
		return []info{c.expandInfo(x, n.Input[1])}
	case "Tile":
		out := withRank(x.dtype, x.rank)
		if reps, ok := c.constInts(n.Input[1]); ok && x.rank >= 0 && len(reps) == x.rank {
			for i, d := range x.dims {
				if reps[i] == 1 {
					out.dims[i] = d
				} else if d.static() {
					out.dims[i] = dim{v: d.v * reps[i]}
				}
			}
		}
		return []info{out}
	case "Einsum":
		return []info{c.einsumInfo(n)}
	case "Constant":
		if t := attr(n, "value"); t != nil && t.T != nil {
			return []info{staticInfo(t.T.GetDataType(), t.T.Dims)}
		}
		if a := attr(n, "value_ints"); a != nil {
			return []info{staticInfo(tInt64, []int64{int64(len(a.Ints))})}
		}
		if attr(n, "value_int") != nil {
			return []info{staticInfo(tInt64, nil)}
		}
		if a := attr(n, "value_floats"); a != nil {
			return []info{staticInfo(tFloat32, []int64{int64(len(a.Floats))})}
		}
		if attr(n, "value_float") != nil {
			return []info{staticInfo(tFloat32, nil)}
		}
	case "ConstantOfShape":
		dt := tFloat32
		if a := attr(n, "value"); a != nil && a.T != nil {
			dt = a.T.GetDataType()
		}
		return []info{c.shapeFromInput(dt, n.Input[0])}
	case "Range":
		return []info{withRank(x.dtype, 1)}
	case "NonZero":
		out := withRank(tInt64, 2)
		if x.rank >= 0 {
			out.dims[0] = dim{v: int64(x.rank)}
		}
		return []info{out}
	case "Pad":
		return []info{withRank(x.dtype, x.rank)}
	case "OneHot":
		if x.rank < 0 {
			return []info{{dtype: c.in(n, 2).dtype, rank: -1}}
		}
		return []info{withRank(c.in(n, 2).dtype, x.rank+1)}
	case "RandomUniformLike", "RandomNormalLike", "EyeLike", "Bernoulli":
		dt := int32(attrInt(n, "dtype", int64(x.dtype)))
		return []info{{dtype: dt, rank: x.rank, dims: x.dims}}
	}
	return nil
}

func matmulInfo(a, b info) info {
	if a.rank < 1 || b.rank < 1 {
		return info{dtype: a.dtype, rank: -1}
	}
	ab, bb := a, b
	if a.rank == 1 {
		ab = info{dtype: a.dtype, rank: 2, dims: []dim{{v: 1}, a.dims[0]}}
	}
	if b.rank == 1 {
		bb = info{dtype: b.dtype, rank: 2, dims: []dim{b.dims[0], {v: 1}}}
	}
	batch := broadcastInfo(a.dtype, info{rank: ab.rank - 2, dims: ab.dims[:ab.rank-2]}, info{rank: bb.rank - 2, dims: bb.dims[:bb.rank-2]})
	dims := append([]dim{}, batch.dims...)
	if a.rank > 1 {
		dims = append(dims, ab.dims[ab.rank-2])
	}
	if b.rank > 1 {
		dims = append(dims, bb.dims[bb.rank-1])
	}
	return info{dtype: a.dtype, rank: len(dims), dims: dims}
}

func reducedInfo(x info, axes []int, keep bool) info {
	red := map[int]bool{}
	for _, a := range axes {
		red[a] = true
	}
	out := info{dtype: x.dtype}
	for i, d := range x.dims {
		switch {
		case !red[i]:
			out.dims = append(out.dims, d)
		case keep:
			out.dims = append(out.dims, dim{v: 1})
		}
	}
	out.rank = len(out.dims)
	return out
}

func (c *ctx) inferLayerNorm(n *onnxpb.NodeProto, x info) []info {
	out := []info{x}
	if x.rank < 0 {
		return out
	}
	stat := withRank(tFloat32, x.rank)
	a := normAxis(attrInt(n, "axis", -1), x.rank)
	for i := range stat.dims {
		if i < a {
			stat.dims[i] = x.dims[i]
		} else {
			stat.dims[i] = dim{v: 1}
		}
	}
	if n.GetOpType() == "SimplifiedLayerNormalization" {
		return append(out, stat)
	}
	return append(out, stat, stat)
}

func shapeRange(n *onnxpb.NodeProto, r int) (int, int) {
	clamp := func(v int64) int {
		if v < 0 {
			v += int64(r)
		}
		return int(min(max(v, 0), int64(r)))
	}
	s := clamp(attrInt(n, "start", 0))
	e := r
	if a := attr(n, "end"); a != nil {
		e = clamp(a.GetI())
	}
	if e < s {
		e = s
	}
	return s, e
}

func transposePerm(n *onnxpb.NodeProto, r int) []int {
	perm := make([]int, r)
	if p, ok := attrInts(n, "perm"); ok && len(p) == r {
		for i, v := range p {
			perm[i] = normAxis(v, r)
		}
		return perm
	}
	for i := range perm {
		perm[i] = r - 1 - i
	}
	return perm
}

// nodeAxes reads the axes of Squeeze/Unsqueeze (attribute before opset
// 13, constant input after).
func (c *ctx) nodeAxes(n *onnxpb.NodeProto) ([]int64, bool) {
	if a, ok := attrInts(n, "axes"); ok {
		return a, true
	}
	if len(n.Input) > 1 && n.Input[1] != "" {
		return c.constInts(n.Input[1])
	}
	return nil, true
}

// shapeFromInput is the info of a tensor whose shape is the value of the
// 1-D int64 tensor name (Reshape's, Expand's, ConstantOfShape's input).
func (c *ctx) shapeFromInput(dt int32, name string) info {
	if v, ok := c.constInts(name); ok {
		return staticInfo(dt, v)
	}
	s := c.info(name)
	if s.rank == 1 && s.dims[0].static() {
		out := withRank(dt, int(s.dims[0].v))
		// Shape(x) fed directly keeps x's dims.
		if p := c.producer[name]; p != nil && p.GetOpType() == "Shape" && p.GetDomain() == "" {
			src := c.info(p.Input[0])
			st, e := shapeRange(p, max(src.rank, 0))
			if src.rank >= 0 && e-st == out.rank {
				copy(out.dims, src.dims[st:e])
			}
		}
		return out
	}
	return info{dtype: dt, rank: -1}
}

func (c *ctx) reshapeInfo(x info, shapeName string) info {
	v, ok := c.constInts(shapeName)
	if !ok {
		return c.shapeFromInput(x.dtype, shapeName)
	}
	out := withRank(x.dtype, len(v))
	neg := -1
	known := int64(1)
	for i, d := range v {
		switch {
		case d == 0 && i < x.rank:
			out.dims[i] = x.dims[i]
			if x.dims[i].static() {
				known *= x.dims[i].v
			} else {
				known = -1 << 62
			}
		case d == -1:
			neg = i
		default:
			out.dims[i] = dim{v: d}
			known *= d
		}
	}
	if neg >= 0 {
		if total, ok := x.staticDims(); ok && known > 0 {
			p := int64(1)
			for _, t := range total {
				p *= t
			}
			out.dims[neg] = dim{v: p / known}
		}
	}
	return out
}

func (c *ctx) expandInfo(x info, shapeName string) info {
	s := c.shapeFromInput(x.dtype, shapeName)
	if s.rank < 0 || x.rank < 0 {
		return info{dtype: x.dtype, rank: -1}
	}
	// An Expand target dim of 1 keeps x's dim, so broadcasting gives it.
	return broadcastInfo(x.dtype, x, s)
}

func (c *ctx) splitInfos(n *onnxpb.NodeProto, x info) []info {
	outs := make([]info, len(n.Output))
	for i := range outs {
		outs[i] = withRank(x.dtype, x.rank)
		if x.rank >= 0 {
			copy(outs[i].dims, x.dims)
		}
	}
	if x.rank < 0 {
		return outs
	}
	a := normAxis(attrInt(n, "axis", 0), x.rank)
	sizes, ok := c.splitSizes(n, x)
	for i := range outs {
		if ok {
			outs[i].dims[a] = dim{v: sizes[i]}
		} else {
			outs[i].dims[a] = unknownDim
		}
	}
	return outs
}

// splitSizes gives the static sizes of Split's outputs along its axis.
func (c *ctx) splitSizes(n *onnxpb.NodeProto, x info) ([]int64, bool) {
	if s, ok := attrInts(n, "split"); ok {
		return s, true
	}
	if len(n.Input) > 1 && n.Input[1] != "" {
		return c.constInts(n.Input[1])
	}
	a := normAxis(attrInt(n, "axis", 0), x.rank)
	if !x.dims[a].static() {
		return nil, false
	}
	k := int64(len(n.Output))
	d := x.dims[a].v
	chunk := (d + k - 1) / k
	sizes := make([]int64, k)
	for i := range sizes {
		sizes[i] = min(chunk, max(d-int64(i)*chunk, 0))
	}
	return sizes, true
}

func (c *ctx) sliceInfo(n *onnxpb.NodeProto, x info) info {
	out := withRank(x.dtype, x.rank)
	if x.rank < 0 {
		return out
	}
	copy(out.dims, x.dims)
	starts, ok1 := c.constInts(n.Input[1])
	ends, ok2 := c.constInts(n.Input[2])
	if !ok1 || !ok2 {
		// Axes not known: no dim can be trusted.
		axes, ok := c.sliceAxes(n, x.rank, -1)
		if !ok {
			return withRank(x.dtype, x.rank)
		}
		for _, a := range axes {
			out.dims[a] = unknownDim
		}
		return out
	}
	axes, ok := c.sliceAxes(n, x.rank, len(starts))
	if !ok {
		return withRank(x.dtype, x.rank)
	}
	steps := make([]int64, len(starts))
	for i := range steps {
		steps[i] = 1
	}
	if len(n.Input) > 4 && n.Input[4] != "" {
		s, ok := c.constInts(n.Input[4])
		if !ok {
			for _, a := range axes {
				out.dims[a] = unknownDim
			}
			return out
		}
		steps = s
	}
	for i, a := range axes {
		d := x.dims[a]
		if !d.static() {
			out.dims[a] = unknownDim
			continue
		}
		out.dims[a] = dim{v: sliceLen(starts[i], ends[i], steps[i], d.v)}
	}
	return out
}

// sliceAxes returns Slice's normalized axes; k is the number of starts
// (or -1 when unknown, then only explicit axes are usable).
func (c *ctx) sliceAxes(n *onnxpb.NodeProto, r, k int) ([]int, bool) {
	if len(n.Input) > 3 && n.Input[3] != "" {
		v, ok := c.constInts(n.Input[3])
		if !ok {
			return nil, false
		}
		out := make([]int, len(v))
		for i, a := range v {
			out[i] = normAxis(a, r)
		}
		return out, true
	}
	if k < 0 {
		s := c.info(n.Input[1])
		if s.rank != 1 || !s.dims[0].static() {
			return nil, false
		}
		k = int(s.dims[0].v)
	}
	out := make([]int, k)
	for i := range out {
		out[i] = i
	}
	return out, true
}

// sliceLen is the ONNX Slice output length for one axis of size d.
func sliceLen(start, end, step, d int64) int64 {
	clampIdx := func(v, lo, hi int64) int64 {
		if v < 0 {
			v += d
		}
		return min(max(v, lo), hi)
	}
	if step > 0 {
		s, e := clampIdx(start, 0, d), clampIdx(end, 0, d)
		if e <= s {
			return 0
		}
		return (e - s + step - 1) / step
	}
	s, e := clampIdx(start, 0, d-1), clampIdx(end, -1, d-1)
	if end < -d {
		e = -1
	}
	if s <= e {
		return 0
	}
	return (s - e + (-step) - 1) / (-step)
}

func (c *ctx) einsumInfo(n *onnxpb.NodeProto) info {
	x := c.in(n, 0)
	eq, err := parseEinsum(attrString(n, "equation", ""), c.inputRanks(n))
	if err != nil {
		return info{dtype: x.dtype, rank: -1}
	}
	size := map[byte]dim{}
	for i, term := range eq.inputs {
		in := c.in(n, i)
		for j := 0; j < len(term); j++ {
			if in.rank == len(term) {
				if d := in.dims[j]; d.static() && d.v != 1 || !d.static() && d.sym != "" {
					size[term[j]] = d
				} else if _, ok := size[term[j]]; !ok {
					size[term[j]] = d
				}
			}
		}
	}
	out := withRank(x.dtype, len(eq.output))
	for i := 0; i < len(eq.output); i++ {
		if d, ok := size[eq.output[i]]; ok {
			out.dims[i] = d
		}
	}
	return out
}

func (c *ctx) inputRanks(n *onnxpb.NodeProto) []int {
	r := make([]int, len(n.Input))
	for i := range n.Input {
		r[i] = c.in(n, i).rank
	}
	return r
}
