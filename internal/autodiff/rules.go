package autodiff

import (
	"fmt"
	"sort"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// vjpFunc builds the gradients of a node's inputs from the gradients of its
// outputs. gy[i] is "" when output i gets no gradient; need[i] says whether
// input i wants one. It returns one name per input ("" for none).
type vjpFunc func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error)

type rule struct {
	// inputs lists the inputs that can carry a gradient; nil means all.
	inputs []int
	vjp    vjpFunc
}

func (r rule) differentiable(i int) bool {
	if r.inputs == nil {
		return true
	}
	for _, j := range r.inputs {
		if j == i {
			return true
		}
	}
	return false
}

// rules maps "domain::op" (standard domain: "op") to its rule.
var rules = map[string]rule{}

func register(name string, inputs []int, f vjpFunc) {
	rules[name] = rule{inputs: inputs, vjp: f}
}

func lookupRule(n *onnxpb.NodeProto) (rule, bool) {
	key := n.GetOpType()
	switch d := n.GetDomain(); d {
	case "", "ai.onnx":
	default:
		key = d + "::" + key
	}
	r, ok := rules[key]
	return r, ok
}

// noGradient lists standard ops whose outputs never carry a gradient:
// integer, boolean and shape computations, random sources and piecewise
// constant functions (gradient zero almost everywhere).
var noGradient = map[string]bool{
	"Shape": true, "Size": true, "ConstantOfShape": true, "Constant": true, "Range": true,
	"NonZero": true, "ArgMax": true, "ArgMin": true, "Equal": true, "Less": true, "Greater": true,
	"LessOrEqual": true, "GreaterOrEqual": true, "And": true, "Or": true, "Xor": true, "Not": true,
	"IsNaN": true, "IsInf": true, "Floor": true, "Ceil": true, "Round": true, "Sign": true,
	"RandomUniform": true, "RandomNormal": true, "RandomUniformLike": true, "RandomNormalLike": true,
	"Bernoulli": true, "Multinomial": true, "EyeLike": true, "OneHot": true, "BitShift": true,
	"BitwiseAnd": true, "BitwiseOr": true, "BitwiseXor": true, "BitwiseNot": true,
}

func nonDifferentiable(n *onnxpb.NodeProto) bool {
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return false
	}
	return noGradient[n.GetOpType()]
}

// Ops lists the operators that have gradient rules, sorted.
func Ops() []string {
	out := make([]string, 0, len(rules))
	for k := range rules {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// unbroadcast sums g (shaped like gInfo, the broadcast result) down to the
// shape of x. Axes whose broadcasting is statically known are reduced with
// constant axes; where a symbolic dim of x might be 1 while g's is not,
// the axes are found at run time from Shape(x).
func (c *ctx) unbroadcast(g string, gInfo onnx.TypeInfo, x string) (string, error) {
	xi := c.info(x)
	if xi.Rank() < 0 || gInfo.Rank() < 0 {
		return "", fmt.Errorf("rank of %q unknown; run shape inference on the graph first", x)
	}
	if xi.SameShape(gInfo) {
		return g, nil
	}
	lead := gInfo.Rank() - xi.Rank()
	if lead < 0 {
		return "", fmt.Errorf("gradient of rank %d for %q of rank %d", gInfo.Rank(), x, xi.Rank())
	}
	var leadAxes, keepAxes []int
	for i := 0; i < lead; i++ {
		leadAxes = append(leadAxes, i)
	}
	dynamic := false
	for i, xd := range xi.Dims {
		gd := gInfo.Dims[lead+i]
		switch {
		case xd.Same(gd):
		case xd.Static() && xd.Value == 1:
			keepAxes = append(keepAxes, lead+i)
		case xd.Static():
			// x's size > 1 forces g's to match.
		case gd.Static() && gd.Value == 1:
			// g's size 1 forces x's to be 1.
		default:
			dynamic = true
		}
	}
	out := g
	switch {
	case len(keepAxes) == 0 && lead > 0:
		out = c.reduce("ReduceSum", out, leadAxes, false)
	case len(keepAxes) > 0:
		out = c.reduce("ReduceSum", out, append(leadAxes, keepAxes...), true)
		if lead > 0 {
			ax := make([]int64, lead)
			for i := range ax {
				ax[i] = int64(i)
			}
			out = c.squeeze(out, ax)
		}
	}
	if dynamic {
		// Sum over every axis where x has size 1: a no-op where g has size
		// 1 too, the broadcast reduction elsewhere.
		one := c.int64Scalar(1)
		ones := c.op("Equal", []string{c.shapeOf(x), one})
		axes := c.op("Reshape", []string{c.op("NonZero", []string{ones}), c.ints([]int64{-1})})
		out = c.op("ReduceSum", []string{out, axes}, intAttr("keepdims", 1), intAttr("noop_with_empty_axes", 1))
	}
	return out, nil
}

// outInfo is the info of node output i (the shape its gradient has).
func (c *ctx) outInfo(n *onnxpb.NodeProto, i int) onnx.TypeInfo { return c.info(n.Output[i]) }

// unb reduces g (shaped like output 0 of n) to input i's shape.
func (c *ctx) unb(n *onnxpb.NodeProto, g string, i int) (string, error) {
	return c.unbroadcast(g, c.outInfo(n, 0), n.Input[i])
}
