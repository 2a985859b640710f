package autodiff

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func init() {
	register("MatMul", nil, vjpMatMul)
	register("Gemm", nil, vjpGemm)
	register("Softmax", nil, vjpSoftmax)
	register("LogSoftmax", nil, vjpLogSoftmax)
	register("LayerNormalization", []int{0, 1, 2}, vjpLayerNorm)
	register("SimplifiedLayerNormalization", []int{0, 1}, vjpLayerNorm)
	register("com.microsoft::SimplifiedLayerNormalization", []int{0, 1}, vjpLayerNorm)
	for _, op := range []string{"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp"} {
		register(op, []int{0}, vjpReduce)
	}
	register("Einsum", nil, vjpEinsum)
}

func vjpMatMul(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	a, b := n.Input[0], n.Input[1]
	ai, bi, yi := c.info(a), c.info(b), c.outInfo(n, 0)
	if ai.Rank() < 1 || bi.Rank() < 1 || yi.Rank() < 0 {
		return nil, fmt.Errorf("ranks of %q and %q must be known", a, b)
	}
	out := make([]string, 2)
	g := gy[0]
	// Promote vectors to matrices as MatMul does, and g along with them.
	a2, b2, g2 := a, b, g
	ra, rb := ai.Rank(), bi.Rank()
	if ra == 1 {
		a2 = c.unsqueeze(a, []int64{0})
		g2 = c.unsqueeze(g2, []int64{int64(yi.Rank() - boolInt(rb > 1))})
		ra = 2
	}
	if rb == 1 {
		b2 = c.unsqueeze(b, []int64{1})
		g2 = c.unsqueeze(g2, []int64{-1})
		rb = 2
	}
	swap := func(r int) *onnxpb.AttributeProto {
		perm := make([]int64, r)
		for i := range perm {
			perm[i] = int64(i)
		}
		perm[r-1], perm[r-2] = perm[r-2], perm[r-1]
		return intsAttr("perm", perm)
	}
	gRank := max(ra, rb)
	batchOf := func(in onnx.TypeInfo) []onnx.Dim { return in.Dims[:max(in.Rank()-2, 0)] }
	batch, err := onnx.BroadcastDims(batchOf(ai), batchOf(bi))
	if err != nil {
		return nil, err
	}
	if need[0] {
		var ga string
		if rb == 2 && ra == 2 {
			ga = c.gemm(ai.Elem, g2, b2, 0, 1, nil)
		} else {
			ga = c.op("MatMul", []string{g2, c.op("Transpose", []string{b2}, swap(rb))})
		}
		if gRank > ra {
			ga = c.reduce("ReduceSum", ga, allAxes(gRank-ra), false)
		}
		ga, err := c.unbroadcastBatch(ga, a, ai, batch)
		if err != nil {
			return nil, err
		}
		if ai.Rank() == 1 {
			ga = c.op("Reshape", []string{ga, c.shapeVec(a)})
		}
		out[0] = ga
	}
	if need[1] {
		var gb string
		switch {
		case rb == 2 && ra == 2:
			gb = c.gemm(ai.Elem, a2, g2, 1, 0, nil)
		case rb == 2:
			// Fold all batch dims into one GEMM instead of a batched
			// product followed by a sum.
			am := c.op("Reshape", []string{a2, c.flatShape(a2, ai)})
			gi := yi // only the last dim matters: 1 when b was a vector
			if bi.Rank() == 1 {
				gi = onnx.Tensor(onnx.Undefined, onnx.D(1))
			}
			gm := c.op("Reshape", []string{g2, c.flatShape(g2, gi)})
			gb = c.gemm(ai.Elem, am, gm, 1, 0, nil)
		default:
			gb = c.op("MatMul", []string{c.op("Transpose", []string{a2}, swap(ra)), g2})
			if gRank > rb {
				gb = c.reduce("ReduceSum", gb, allAxes(gRank-rb), false)
			}
			var err error
			if gb, err = c.unbroadcastBatch(gb, b, bi, batch); err != nil {
				return nil, err
			}
		}
		if bi.Rank() == 1 {
			gb = c.op("Reshape", []string{gb, c.shapeVec(b)})
		}
		out[1] = gb
	}
	return out, nil
}

// gemm multiplies two matrices, either transposed, times alpha (nil: 1):
// Gemm in float32 and float64, Transpose and MatMul in float16 and
// bfloat16, because ONNX Runtime's CPU Gemm for float16 accumulates in
// float16 (its error grows with the inner dimension: the sums over every
// token of a batch that weight gradients are), while its float16 MatMul
// accumulates in float32 and rounds once, as PyTorch does.
// dt is the operands' element type.
func (c *ctx) gemm(dt onnx.DType, x, y string, tx, ty int64, alpha *onnxpb.AttributeProto) string {
	if dt != tFloat16 && dt != tBFloat16 {
		return c.op("Gemm", []string{x, y}, alpha, intAttr("transA", tx), intAttr("transB", ty))
	}
	var k string
	if alpha != nil && alpha.GetF() != 1 {
		// the element type is float16 or bfloat16: constant cannot fail
		k, _ = c.constant(dt, float64(alpha.GetF()), nil)
	}
	t := intsAttr("perm", []int64{1, 0})
	if tx == 1 {
		x = c.op("Transpose", []string{x}, t)
	}
	if ty == 1 {
		y = c.op("Transpose", []string{y}, t)
	}
	out := c.op("MatMul", []string{x, y})
	if k != "" {
		out = c.op("Mul", []string{out, k})
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// flatShape is the shape [-1, last dim of x] that folds x's leading dims
// into one: a constant when the last dim is static, else built once per
// value from Shape.
func (c *ctx) flatShape(x string, xi onnx.TypeInfo) string {
	if r := xi.Rank(); r > 0 && xi.Dims[r-1].Static() {
		return c.ints([]int64{-1, xi.Dims[r-1].Value})
	}
	key := "flat/" + x
	if name, ok := c.cache[key]; ok {
		return name
	}
	name := c.op("Concat", []string{c.ints([]int64{-1}), c.op("Shape", []string{x}, intAttr("start", -1))}, intAttr("axis", 0))
	c.cache[key] = name
	return name
}

// unbroadcastBatch reduces the batch dims of a MatMul gradient g (of
// rank r, batch dims = batch, last two dims = x's) to those of operand x.
func (c *ctx) unbroadcastBatch(g, x string, xi onnx.TypeInfo, batch []onnx.Dim) (string, error) {
	if xi.Rank() <= 2 {
		return g, nil
	}
	gInfo := onnx.Tensor(xi.Elem, append(append([]onnx.Dim{}, batch[len(batch)-(xi.Rank()-2):]...), xi.Dims[xi.Rank()-2:]...)...)
	return c.unbroadcast(g, gInfo, x)
}

func vjpGemm(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	a, b := n.Input[0], n.Input[1]
	g := gy[0]
	alpha := attrFloat(n, "alpha", 1)
	beta := attrFloat(n, "beta", 1)
	ta, tb := attrInt(n, "transA", 0), attrInt(n, "transB", 0)
	out := make([]string, len(n.Input))
	al := floatAttr("alpha", alpha)
	if alpha == 1 {
		al = nil
	}
	dt := c.info(a).Elem
	gemm := func(x, y string, tx, ty int64) string { return c.gemm(dt, x, y, tx, ty, al) }
	if need[0] {
		if ta == 0 {
			out[0] = gemm(g, b, 0, 1-tb)
		} else {
			out[0] = gemm(b, g, tb, 1)
		}
	}
	if need[1] {
		if tb == 0 {
			out[1] = gemm(a, g, 1-ta, 0)
		} else {
			out[1] = gemm(g, a, 1, ta)
		}
	}
	if len(n.Input) > 2 && n.Input[2] != "" && need[2] {
		gc := g
		if beta != 1 {
			k, err := c.scalarLike(n.Input[2], float64(beta))
			if err != nil {
				return nil, err
			}
			gc = c.op("Mul", []string{g, k})
		}
		var err error
		if out[2], err = c.unb(n, gc, 2); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func softmaxAxis(c *ctx, n *onnxpb.NodeProto) (int, error) {
	r := c.info(n.Input[0]).Rank()
	if r < 0 {
		return 0, fmt.Errorf("rank of %q unknown", n.Input[0])
	}
	return normAxis(attrInt(n, "axis", -1), r), nil
}

func vjpSoftmax(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	// dx = y * (g - sum(g*y, axis))
	a, err := softmaxAxis(c, n)
	if err != nil {
		return nil, err
	}
	y := n.Output[0]
	gyy := c.op("Mul", []string{gy[0], y})
	s := c.reduce("ReduceSum", gyy, []int{a}, true)
	// y*g - y*s reuses g*y.
	return []string{c.op("Sub", []string{gyy, c.op("Mul", []string{y, s})})}, nil
}

func vjpLogSoftmax(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	// dx = g - exp(y) * sum(g, axis)
	a, err := softmaxAxis(c, n)
	if err != nil {
		return nil, err
	}
	s := c.reduce("ReduceSum", gy[0], []int{a}, true)
	return []string{c.op("Sub", []string{gy[0], c.op("Mul", []string{c.op("Exp", []string{n.Output[0]}), s})})}, nil
}

// statOutput returns output i of forward node n, adding it (a fresh name)
// when the node does not produce it yet, so the backward pass reuses the
// statistics the forward pass computed anyway.
func (c *ctx) statOutput(n *onnxpb.NodeProto, i int, what string) string {
	if i < len(n.Output) && n.Output[i] != "" {
		return n.Output[i]
	}
	key := fmt.Sprintf("stat/%p/%d", n, i)
	if name, ok := c.cache[key]; ok {
		return name
	}
	name := c.fresh(what)
	c.cache[key] = name
	c.edits = append(c.edits, func() {
		for len(n.Output) <= i {
			n.Output = append(n.Output, "")
		}
		n.Output[i] = name
	})
	return name
}

// vjpLayerNorm covers LayerNormalization (Y, Mean, InvStdDev) and
// SimplifiedLayerNormalization (RMS norm: Y, InvStdDev), normalizing over
// axes [axis, rank).
func vjpLayerNorm(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	x := n.Input[0]
	xi := c.info(x)
	if xi.Rank() < 0 || xi.Elem == onnx.Undefined {
		return nil, fmt.Errorf("rank and type of %q must be known", x)
	}
	simplified := n.GetOpType() == "SimplifiedLayerNormalization"
	a := normAxis(attrInt(n, "axis", -1), xi.Rank())
	var normAxes []int
	for i := a; i < xi.Rank(); i++ {
		normAxes = append(normAxes, i)
	}
	cast := func(v string) string {
		// Statistics are float32 (stash_type) whatever x's type; bring
		// them to x's type.
		if xi.Elem == tFloat32 {
			return v
		}
		return c.op("Cast", []string{v}, intAttr("to", int64(xi.Elem)))
	}
	var xhat, invstd string
	if simplified {
		invstd = cast(c.statOutput(n, 1, "inv_std_var"))
		xhat = c.op("Mul", []string{x, invstd})
	} else {
		mean := cast(c.statOutput(n, 1, "mean"))
		invstd = cast(c.statOutput(n, 2, "inv_std_dev"))
		xhat = c.op("Mul", []string{c.op("Sub", []string{x, mean}), invstd})
	}
	g := gy[0]
	out := make([]string, len(n.Input))
	gScaled := c.op("Mul", []string{g, n.Input[1]})
	gInfo := c.outInfo(n, 0)
	if need[0] {
		// dx = invstd * (gs - mean(gs) - xhat * mean(gs * xhat)); the RMS
		// form drops the mean(gs) term.
		m2 := c.reduce("ReduceMean", c.op("Mul", []string{gScaled, xhat}), normAxes, true)
		t := c.op("Mul", []string{xhat, m2})
		inner := c.op("Sub", []string{gScaled, t})
		if !simplified {
			inner = c.op("Sub", []string{inner, c.reduce("ReduceMean", gScaled, normAxes, true)})
		}
		out[0] = c.op("Mul", []string{inner, invstd})
	}
	if need[1] {
		var err error
		if out[1], err = c.unbroadcast(c.op("Mul", []string{g, xhat}), gInfo, n.Input[1]); err != nil {
			return nil, err
		}
	}
	if len(n.Input) > 2 && n.Input[2] != "" && need[2] {
		var err error
		if out[2], err = c.unbroadcast(g, gInfo, n.Input[2]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func vjpReduce(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	x, y := n.Input[0], n.Output[0]
	xi := c.info(x)
	if xi.Rank() < 0 || xi.Elem == onnx.Undefined {
		return nil, fmt.Errorf("rank and type of %q must be known", x)
	}
	axes, ok := c.reduceAxes(n, xi.Rank())
	if !ok {
		return nil, fmt.Errorf("the axes input %q is not a constant", n.Input[1])
	}
	if len(axes) == 0 {
		return []string{gy[0]}, nil
	}
	keep := attrInt(n, "keepdims", 1) == 1
	g := gy[0]
	ax := make([]int64, len(axes))
	for i, a := range axes {
		ax[i] = int64(a)
	}
	if !keep && len(axes) < xi.Rank() {
		// (a full reduction leaves a scalar, which broadcasts as it is)
		g = c.unsqueeze(g, ax)
	}
	// y with the reduced axes kept, for the rules that read it.
	keptY := func() string {
		if keep || len(axes) == xi.Rank() {
			return y
		}
		return c.unsqueeze(y, ax)
	}
	// g now has x's rank with reduced dims 1; Mul / Where broadcast it.
	switch n.GetOpType() {
	case "ReduceSum":
		return []string{c.op("Expand", []string{g, c.shapeVec(x)})}, nil
	case "ReduceMean":
		count, err := c.reducedCount(x, xi, y, axes)
		if err != nil {
			return nil, err
		}
		return []string{c.op("Expand", []string{c.op("Div", []string{g, count}), c.shapeVec(x)})}, nil
	case "ReduceSumSquare":
		two, err := c.scalarLike(x, 2)
		if err != nil {
			return nil, err
		}
		return []string{c.op("Mul", []string{c.op("Mul", []string{x, two}), g})}, nil
	case "ReduceL2":
		return []string{c.op("Mul", []string{x, c.op("Div", []string{g, keptY()})})}, nil
	case "ReduceLogSumExp":
		return []string{c.op("Mul", []string{c.op("Exp", []string{c.op("Sub", []string{x, keptY()})}), g})}, nil
	default: // ReduceMax, ReduceMin: split evenly among the extreme elements
		dt := int64(xi.Elem)
		mask := c.op("Cast", []string{c.op("Equal", []string{x, keptY()})}, intAttr("to", dt))
		count := c.reduce("ReduceSum", mask, axes, true)
		return []string{c.op("Mul", []string{mask, c.op("Div", []string{g, count})})}, nil
	}
}

// reducedCount is the number of elements each output of a reduction sums,
// as a scalar of x's type: a constant when the reduced dims are static.
func (c *ctx) reducedCount(x string, xi onnx.TypeInfo, y string, axes []int) (string, error) {
	p := int64(1)
	for _, a := range axes {
		if !xi.Dims[a].Static() {
			p = -1
			break
		}
		p *= xi.Dims[a].Value
	}
	if p > 0 {
		return c.scalarLike(x, float64(p))
	}
	idx := make([]int64, len(axes))
	for i, a := range axes {
		idx[i] = int64(a)
	}
	dims := c.op("Gather", []string{c.shapeOf(x), c.ints(idx)})
	prod := c.op("ReduceProd", []string{dims}, intAttr("keepdims", 0))
	return c.op("Cast", []string{prod}, intAttr("to", int64(xi.Elem))), nil
}
