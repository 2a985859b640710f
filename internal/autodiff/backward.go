package autodiff

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Options tunes Backward.
type Options struct {
	// SeedGradient names a graph input holding d(final)/d(loss), a scalar of
	// the loss's element type (for example 1/accumulation_steps). Empty means
	// a constant 1.
	SeedGradient string
	// ZeroGradients gives every wrt value that the loss does not depend on
	// an explicit zero gradient of its shape. Without it such values are
	// left out of the returned map.
	ZeroGradients bool
	// Prefix starts the names of the values and nodes Backward adds
	// (default "grad/"); names already in the graph are never reused.
	Prefix string
	// Checkpoint, when set, recomputes the forward values of its segments
	// in the backward pass instead of keeping them (gradient
	// checkpointing); Backward fills in Checkpoint.Recomputed.
	Checkpoint *Checkpoint
}

// ErrNoRule is matched (errors.Is) by the error Backward returns when a
// node on a path from a wrt value to the loss has an operator without a
// gradient rule.
var ErrNoRule = errors.New("no gradient rule")

// Backward appends to g the nodes computing d(loss)/d(x) for every x in
// wrt and returns x -> name of its gradient value (same shape and type as
// x). It only differentiates nodes on a path from some wrt value to loss;
// integer and shape computations carry no gradient. A value used several
// times gets the sum of its gradients. Forward values are reused, never
// recomputed: a few forward nodes may gain optional outputs the backward
// pass reads (LayerNormalization's Mean and InvStdDev, for example).
//
// opsets maps operator-set domains ("" for the standard one) to versions;
// when a rule needs a newer standard opset than the graph imports (ScatterND
// with reduction needs 16), Backward raises opsets[""] in place and the
// caller writes the map back into the model. On error g is left unchanged.
func Backward(g *onnxpb.GraphProto, opsets map[string]int64, loss string, wrt []string, opts Options) (map[string]string, error) {
	if g == nil {
		return nil, errors.New("autodiff: nil graph")
	}
	c, err := newCtx(g, opsets, opts.Prefix)
	if err != nil {
		return nil, err
	}
	if err := c.checkLoss(loss); err != nil {
		return nil, err
	}
	for _, w := range wrt {
		if err := c.checkWrt(w); err != nil {
			return nil, err
		}
	}
	active, origin := c.activity(wrt)
	useful := c.usefulness(loss)
	// Every node that needs a rule must have one before anything is built.
	var missing []string
	for i, n := range g.Node {
		if !c.differentiated(n, active, useful) {
			continue
		}
		if _, ok := lookupRule(n); !ok {
			param := ""
			for _, in := range c.nodeInputs(n) {
				if active[in] {
					param = origin[in]
					break
				}
			}
			missing = append(missing, fmt.Sprintf("node %d %q (op %s) blocks the gradient of %q", i, n.GetName(), opName(n), param))
		}
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(missing)-5)
			missing = missing[:5]
		}
		return nil, fault.Mark(fault.Input, fmt.Errorf("autodiff: %w: %s%s; such a node must be frozen out (no trainable parameter upstream) or the op needs a rule", ErrNoRule, strings.Join(missing, "; "), more))
	}

	grads := map[string][]string{}
	seed, err := c.seed(loss, opts.SeedGradient)
	if err != nil {
		return nil, err
	}
	grads[loss] = []string{seed}
	for i := len(g.Node) - 1; i >= 0; i-- {
		n := g.Node[i]
		if !c.differentiated(n, active, useful) {
			continue
		}
		gy := make([]string, len(n.Output))
		any := false
		for j, o := range n.Output {
			if o == "" || !active[o] || !useful[o] {
				continue
			}
			if contribs := grads[o]; len(contribs) > 0 {
				gy[j] = c.sum(contribs)
				grads[o] = []string{gy[j]}
				any = true
			}
		}
		if !any {
			continue
		}
		r, _ := lookupRule(n)
		need := make([]bool, len(n.Input))
		for j, in := range n.Input {
			need[j] = in != "" && active[in] && r.differentiable(j)
		}
		gx, err := r.vjp(c, n, gy, need)
		if err != nil {
			return nil, fmt.Errorf("autodiff: node %d %q (op %s): %w", i, n.GetName(), opName(n), err)
		}
		for j, gj := range gx {
			if gj != "" && j < len(need) && need[j] {
				grads[n.Input[j]] = append(grads[n.Input[j]], gj)
			}
		}
	}

	out := map[string]string{}
	used := map[string]bool{}
	graphInputs := map[string]bool{}
	for _, in := range g.Input {
		graphInputs[in.GetName()] = true
	}
	for _, w := range wrt {
		if _, done := out[w]; done {
			continue
		}
		var name string
		switch contribs := grads[w]; {
		case len(contribs) > 0:
			name = c.sum(contribs)
		case opts.ZeroGradients:
			z, err := c.zerosLike(w)
			if err != nil {
				return nil, fmt.Errorf("autodiff: zero gradient of %q: %w", w, err)
			}
			name = z
		default:
			continue
		}
		// Each gradient gets its own node output so callers can make them
		// graph outputs.
		if used[name] || graphInputs[name] || c.producer[name] == nil && !c.isNew(name) {
			name = c.op("Identity", []string{name})
		}
		used[name] = true
		out[w] = name
	}
	forward := len(g.Node)
	c.commit()
	if cp := opts.Checkpoint; cp != nil && len(cp.Segments) > 0 {
		if err := c.recompute(cp, forward, grads); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func opName(n *onnxpb.NodeProto) string {
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return d + "::" + n.GetOpType()
	}
	return n.GetOpType()
}

// ctx holds what Backward knows about the graph while it builds.
type ctx struct {
	g        *onnxpb.GraphProto
	opsets   map[string]int64
	opset    int64
	prefix   string
	infos    map[string]onnx.TypeInfo
	producer map[string]*onnxpb.NodeProto
	consts   map[string]*onnxpb.TensorProto
	names    map[string]bool
	counter  int
	newNodes []*onnxpb.NodeProto
	newVals  map[string]bool
	cache    map[string]string
	sparse   map[string]sparseGrad // deferred Gather gradients (see sum)
	// edits to forward nodes, applied only when Backward succeeds
	edits []func()
}

func newCtx(g *onnxpb.GraphProto, opsets map[string]int64, prefix string) (*ctx, error) {
	if opsets == nil {
		return nil, errors.New("autodiff: no opset map given (need at least the standard domain \"\")")
	}
	v, ok := opsets[""]
	if !ok {
		v, ok = opsets["ai.onnx"]
	}
	if !ok || v < 13 {
		return nil, fmt.Errorf("autodiff: the graph must import the standard ONNX opset 13 or newer (got %d); re-export with opset_version >= 14", v)
	}
	if prefix == "" {
		prefix = "grad/"
	}
	c := &ctx{g: g, opsets: opsets, opset: v, prefix: prefix,
		producer: map[string]*onnxpb.NodeProto{}, consts: map[string]*onnxpb.TensorProto{},
		names: map[string]bool{}, newVals: map[string]bool{}, cache: map[string]string{}, sparse: map[string]sparseGrad{}}
	for _, t := range g.Initializer {
		c.consts[t.GetName()] = t
		c.names[t.GetName()] = true
	}
	for _, in := range g.Input {
		c.names[in.GetName()] = true
	}
	for _, n := range g.Node {
		c.names[n.GetName()] = true
		for _, o := range n.Output {
			c.names[o] = true
			c.producer[o] = n
		}
		if n.GetOpType() == "Constant" && n.GetDomain() == "" && len(n.Output) == 1 {
			if a := attr(n, "value"); a != nil && a.T != nil {
				c.consts[n.Output[0]] = a.T
			} else if a := attr(n, "value_ints"); a != nil {
				c.consts[n.Output[0]] = &onnxpb.TensorProto{DataType: proto.Int32(int32(tInt64)), Dims: []int64{int64(len(a.Ints))}, Int64Data: a.Ints}
			} else if a := attr(n, "value_int"); a != nil {
				c.consts[n.Output[0]] = &onnxpb.TensorProto{DataType: proto.Int32(int32(tInt64)), Int64Data: []int64{a.GetI()}}
			} else if a := attr(n, "value_float"); a != nil {
				c.consts[n.Output[0]] = &onnxpb.TensorProto{DataType: proto.Int32(int32(tFloat32)), FloatData: []float32{a.GetF()}}
			}
		}
	}
	// A contradiction InferShapes reports is left for ONNX Runtime to name;
	// the types it did derive still serve.
	c.infos, _ = onnx.InferShapes(g, opsets)
	return c, nil
}

// constInts returns the value of a small integer tensor known before run
// time: an initializer or Constant, or such a value passed through the
// value-preserving ops exporters put in front of axes and shapes (the
// dynamo exporter reshapes its constant axes, for example).
func (c *ctx) constInts(name string) ([]int64, bool) {
	return c.foldInts(name, 0)
}

func (c *ctx) foldInts(name string, depth int) ([]int64, bool) {
	if t, ok := c.consts[name]; ok {
		return tensorInts(t)
	}
	p := c.producer[name]
	if p == nil || depth > 16 || (p.GetDomain() != "" && p.GetDomain() != "ai.onnx") || len(p.Input) == 0 {
		return nil, false
	}
	switch p.GetOpType() {
	case "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten":
		return c.foldInts(p.Input[0], depth+1)
	case "Cast":
		if to := onnx.DType(attrInt(p, "to", 0)); to != tInt64 && to != tInt32 {
			return nil, false
		}
		return c.foldInts(p.Input[0], depth+1)
	case "Concat":
		var out []int64
		for _, in := range p.Input {
			v, ok := c.foldInts(in, depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, v...)
		}
		return out, true
	}
	return nil, false
}

func (c *ctx) constFloats(name string) ([]float64, bool) {
	if t, ok := c.consts[name]; ok {
		return tensorFloats(t)
	}
	return nil, false
}

func (c *ctx) defined(name string) bool {
	if c.producer[name] != nil {
		return true
	}
	if _, ok := c.consts[name]; ok {
		return true
	}
	for _, in := range c.g.Input {
		if in.GetName() == name {
			return true
		}
	}
	return false
}

func (c *ctx) checkLoss(loss string) error {
	if loss == "" {
		return errors.New("autodiff: no loss value named")
	}
	if !c.defined(loss) {
		return fmt.Errorf("autodiff: loss %q is not a value of the graph (no node output, input or initializer has that name)", loss)
	}
	in := c.info(loss)
	if in.Elem != onnx.Undefined && !isFloat(in.Elem) {
		return fmt.Errorf("autodiff: loss %q has element type %s; it must be a float scalar", loss, dtypeName(in.Elem))
	}
	if in.Rank() < 0 {
		return fmt.Errorf("autodiff: the shape of loss %q is unknown; it must be a float scalar (declare it as a graph output with shape [])", loss)
	}
	for _, d := range in.Dims {
		if !d.Static() || d.Value != 1 {
			return fmt.Errorf("autodiff: loss %q has rank %d (dims %s); it must be a scalar (reduce it first)", loss, in.Rank(), onnx.DimsString(in.Dims))
		}
	}
	return nil
}

func (c *ctx) checkWrt(w string) error {
	if !c.defined(w) {
		return fmt.Errorf("autodiff: wrt value %q is not in the graph (no input, initializer or node output has that name)", w)
	}
	if dt := c.info(w).Elem; dt != 0 && !isFloat(dt) {
		return fmt.Errorf("autodiff: wrt value %q has element type %s; only float values have gradients", w, dtypeName(dt))
	}
	return nil
}

// nodeInputs lists a node's inputs, including values its subgraphs read
// from the enclosing graph.
func (c *ctx) nodeInputs(n *onnxpb.NodeProto) []string {
	ins := append([]string{}, n.Input...)
	for _, a := range n.Attribute {
		for _, sg := range append([]*onnxpb.GraphProto{a.G}, a.Graphs...) {
			if sg != nil {
				ins = append(ins, outerNames(sg)...)
			}
		}
	}
	return ins
}

// outerNames lists the names a subgraph uses without defining them.
func outerNames(g *onnxpb.GraphProto) []string {
	def := map[string]bool{}
	for _, in := range g.Input {
		def[in.GetName()] = true
	}
	for _, t := range g.Initializer {
		def[t.GetName()] = true
	}
	var out []string
	for _, n := range g.Node {
		for _, in := range n.Input {
			if in != "" && !def[in] {
				out = append(out, in)
			}
		}
		for _, a := range n.Attribute {
			for _, sg := range append([]*onnxpb.GraphProto{a.G}, a.Graphs...) {
				if sg != nil {
					for _, in := range outerNames(sg) {
						if !def[in] {
							out = append(out, in)
						}
					}
				}
			}
		}
		for _, o := range n.Output {
			def[o] = true
		}
	}
	return out
}

// activity marks the values that depend differentiably on some wrt value,
// remembering one wrt value each depends on (for error messages).
func (c *ctx) activity(wrt []string) (map[string]bool, map[string]string) {
	active := map[string]bool{}
	origin := map[string]string{}
	for _, w := range wrt {
		active[w] = true
		origin[w] = w
	}
	for _, n := range c.g.Node {
		if nonDifferentiable(n) {
			continue
		}
		r, hasRule := lookupRule(n)
		from := ""
		for j, in := range c.nodeInputs(n) {
			if !active[in] {
				continue
			}
			if hasRule && (j >= len(n.Input) || !r.differentiable(j)) {
				continue
			}
			from = origin[in]
			break
		}
		if from == "" {
			continue
		}
		for _, o := range n.Output {
			if o == "" || active[o] {
				continue
			}
			if dt := c.info(o).Elem; dt != 0 && !isFloat(dt) {
				continue
			}
			active[o] = true
			origin[o] = from
		}
	}
	return active, origin
}

// usefulness marks the values the loss depends on.
func (c *ctx) usefulness(loss string) map[string]bool {
	useful := map[string]bool{loss: true}
	for i := len(c.g.Node) - 1; i >= 0; i-- {
		n := c.g.Node[i]
		hit := false
		for _, o := range n.Output {
			if useful[o] {
				hit = true
				break
			}
		}
		if !hit {
			continue
		}
		for _, in := range c.nodeInputs(n) {
			useful[in] = true
		}
	}
	return useful
}

// differentiated reports whether n lies on a path from a wrt value to the
// loss: it has an active useful output.
func (c *ctx) differentiated(n *onnxpb.NodeProto, active, useful map[string]bool) bool {
	if nonDifferentiable(n) {
		return false
	}
	for _, o := range n.Output {
		if o != "" && active[o] && useful[o] {
			return true
		}
	}
	return false
}

func (c *ctx) seed(loss, input string) (string, error) {
	li := c.info(loss)
	dt := li.Elem
	if dt == 0 {
		dt = tFloat32
	}
	shape := make([]int64, li.Rank())
	for i := range shape {
		shape[i] = 1
	}
	if input == "" {
		return c.constant(dt, 1, shape)
	}
	var vi *onnxpb.ValueInfoProto
	for _, in := range c.g.Input {
		if in.GetName() == input {
			vi = in
		}
	}
	if vi == nil {
		return "", fmt.Errorf("autodiff: seed gradient %q is not a graph input; add it as a scalar input of type %s", input, dtypeName(dt))
	}
	si := c.info(input)
	if si.Elem != onnx.Undefined && si.Elem != dt {
		return "", fmt.Errorf("autodiff: seed gradient %q has element type %s but loss %q is %s", input, dtypeName(si.Elem), loss, dtypeName(dt))
	}
	if si.Rank() == li.Rank() {
		return input, nil
	}
	return c.op("Reshape", []string{input, c.ints(shape)}), nil
}

// --- building -----------------------------------------------------------

func (c *ctx) fresh(base string) string {
	for {
		c.counter++
		name := fmt.Sprintf("%s%s_%d", c.prefix, base, c.counter)
		if !c.names[name] {
			c.names[name] = true
			return name
		}
	}
}

func (c *ctx) isNew(name string) bool { return c.newVals[name] }

// opN appends a node with k outputs in domain dom and returns the outputs.
func (c *ctx) opDomN(dom, opType string, inputs []string, k int, attrs ...*onnxpb.AttributeProto) []string {
	outs := make([]string, k)
	for i := range outs {
		outs[i] = c.fresh(opType)
		c.newVals[outs[i]] = true
	}
	n := &onnxpb.NodeProto{OpType: proto.String(opType), Name: proto.String(c.fresh(opType + "_node")),
		Input: inputs, Output: outs}
	if dom != "" {
		n.Domain = proto.String(dom)
	}
	for _, a := range attrs {
		if a != nil {
			n.Attribute = append(n.Attribute, a)
		}
	}
	c.newNodes = append(c.newNodes, n)
	return outs
}

func (c *ctx) op(opType string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	return c.opDomN("", opType, inputs, 1, attrs...)[0]
}

func (c *ctx) commit() {
	for _, e := range c.edits {
		e()
	}
	c.g.Node = append(c.g.Node, c.newNodes...)
	c.newNodes = nil
}

// constant makes (once) a Constant node filled with v. Constants are nodes,
// not initializers, so callers that turn initializers into parameters
// never mistake them for weights.
func (c *ctx) constant(dt onnx.DType, v float64, dims []int64) (string, error) {
	key := fmt.Sprintf("const/%d/%v/%v", dt, v, dims)
	if name, ok := c.cache[key]; ok {
		return name, nil
	}
	t, err := scalarTensor(dt, v, dims)
	if err != nil {
		return "", err
	}
	name := c.op("Constant", nil, tensorAttr("value", t))
	c.cache[key] = name
	return name, nil
}

// scalarLike is a rank-0 constant with x's element type.
func (c *ctx) scalarLike(x string, v float64) (string, error) {
	dt := c.info(x).Elem
	if dt == 0 {
		return "", fmt.Errorf("element type of %q unknown", x)
	}
	return c.constant(dt, v, nil)
}

// ints makes (once) a 1-D int64 constant.
func (c *ctx) ints(v []int64) string {
	key := fmt.Sprintf("ints/%v", v)
	if name, ok := c.cache[key]; ok {
		return name
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(tInt64)), Dims: []int64{int64(len(v))}, Int64Data: append([]int64{}, v...)}
	name := c.op("Constant", nil, tensorAttr("value", t))
	c.cache[key] = name
	return name
}

func (c *ctx) int64Scalar(v int64) string {
	key := fmt.Sprintf("int/%d", v)
	if name, ok := c.cache[key]; ok {
		return name
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(tInt64)), Int64Data: []int64{v}}
	name := c.op("Constant", nil, tensorAttr("value", t))
	c.cache[key] = name
	return name
}

// shapeOf returns Shape(x), built once per value.
func (c *ctx) shapeOf(x string) string {
	key := "shape/" + x
	if name, ok := c.cache[key]; ok {
		return name
	}
	name := c.op("Shape", []string{x})
	c.cache[key] = name
	return name
}

// shapeVec returns x's shape as an int64 1-D value: a constant when static.
func (c *ctx) shapeVec(x string) string {
	if sd, ok := c.info(x).StaticShape(); ok {
		return c.ints(sd)
	}
	return c.shapeOf(x)
}

func (c *ctx) zerosLike(x string) (string, error) {
	in := c.info(x)
	if in.Elem == onnx.Undefined {
		return "", fmt.Errorf("element type of %q unknown", x)
	}
	t, err := scalarTensor(in.Elem, 0, []int64{1})
	if err != nil {
		return "", err
	}
	return c.op("ConstantOfShape", []string{c.shapeVec(x)}, tensorAttr("value", t)), nil
}

// sum adds the gradient contributions to one value (all of its shape).
// A Gather's row gradient is first summed into a dense tensor of its own
// (embedding backward), then everything is added by one Sum (autograd's
// accumulation of a weight used several times): PyTorch's order. Adding
// rows straight into another contribution is cheaper but rounds
// differently, and Adam amplifies that over a run (the HF parity tests
// see it after a dozen steps).
func (c *ctx) sum(contribs []string) string {
	dense := make([]string, 0, len(contribs))
	for _, g := range contribs {
		dense = append(dense, c.materialize(g))
	}
	sort.Strings(dense)
	if len(dense) == 1 {
		return dense[0]
	}
	return c.op("Sum", dense)
}

// sparseGrad is a gradient that is zero except for rows: ScatterND of upd
// at idx (reduction add) into zeros shaped like zerosOf.
type sparseGrad struct {
	zerosOf, idx, upd string
	zero              *onnxpb.TensorProto // a one-element 0 of the gradient's type
}

// scatterGrad returns a name standing for a sparse gradient; sum either
// adds its rows into other contributions or materializes it under that
// name.
func (c *ctx) scatterGrad(zerosOf, idx, upd string) (string, error) {
	zero, err := scalarTensor(c.info(zerosOf).Elem, 0, []int64{1})
	if err != nil {
		return "", err
	}
	name := c.fresh("ScatterND")
	c.newVals[name] = true
	c.sparse[name] = sparseGrad{zerosOf, idx, upd, zero}
	return name, nil
}

func (c *ctx) materialize(name string) string {
	sg, ok := c.sparse[name]
	if !ok {
		return name
	}
	delete(c.sparse, name)
	z := c.op("ConstantOfShape", []string{c.shapeVec(sg.zerosOf)}, tensorAttr("value", sg.zero))
	n := &onnxpb.NodeProto{OpType: proto.String("ScatterND"), Name: proto.String(c.fresh("ScatterND_node")),
		Input: []string{z, sg.idx, sg.upd}, Output: []string{name}, Attribute: []*onnxpb.AttributeProto{stringAttr("reduction", "add")}}
	c.newNodes = append(c.newNodes, n)
	return name
}

// reduce emits a Reduce* node over the given axes (attribute or input form
// by opset).
func (c *ctx) reduce(op, x string, axes []int, keep bool) string {
	ax := make([]int64, len(axes))
	for i, a := range axes {
		ax[i] = int64(a)
	}
	k := int64(0)
	if keep {
		k = 1
	}
	if op == "ReduceSum" || c.opset >= 18 {
		return c.op(op, []string{x, c.ints(ax)}, intAttr("keepdims", k))
	}
	return c.op(op, []string{x}, intsAttr("axes", ax), intAttr("keepdims", k))
}

func (c *ctx) unsqueeze(x string, axes []int64) string {
	return c.op("Unsqueeze", []string{x, c.ints(axes)})
}

func (c *ctx) squeeze(x string, axes []int64) string {
	return c.op("Squeeze", []string{x, c.ints(axes)})
}

// requireOpset raises the standard opset to at least v (see Backward).
func (c *ctx) requireOpset(v int64) {
	if c.opset < v {
		c.opset = v
		key := ""
		if _, ok := c.opsets[""]; !ok {
			key = "ai.onnx"
		}
		c.edits = append(c.edits, func() { c.opsets[key] = v })
	}
}
