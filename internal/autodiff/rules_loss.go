package autodiff

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func init() {
	register("GatherND", []int{0}, vjpGatherND)
	register("Pad", []int{0}, vjpPad)
	register("SoftmaxCrossEntropyLoss", []int{0}, vjpSoftmaxCrossEntropy)
	register("NegativeLogLikelihoodLoss", []int{0}, vjpNLL)
}

func vjpGatherND(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	if attrInt(n, "batch_dims", 0) != 0 {
		return nil, fmt.Errorf("GatherND with batch_dims > 0 has no rule")
	}
	data, idx := n.Input[0], n.Input[1]
	ii := c.info(idx)
	if ii.Rank() < 1 || !ii.Dims[ii.Rank()-1].Static() {
		return nil, fmt.Errorf("the last dimension of indices %q must be static", idx)
	}
	c.requireOpset(16)
	k := ii.Dims[ii.Rank()-1].Value
	// Wrap negative indices, as GatherND allows them.
	lim := c.op("Shape", []string{data}, intAttr("start", 0), intAttr("end", k))
	zero := c.int64Scalar(0)
	wrapped := c.op("Where", []string{c.op("Less", []string{idx, zero}), c.op("Add", []string{idx, lim}), idx})
	z, err := c.zerosLike(data)
	if err != nil {
		return nil, err
	}
	return []string{c.op("ScatterND", []string{z, wrapped, gy[0]}, stringAttr("reduction", "add"))}, nil
}

// vjpPad crops the gradient back (constant mode, non-negative pads).
func vjpPad(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	if m := attrString(n, "mode", "constant"); m != "constant" {
		return nil, fmt.Errorf("Pad mode %q has no rule (only constant)", m)
	}
	x := n.Input[0]
	r := c.info(x).Rank()
	if r < 0 {
		return nil, fmt.Errorf("rank of %q unknown", x)
	}
	pads := n.Input[1]
	var axes string
	k := int64(r)
	if len(n.Input) > 3 && n.Input[3] != "" {
		ai := c.info(n.Input[3])
		if ai.Rank() != 1 || !ai.Dims[0].Static() {
			return nil, fmt.Errorf("Pad axes %q must have a static length", n.Input[3])
		}
		k = ai.Dims[0].Value
		axes = c.op("Where", []string{c.op("Less", []string{n.Input[3], c.int64Scalar(0)}),
			c.op("Add", []string{n.Input[3], c.int64Scalar(int64(r))}), n.Input[3]})
	} else {
		all := make([]int64, r)
		for i := range all {
			all[i] = int64(i)
		}
		axes = c.ints(all)
	}
	if v, ok := c.constInts(pads); ok {
		for _, p := range v {
			if p < 0 {
				return nil, fmt.Errorf("Pad with negative pads (cropping) has no rule")
			}
		}
	}
	begin := c.op("Slice", []string{pads, c.ints([]int64{0}), c.ints([]int64{k})})
	end := c.op("Slice", []string{pads, c.ints([]int64{k}), c.ints([]int64{2 * k})})
	stop := c.op("Sub", []string{c.op("Gather", []string{c.shapeOf(gy[0]), axes}), end})
	return []string{c.op("Slice", []string{gy[0], begin, stop, axes})}, nil
}

// lossCoef is the per-element weight of a classification loss with
// reduction: w[label] (1 without weights) where label != ignore_index,
// divided by the sum of those weights for "mean", times the loss gradient.
// It returns the coefficient shaped like the labels and the labels made safe
// for one-hot encoding.
func lossCoef(c *ctx, n *onnxpb.NodeProto, g string, dt onnx.DType) (coef, safe string, err error) {
	labels := n.Input[1]
	safe = labels
	valid := ""
	if a := attr(n, "ignore_index"); a != nil {
		ign := c.int64Scalar(a.GetI())
		lab := labels
		if c.info(labels).Elem != tInt64 {
			lab = c.op("Cast", []string{labels}, intAttr("to", int64(tInt64)))
		}
		keep := c.op("Not", []string{c.op("Equal", []string{lab, ign})})
		safe = c.op("Where", []string{keep, lab, c.int64Scalar(0)})
		valid = c.op("Cast", []string{keep}, intAttr("to", int64(dt)))
	}
	var w string
	if len(n.Input) > 2 && n.Input[2] != "" {
		w = c.op("Gather", []string{n.Input[2], safe})
		if valid != "" {
			w = c.op("Mul", []string{w, valid})
		}
	} else if valid != "" {
		w = valid
	}
	if w == "" {
		// Every element counts with weight 1.
		one, err := c.scalarLike(n.Input[0], 1)
		if err != nil {
			return "", "", err
		}
		w = c.op("Expand", []string{one, c.shapeOf(labels)})
	}
	switch red := attrString(n, "reduction", "mean"); red {
	case "mean":
		w = c.op("Div", []string{w, c.reduce("ReduceSum", w, allAxes(c.info(labels).Rank()), false)})
	case "sum", "none":
	default:
		return "", "", fmt.Errorf("reduction %q unknown", red)
	}
	return c.op("Mul", []string{w, g}), safe, nil
}

func oneHot(c *ctx, scores, labels string, dt onnx.DType) string {
	depth := c.op("Shape", []string{scores}, intAttr("start", 1), intAttr("end", 2))
	values, _ := c.constantVec(dt, []float64{0, 1})
	return c.op("OneHot", []string{labels, depth, values}, intAttr("axis", 1))
}

// constantVec makes a 1-D constant of element type dt.
func (c *ctx) constantVec(dt onnx.DType, v []float64) (string, error) {
	t, err := scalarTensor(dt, 0, []int64{int64(len(v))})
	if err != nil {
		return "", err
	}
	switch dt {
	case tFloat32:
		for i := range v {
			t.FloatData[i] = float32(v[i])
		}
	case tFloat64:
		copy(t.DoubleData, v)
	default:
		return "", fmt.Errorf("no vector constant of type %s", dtypeName(dt))
	}
	return c.op("Constant", nil, tensorAttr("value", t)), nil
}

// vjpSoftmaxCrossEntropy: d scores = coef * (softmax(scores) - onehot), plus
// the log_prob output's own gradient when it has one.
func vjpSoftmaxCrossEntropy(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	scores := n.Input[0]
	dt := c.info(scores).Elem
	if dt != tFloat32 && dt != tFloat64 {
		return nil, fmt.Errorf("scores of type %s", dtypeName(dt))
	}
	logp := c.statOutput(n, 1, "log_prob")
	p := c.op("Exp", []string{logp})
	var parts []string
	if gy[0] != "" {
		coef, safe, err := lossCoef(c, n, gy[0], dt)
		if err != nil {
			return nil, err
		}
		d := c.op("Sub", []string{p, oneHot(c, scores, safe, dt)})
		parts = append(parts, c.op("Mul", []string{d, c.unsqueeze(coef, []int64{1})}))
	}
	if len(gy) > 1 && gy[1] != "" {
		s := c.reduce("ReduceSum", gy[1], []int{1}, true)
		parts = append(parts, c.op("Sub", []string{gy[1], c.op("Mul", []string{p, s})}))
	}
	return []string{c.sum(parts)}, nil
}

func vjpNLL(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	in := n.Input[0]
	dt := c.info(in).Elem
	if dt != tFloat32 && dt != tFloat64 {
		return nil, fmt.Errorf("input of type %s", dtypeName(dt))
	}
	coef, safe, err := lossCoef(c, n, gy[0], dt)
	if err != nil {
		return nil, err
	}
	d := c.op("Mul", []string{oneHot(c, in, safe, dt), c.unsqueeze(coef, []int64{1})})
	return []string{c.op("Neg", []string{d})}, nil
}
