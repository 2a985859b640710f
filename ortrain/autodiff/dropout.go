package autodiff

import (
	"fmt"
	"math"

	"github.com/ortrain/ortrain/ortrain/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// hashPrime is the modulus of the dropout hash: 2^31-1, so every product
// of two reduced values fits in int64 and no op depends on overflow.
const hashPrime = 2147483647

// EnableTrainingDropout rewrites every Dropout node of g (exported in
// inference or training mode) into a training-mode computation in plain
// integer and float ops: element e of Dropout number k keeps its value,
// scaled by 1/(1-ratio), when hash(seed, k, e) < (1-ratio)*(2^31-1). The
// hash uses only Add, Mul and Mod on int64 values below 2^62, so the mask
// is a deterministic function of the seed (an int64 scalar graph input
// named seedInput, added if absent), the node and the element index, the
// same on every execution provider; feed seed = f(run seed, global step)
// for a fresh mask each step. The output is x * scaled_mask, so Backward's
// Mul rule reuses the forward mask. Dropout's optional mask output stays
// available. It returns the number of Dropout nodes rewritten.
func EnableTrainingDropout(g *onnxpb.GraphProto, seedInput string) (int, error) {
	if seedInput == "" {
		return 0, fmt.Errorf("autodiff: EnableTrainingDropout needs a seed input name")
	}
	c, err := newCtx(g, map[string]int64{"": 14}, "dropout/")
	if err != nil {
		return 0, err
	}
	found := false
	for _, in := range g.Input {
		if in.GetName() == seedInput {
			found = true
			if si := c.info(seedInput); si.dtype != tInt64 || si.rank > 1 {
				return 0, fmt.Errorf("autodiff: seed input %q must be an int64 scalar (has type %s, rank %d)", seedInput, dtypeName(si.dtype), si.rank)
			}
		}
	}
	if !found && c.defined(seedInput) {
		return 0, fmt.Errorf("autodiff: seed %q names a value that is not a graph input", seedInput)
	}
	var nodes []*onnxpb.NodeProto
	count := 0
	for _, n := range g.Node {
		if n.GetOpType() != "Dropout" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
			nodes = append(nodes, n)
			continue
		}
		c.newNodes = nil
		if err := c.trainingDropout(n, count, seedInput); err != nil {
			return 0, fmt.Errorf("autodiff: Dropout node %q: %w", n.GetName(), err)
		}
		nodes = append(nodes, c.newNodes...)
		c.newNodes = nil
		count++
	}
	if count == 0 {
		return 0, nil
	}
	if !found {
		g.Input = append(g.Input, &onnxpb.ValueInfoProto{Name: proto.String(seedInput), Type: &onnxpb.TypeProto{
			Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: proto.Int32(tInt64), Shape: &onnxpb.TensorShapeProto{}}}}})
	}
	g.Node = nodes
	return count, nil
}

func (c *ctx) trainingDropout(n *onnxpb.NodeProto, k int, seed string) error {
	x := n.Input[0]
	dt := c.info(x).dtype
	if dt == 0 {
		return fmt.Errorf("element type of %q unknown", x)
	}
	ratio := float64(attrFloat(n, "ratio", 0.5))
	if len(n.Input) > 1 && n.Input[1] != "" {
		v, ok := c.constFloats(n.Input[1])
		if !ok || len(v) != 1 {
			return fmt.Errorf("ratio input %q is not a constant scalar", n.Input[1])
		}
		ratio = v[0]
	}
	if ratio < 0 || ratio >= 1 {
		return fmt.Errorf("ratio %g outside [0, 1)", ratio)
	}
	y := n.Output[0]
	maskOut := ""
	if len(n.Output) > 1 {
		maskOut = n.Output[1]
	}
	if ratio == 0 && maskOut == "" {
		c.newNodes = append(c.newNodes, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: n.Name, Input: []string{x}, Output: []string{y}})
		return nil
	}
	p := c.int64Scalar(hashPrime)
	mod := func(v string) string { return c.op("Mod", []string{v, p}) }
	mulAdd := func(v string, a int64, b string) string {
		m := c.op("Mul", []string{v, c.int64Scalar(a)})
		if b != "" {
			m = c.op("Add", []string{m, b})
		}
		return mod(m)
	}
	// Per-node scalars from the seed (cheap), then a per-element mix with a
	// non-linear (squaring) step so neighbouring elements decorrelate.
	s := c.op("Reshape", []string{seed, c.ints(nil)})
	s = mod(s)
	t1 := mulAdd(s, 16807, c.int64Scalar(int64(k)*7919+1))
	t2 := mulAdd(t1, 48271, c.int64Scalar(12345))
	t3 := mulAdd(t2, 69621, c.int64Scalar(54321))
	size := c.op("Size", []string{x})
	h := c.op("Range", []string{c.int64Scalar(0), size, c.int64Scalar(1)})
	h = mulAdd(c.op("Add", []string{h, t1}), 48271, "")
	h = mod(c.op("Add", []string{c.op("Mul", []string{h, h}), t2}))
	h = mulAdd(h, 16807, "")
	h = mod(c.op("Add", []string{c.op("Mul", []string{h, h}), t3}))
	threshold := int64(math.Floor((1 - ratio) * hashPrime))
	keep := c.op("Less", []string{h, c.int64Scalar(threshold)})
	keep = c.op("Reshape", []string{keep, c.op("Shape", []string{x})})
	if maskOut != "" {
		c.newNodes = append(c.newNodes, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: proto.String(c.fresh("mask")), Input: []string{keep}, Output: []string{maskOut}})
	}
	scale, err := c.constant(dt, 1/(1-ratio), nil)
	if err != nil {
		return err
	}
	scaled := c.op("Mul", []string{c.op("Cast", []string{keep}, intAttr("to", int64(dt))), scale})
	c.newNodes = append(c.newNodes, &onnxpb.NodeProto{OpType: proto.String("Mul"), Name: n.Name, Input: []string{x, scaled}, Output: []string{y}})
	return nil
}
