package autodiff

import (
	"fmt"
	"math"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

const tUint64 = int64(onnxpb.TensorProto_UINT64)

// uint64Scalar makes (once) a rank-0 uint64 constant.
func (c *ctx) uint64Scalar(v uint64) string {
	key := fmt.Sprintf("u64/%d", v)
	if name, ok := c.cache[key]; ok {
		return name
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(tUint64)), Uint64Data: []uint64{v}}
	name := c.op("Constant", nil, tensorAttr("value", t))
	c.cache[key] = name
	return name
}

// rot32 swaps the 32-bit halves of a uint64: (v >> 32) | (v << 32), the
// shifts as a division and a product by 2^32 (exact in unsigned
// arithmetic) since ONNX Runtime's CUDA provider has no BitShift kernel;
// the halves do not overlap, so Add is Or.
func (c *ctx) rot32(v string) string {
	hi := c.op("Div", []string{v, c.uint64Scalar(1 << 32)})
	lo := c.op("Mul", []string{v, c.uint64Scalar(1 << 32)})
	return c.op("Add", []string{hi, lo})
}

// EnableTrainingDropout rewrites every Dropout node of g (exported in
// inference or training mode) into a training-mode computation in plain
// integer and float ops: element (i, j) of Dropout number k (j indexing
// the last dim, i the others flattened) keeps its value, scaled by
// 1/(1-ratio), when (R_i + C_j)^2 mod 2^32 < (1-ratio)*2^32, where R and C
// are uint32 streams of a counter-based generator keyed by (seed, k). It
// uses only unsigned Mul, Add and Div by 2^32 (wrapping arithmetic and
// exact shifts, defined the same everywhere, with kernels on the CPU and
// CUDA providers alike), so the mask is a deterministic function of the seed
// (an int64 scalar graph input named seedInput, added if absent), the node
// and the element index, the same on every execution provider; feed
// seed = f(run seed, global step) for a fresh mask each step. The output is x * scaled_mask, so Backward's
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
			if si := c.info(seedInput); si.Elem != tInt64 || si.Rank() > 1 {
				return 0, fmt.Errorf("autodiff: seed input %q must be an int64 scalar (has type %s, rank %d)", seedInput, dtypeName(si.Elem), si.Rank())
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
				ElemType: proto.Int32(int32(tInt64)), Shape: &onnxpb.TensorShapeProto{}}}}})
	}
	g.Node = nodes
	return count, nil
}

func (c *ctx) trainingDropout(n *onnxpb.NodeProto, k int, seed string) error {
	x := n.Input[0]
	dt := c.info(x).Elem
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
	// Random bits: a counter-based generator in the manner of Widynski's
	// "Squares" gives a uint32 per row (the dims before the last, flattened)
	// and one per column (the last dim); element (i, j) takes h = (row_i + col_j)^2
	// mod 2^32, whose square breaks the additive structure. So only three
	// cheap passes run over the full tensor (Add, Mul, Less), and the
	// generator's dozen passes run over rows and columns only. Unsigned Mul
	// and Add wrap modulo 2^64 / 2^32 by definition (C, C++ and CUDA
	// alike) and division by 2^32 is an exact shift, so every execution
	// provider computes the same bits.
	shape := c.op("Shape", []string{x})
	cols := c.op("Shape", []string{x}, intAttr("start", -1))
	// rows = size / cols (ReduceProd over the leading dims has no int64
	// CUDA kernel); an empty last dim gives 0 rows, which is as good.
	rows := c.op("Div", []string{c.op("Size", []string{x}), c.op("Max", []string{cols, c.ints([]int64{1})})})
	if r := c.info(x).Rank(); r == 0 {
		cols, rows = c.ints([]int64{1}), c.ints([]int64{1})
	} else if r == 1 {
		rows = c.ints([]int64{1})
	}
	// One stream per node: counters [0, rows) give the row values,
	// [rows, rows+cols) the column values.
	bits := c.squares(c.op("Add", []string{rows, cols}), seed, int64(k)+1)
	rowBits := c.op("Slice", []string{bits, c.ints([]int64{0}), rows})
	colBits := c.op("Slice", []string{bits, rows, c.ints([]int64{math.MaxInt64})})
	v := c.op("Add", []string{c.op("Unsqueeze", []string{rowBits, c.ints([]int64{1})}), colBits})
	h := c.op("Mul", []string{v, v})
	threshold := uint64(math.Floor((1 - ratio) * (1 << 32)))
	keep := c.op("Less", []string{h, c.uint32Scalar(uint32(min(threshold, math.MaxUint32)))})
	keep = c.op("Reshape", []string{keep, shape})
	if maskOut != "" {
		c.newNodes = append(c.newNodes, &onnxpb.NodeProto{OpType: proto.String("Identity"), Name: proto.String(c.fresh("mask")), Input: []string{keep}, Output: []string{maskOut}})
	}
	scale, err := c.constant(dt, 1/(1-ratio), nil)
	if err != nil {
		return err
	}
	// Cast and Mul: ONNX Runtime's CPU Where with scalar branches is
	// slower than both together.
	scaled := c.op("Mul", []string{c.op("Cast", []string{keep}, intAttr("to", int64(dt))), scale})
	c.newNodes = append(c.newNodes, &onnxpb.NodeProto{OpType: proto.String("Mul"), Name: n.Name, Input: []string{x, scaled}, Output: []string{y}})
	return nil
}

// squares returns n pseudo-random uint32 values (n: a 1-element int64
// tensor) for stream number stream of the given seed: Widynski's Squares
// counter-based generator (three rounds and a final square) over counters
// 0..n-1, with the key mixed from (seed, stream).
func (c *ctx) squares(n, seed string, stream int64) string {
	u64 := func(v uint64) string { return c.uint64Scalar(v) }
	rot32 := c.rot32
	sq := func(v, add string) string { return c.op("Add", []string{c.op("Mul", []string{v, v}), add}) }
	// The key: one mix of the seed shared by every stream (cached), then
	// an odd affine map per stream with constants from splitmix64, so each
	// stream costs two scalar ops.
	mixed := c.seedMix(seed)
	a, d := splitmix64(uint64(stream)*2), splitmix64(uint64(stream)*2+1)
	key := c.op("Add", []string{c.op("Mul", []string{mixed, u64(a << 1)}), u64(d | 1)})
	count := c.op("Squeeze", []string{n, c.ints([]int64{0})})
	ctr := c.op("Cast", []string{c.op("Range", []string{c.int64Scalar(0), count, c.int64Scalar(1)})}, intAttr("to", tUint64))
	y := c.op("Mul", []string{ctr, key})
	z := c.op("Add", []string{y, key})
	h := rot32(sq(y, y))
	h = rot32(sq(h, z))
	h = rot32(sq(h, y))
	h = c.op("Div", []string{sq(h, z), u64(1 << 32)}) // >> 32
	return c.op("Cast", []string{h}, intAttr("to", tUint32))
}

const tUint32 = int64(onnxpb.TensorProto_UINT32)

// uint32Scalar makes (once) a rank-0 uint32 constant.
func (c *ctx) uint32Scalar(v uint32) string {
	key := fmt.Sprintf("u32/%d", v)
	if name, ok := c.cache[key]; ok {
		return name
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(tUint32)), Uint64Data: []uint64{uint64(v)}}
	name := c.op("Constant", nil, tensorAttr("value", t))
	c.cache[key] = name
	return name
}

// seedMix turns the seed input into a well-mixed uint64 (built once).
func (c *ctx) seedMix(seed string) string {
	cacheKey := "seedmix/" + seed
	if name, ok := c.cache[cacheKey]; ok {
		return name
	}
	u64 := func(v uint64) string { return c.uint64Scalar(v) }
	rot32 := c.rot32
	sq := func(v, add string) string { return c.op("Add", []string{c.op("Mul", []string{v, v}), add}) }
	s := c.op("Cast", []string{c.op("Reshape", []string{seed, c.ints(nil)})}, intAttr("to", tUint64))
	s = c.op("Add", []string{c.op("Mul", []string{s, u64(0x9E3779B97F4A7C15)}), u64(0xBF58476D1CE4E5B9)})
	s = rot32(sq(s, u64(0x94D049BB133111EB)))
	s = rot32(sq(s, u64(0x2545F4914F6CDD1D)))
	c.cache[cacheKey] = s
	return s
}

// splitmix64 is Steele et al.'s SplitMix64 output function (used at build
// time to derive per-stream constants).
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
