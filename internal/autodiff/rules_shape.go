package autodiff

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func init() {
	reshapeBack := func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		return []string{c.op("Reshape", []string{gy[0], c.shapeVec(n.Input[0])})}, nil
	}
	register("Reshape", []int{0}, reshapeBack)
	register("Flatten", []int{0}, reshapeBack)
	register("Transpose", nil, vjpTranspose)
	register("Unsqueeze", []int{0}, vjpUnsqueeze)
	register("Squeeze", []int{0}, vjpSqueeze)
	register("Concat", nil, vjpConcat)
	register("Split", []int{0}, vjpSplit)
	register("Slice", []int{0}, vjpSlice)
	register("Expand", []int{0}, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		g, err := c.unb(n, gy[0], 0)
		return []string{g}, err
	})
	register("Tile", []int{0}, vjpTile)
	register("Gather", []int{0}, vjpGather)
	register("GatherElements", []int{0}, vjpGatherElements)
	register("Trilu", []int{0}, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		ins := []string{gy[0]}
		if len(n.Input) > 1 && n.Input[1] != "" {
			ins = append(ins, n.Input[1])
		}
		return []string{c.op("Trilu", ins, intAttr("upper", attrInt(n, "upper", 1)))}, nil
	})
	register("Dropout", []int{0}, vjpDropout)
}

func vjpTranspose(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	r := c.info(n.Input[0]).Rank()
	if r < 0 {
		return nil, fmt.Errorf("rank of %q unknown", n.Input[0])
	}
	perm := transposePerm(n, r)
	inv := make([]int64, r)
	for i, p := range perm {
		inv[p] = int64(i)
	}
	return []string{c.op("Transpose", []string{gy[0]}, intsAttr("perm", inv))}, nil
}

func vjpUnsqueeze(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	axes, ok := c.nodeAxes(n)
	r := c.outInfo(n, 0).Rank()
	if !ok || r < 0 {
		return []string{c.op("Reshape", []string{gy[0], c.shapeVec(n.Input[0])})}, nil
	}
	norm := make([]int64, len(axes))
	for i, a := range axes {
		norm[i] = int64(normAxis(a, r))
	}
	return []string{c.squeeze(gy[0], norm)}, nil
}

func vjpSqueeze(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	axes, ok := c.nodeAxes(n)
	r := c.info(n.Input[0]).Rank()
	if !ok || len(axes) == 0 || r < 0 {
		return []string{c.op("Reshape", []string{gy[0], c.shapeVec(n.Input[0])})}, nil
	}
	norm := make([]int64, len(axes))
	for i, a := range axes {
		norm[i] = int64(normAxis(a, r))
	}
	return []string{c.unsqueeze(gy[0], norm)}, nil
}

// axisLen is a 1-element int64 tensor holding dim a of x.
func (c *ctx) axisLen(x string, a int) string {
	xi := c.info(x)
	if a < xi.Rank() && xi.Dims[a].Static() {
		return c.ints([]int64{xi.Dims[a].Value})
	}
	return c.op("Shape", []string{x}, intAttr("start", int64(a)), intAttr("end", int64(a+1)))
}

func vjpConcat(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	r := c.outInfo(n, 0).Rank()
	if r < 0 {
		return nil, fmt.Errorf("rank of %q unknown", n.Output[0])
	}
	a := normAxis(attrInt(n, "axis", 0), r)
	sizes := make([]string, len(n.Input))
	static := make([]int64, len(n.Input))
	allStatic := true
	for i, in := range n.Input {
		ii := c.info(in)
		if ii.Rank() == r && ii.Dims[a].Static() {
			static[i] = ii.Dims[a].Value
		} else {
			allStatic = false
		}
		sizes[i] = c.axisLen(in, a)
	}
	split := ""
	if allStatic {
		split = c.ints(static)
	} else {
		split = c.op("Concat", sizes, intAttr("axis", 0))
	}
	return c.opDomN("", "Split", []string{gy[0], split}, len(n.Input), intAttr("axis", int64(a))), nil
}

func vjpSplit(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	r := c.info(n.Input[0]).Rank()
	if r < 0 {
		return nil, fmt.Errorf("rank of %q unknown", n.Input[0])
	}
	a := normAxis(attrInt(n, "axis", 0), r)
	parts := make([]string, len(n.Output))
	for i, o := range n.Output {
		if gy[i] != "" {
			parts[i] = gy[i]
			continue
		}
		if o == "" {
			return nil, fmt.Errorf("output %d of Split is unnamed but a sibling has a gradient", i)
		}
		z, err := c.zerosLike(o)
		if err != nil {
			return nil, err
		}
		parts[i] = z
	}
	return []string{c.op("Concat", parts, intAttr("axis", int64(a)))}, nil
}

// vjpSlice pads the gradient back to the input's shape with zeros (unit
// steps), or scatters it along the one sliced axis (other steps).
func vjpSlice(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	x := n.Input[0]
	xi := c.info(x)
	if xi.Rank() < 0 || xi.Elem == onnx.Undefined {
		return nil, fmt.Errorf("rank and type of %q must be known", x)
	}
	r := int64(xi.Rank())
	starts := n.Input[1]
	axes := ""
	if len(n.Input) > 3 && n.Input[3] != "" {
		axes = n.Input[3]
	}
	steps := ""
	if len(n.Input) > 4 && n.Input[4] != "" {
		steps = n.Input[4]
		if v, ok := c.constInts(steps); ok {
			unit := true
			for _, s := range v {
				unit = unit && s == 1
			}
			if unit {
				steps = ""
			}
		}
	}
	if steps != "" {
		return vjpSliceStepped(c, n, gy[0])
	}
	// Static case: every number known, pads are a constant.
	sv, ok1 := c.constInts(starts)
	var av []int64
	ok2 := true
	if axes != "" {
		av, ok2 = c.constInts(axes)
	} else if ok1 {
		for i := range sv {
			av = append(av, int64(i))
		}
	}
	gi := c.outInfo(n, 0)
	if ok1 && ok2 {
		pads := make([]int64, 2*r)
		static := true
		for i, a := range av {
			ax := normAxis(a, int(r))
			d, gd := xi.Dims[ax], gi.Dims[ax]
			if !d.Static() || !gd.Static() {
				static = false
				break
			}
			s := sv[i]
			if s < 0 {
				s += d.Value
			}
			s = min(max(s, 0), d.Value)
			pads[ax] = s
			pads[int(r)+ax] = d.Value - s - gd.Value
		}
		if static {
			zero, err := c.scalarLike(x, 0)
			if err != nil {
				return nil, err
			}
			return []string{c.op("Pad", []string{gy[0], c.ints(pads), zero})}, nil
		}
	}
	// Dynamic: begin = clamp(start (+dim if negative), 0, dim); end pad =
	// dim - begin - len(g), scattered into a 2r pads vector.
	if axes == "" {
		k := c.info(starts)
		if k.Rank() != 1 || !k.Dims[0].Static() {
			return nil, fmt.Errorf("Slice without axes needs a starts input of static length")
		}
		av = nil
		for i := int64(0); i < k.Dims[0].Value; i++ {
			av = append(av, i)
		}
		axes = c.ints(av)
	}
	rr := c.int64Scalar(r)
	zeroI := c.int64Scalar(0)
	axesN := c.op("Where", []string{c.op("Less", []string{axes, zeroI}), c.op("Add", []string{axes, rr}), axes})
	dims := c.op("Gather", []string{c.shapeOf(x), axesN})
	st := c.op("Where", []string{c.op("Less", []string{starts, zeroI}), c.op("Add", []string{starts, dims}), starts})
	st = c.op("Min", []string{c.op("Max", []string{st, zeroI}), dims})
	glen := c.op("Gather", []string{c.shapeOf(gy[0]), axesN})
	endPad := c.op("Sub", []string{c.op("Sub", []string{dims, st}), glen})
	idx := c.op("Concat", []string{axesN, c.op("Add", []string{axesN, rr})}, intAttr("axis", 0))
	vals := c.op("Concat", []string{st, endPad}, intAttr("axis", 0))
	pads := c.op("ScatterElements", []string{c.ints(make([]int64, 2*r)), idx, vals}, intAttr("axis", 0))
	zero, err := c.scalarLike(x, 0)
	if err != nil {
		return nil, err
	}
	return []string{c.op("Pad", []string{gy[0], pads, zero})}, nil
}

// vjpSliceStepped handles a Slice with non-unit steps on a single axis:
// the positions it took are Slice applied to Range(0, dim), and the
// gradient is scattered back to them.
func vjpSliceStepped(c *ctx, n *onnxpb.NodeProto, g string) ([]string, error) {
	x := n.Input[0]
	xi := c.info(x)
	var axis int
	if len(n.Input) > 3 && n.Input[3] != "" {
		av, ok := c.constInts(n.Input[3])
		if !ok || len(av) != 1 {
			return nil, fmt.Errorf("Slice with steps is differentiable only along one constant axis")
		}
		axis = normAxis(av[0], xi.Rank())
	} else if sv, ok := c.constInts(n.Input[1]); !ok || len(sv) != 1 {
		return nil, fmt.Errorf("Slice with steps is differentiable only along one constant axis")
	}
	dimLen := c.op("Squeeze", []string{c.axisLen(x, axis)})
	pos := c.op("Range", []string{c.int64Scalar(0), dimLen, c.int64Scalar(1)})
	taken := c.op("Slice", []string{pos, n.Input[1], n.Input[2], c.ints([]int64{0}), n.Input[4]})
	shape := make([]int64, xi.Rank())
	for i := range shape {
		shape[i] = 1
	}
	shape[axis] = -1
	idx := c.op("Expand", []string{c.op("Reshape", []string{taken, c.ints(shape)}), c.shapeOf(g)})
	z, err := c.zerosLike(x)
	if err != nil {
		return nil, err
	}
	return []string{c.op("ScatterElements", []string{z, idx, g}, intAttr("axis", int64(axis)))}, nil
}

func vjpTile(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	x := n.Input[0]
	xi := c.info(x)
	if xi.Rank() < 0 {
		return nil, fmt.Errorf("rank of %q unknown", x)
	}
	r := xi.Rank()
	if r == 0 {
		return []string{gy[0]}, nil
	}
	// View g as [rep0, d0, rep1, d1, ...] and sum the rep axes.
	reps := c.op("Unsqueeze", []string{n.Input[1], c.ints([]int64{1})})
	dims := c.op("Unsqueeze", []string{c.shapeVec(x), c.ints([]int64{1})})
	inter := c.op("Reshape", []string{c.op("Concat", []string{reps, dims}, intAttr("axis", 1)), c.ints([]int64{-1})})
	axes := make([]int, r)
	for i := range axes {
		axes[i] = 2 * i
	}
	return []string{c.reduce("ReduceSum", c.op("Reshape", []string{gy[0], inter}), axes, false)}, nil
}

func vjpGather(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	data, idx := n.Input[0], n.Input[1]
	di, ii := c.info(data), c.info(idx)
	if di.Rank() < 0 || ii.Rank() < 0 || di.Elem == onnx.Undefined {
		return nil, fmt.Errorf("rank and type of %q and rank of %q must be known", data, idx)
	}
	c.requireOpset(16) // ScatterND reduction="add"
	a := normAxis(attrInt(n, "axis", 0), di.Rank())
	q := ii.Rank()
	g := gy[0]
	// Move the gathered axis to the front so ScatterND can add rows.
	var perm, inv []int64
	if a != 0 {
		yr := di.Rank() + q - 1
		for i := a; i < a+q; i++ {
			perm = append(perm, int64(i))
		}
		for i := 0; i < yr; i++ {
			if i < a || i >= a+q {
				perm = append(perm, int64(i))
			}
		}
		g = c.op("Transpose", []string{g}, intsAttr("perm", perm))
		dperm := []int64{int64(a)}
		for i := 0; i < di.Rank(); i++ {
			if i != a {
				dperm = append(dperm, int64(i))
			}
		}
		inv = make([]int64, di.Rank())
		for i, p := range dperm {
			inv[p] = int64(i)
		}
		// zeros of the permuted data shape
		shape := c.op("Gather", []string{c.shapeVec(data), c.ints(dperm)})
		zero := mustTensor(di.Elem, 0, []int64{1})
		z := c.op("ConstantOfShape", []string{shape}, tensorAttr("value", zero))
		s := c.op("ScatterND", []string{z, c.gatherIndices(data, idx, a), g}, stringAttr("reduction", "add"))
		return []string{c.op("Transpose", []string{s}, intsAttr("perm", inv))}, nil
	}
	sg, err := c.scatterGrad(data, c.gatherIndices(data, idx, 0), g)
	return []string{sg}, err
}

// gatherIndices turns Gather indices into ScatterND indices (a trailing
// axis of 1), with negative indices wrapped, as Gather allows them.
func (c *ctx) gatherIndices(data, idx string, axis int) string {
	ii := idx
	if c.info(idx).Elem != tInt64 {
		ii = c.op("Cast", []string{idx}, intAttr("to", int64(tInt64)))
	}
	if v, ok := c.constInts(idx); !ok || anyNegative(v) {
		zero := c.int64Scalar(0)
		d := c.op("Squeeze", []string{c.axisLen(data, axis)})
		ii = c.op("Where", []string{c.op("Less", []string{ii, zero}), c.op("Add", []string{ii, d}), ii})
	}
	return c.unsqueeze(ii, []int64{-1})
}

func anyNegative(v []int64) bool {
	for _, x := range v {
		if x < 0 {
			return true
		}
	}
	return false
}

func vjpGatherElements(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	data, idx := n.Input[0], n.Input[1]
	di := c.info(data)
	if di.Rank() < 0 {
		return nil, fmt.Errorf("rank of %q unknown", data)
	}
	c.requireOpset(16)
	a := normAxis(attrInt(n, "axis", 0), di.Rank())
	z, err := c.zerosLike(data)
	if err != nil {
		return nil, err
	}
	return []string{c.op("ScatterElements", []string{z, idx, gy[0]}, intAttr("axis", int64(a)), stringAttr("reduction", "add"))}, nil
}

// vjpDropout: in training mode the gradient is g * mask / (1 - ratio) with
// the mask of the forward pass (added as an output if the node had none);
// in inference mode Dropout is the identity.
func vjpDropout(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	training := false
	if len(n.Input) > 2 && n.Input[2] != "" {
		v, ok := c.constInts(n.Input[2])
		if !ok {
			if t, ok2 := c.consts[n.Input[2]]; ok2 && onnx.DType(t.GetDataType()) == tBool {
				v = []int64{int64(boolValue(t))}
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("Dropout's training_mode input %q is not a constant; use EnableTrainingDropout", n.Input[2])
		}
		training = len(v) == 1 && v[0] != 0
	}
	if !training {
		return []string{gy[0]}, nil
	}
	ratio := 0.5
	if len(n.Input) > 1 && n.Input[1] != "" {
		v, ok := c.constFloats(n.Input[1])
		if !ok || len(v) != 1 {
			return nil, fmt.Errorf("Dropout's ratio input %q is not a constant scalar", n.Input[1])
		}
		ratio = v[0]
	}
	if ratio == 0 {
		return []string{gy[0]}, nil
	}
	mask := c.statOutput(n, 1, "dropout_mask")
	dt := c.info(n.Input[0]).Elem
	scale, err := c.constant(dt, 1/(1-ratio), nil)
	if err != nil {
		return nil, err
	}
	m := c.op("Cast", []string{mask}, intAttr("to", int64(dt)))
	return []string{c.op("Mul", []string{gy[0], c.op("Mul", []string{m, scale})})}, nil
}

func boolValue(t *onnxpb.TensorProto) int {
	if len(t.RawData) > 0 {
		return int(t.RawData[0])
	}
	if len(t.Int32Data) > 0 {
		return int(t.Int32Data[0])
	}
	return 0
}
