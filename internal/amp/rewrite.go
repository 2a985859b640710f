package amp

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Options says how Rewrite retypes a float32 graph.
type Options struct {
	// DType is the low precision: onnx.Float16 or onnx.BFloat16.
	DType onnx.DType
	// Device selects the op lists of torch.autocast for that device (CPU
	// or CUDA). Empty means no autocast, for a half-precision model
	// (HalfModel) evaluated without mixed precision.
	Device string
	// HalfModel first converts the model to DType, as model.to(dtype)
	// does: float graph inputs are cast to DType where the graph reads
	// them, float initializers and constants are stored in DType, and a
	// Cast to float32 becomes a Cast to DType (a float32 graph exported
	// from a float32 model names the model's dtype "float32"). Constants
	// beyond DType's range saturate at its largest finite value, as the
	// torch.finfo(dtype).min masks of the model code do.
	HalfModel bool
}

// Name is a short name of the precision, used for artifact file names:
// "autocast-float16-cpu", "half-bfloat16", "half-float16-autocast-cuda".
func (o Options) Name() string {
	dt := dtypeName(o.DType)
	switch {
	case o.HalfModel && o.Device != "":
		return "half-" + dt + "-autocast-" + o.Device
	case o.HalfModel:
		return "half-" + dt
	}
	return "autocast-" + dt + "-" + o.Device
}

func (o Options) check() error {
	if o.DType != onnx.Float16 && o.DType != onnx.BFloat16 {
		return fmt.Errorf("amp: low precision %s: want FLOAT16 or BFLOAT16", onnx.DTypeName(o.DType))
	}
	if o.Device == "" && !o.HalfModel {
		return errors.New("amp: no autocast device and no half-precision model: nothing to do")
	}
	_, err := newPolicy(o.Device)
	return err
}

func dtypeName(dt onnx.DType) string {
	switch dt {
	case onnx.Float16:
		return "float16"
	case onnx.BFloat16:
		return "bfloat16"
	case onnx.Float32:
		return "float32"
	}
	return onnx.DTypeName(dt)
}

// Report counts what Rewrite did.
type Report struct {
	LowNodes  int // nodes computing in the low precision
	FP32Nodes int // nodes computing float values in float32
	Casts     int // Cast nodes added
}

// Rewrite retypes the float32 graph g in place so that it computes as
// PyTorch does under torch.autocast(device, dtype) (and, with HalfModel,
// after model.to(dtype)):
//
//   - matmul-like operators (MatMul, Gemm, Einsum, Conv, ...) cast their
//     float inputs to the low precision and return it;
//   - the operators of the device's float32 list cast low inputs to float32
//     and return float32 (on CPU only the losses and prod; on CUDA also
//     softmax, log-softmax, layer and RMS norm, reductions, exp, log, pow);
//   - every other operator runs in its inputs' type; inputs of different
//     float types are promoted as torch promotes them: float32 wins among
//     tensors of rank >= 1, and a rank-0 value (a Python scalar or 0-dim
//     tensor in the model code) does not promote a tensor of rank >= 1;
//   - a normalization of a low-precision input with float32 weights
//     computes in float32 and rounds its output once (torch's mixed-type
//     kernels).
//
// Parameters (float graph inputs) stay float32 masters: a cast reads them,
// one per parameter and type, as autocast's weight cache does, so their
// gradients come back through the cast in float32. Activations are cast
// once per consuming node, so a value read by several low-precision nodes
// gets float32 gradient contributions summed in float32, as autograd sums
// them. Float graph outputs stay float32 (a low output is cast back, as
// accelerate's convert_outputs_to_fp32 does), so the loss appended after
// the logits computes in float32.
//
// opsets maps operator domains to versions (shape inference). g must be in
// topological order, as ONNX requires.
func Rewrite(g *onnxpb.GraphProto, opsets map[string]int64, o Options) (*Report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	pol, _ := newPolicy(o.Device)
	info, _ := onnx.InferShapes(g, opsets)
	r := &rewriter{g: g, o: o, pol: pol, info: info, b: onnx.NewGraphBuilder(g),
		typ: map[string]onnx.DType{}, alias: map[string]string{}, cache: map[string]string{},
		sources: map[string]bool{}, lowered: map[string]bool{}, readers: onnx.Consumers(g),
		linearAdds: map[*onnxpb.NodeProto]bool{}, wide: map[string]bool{}, report: &Report{}}
	r.b.Prefix = "amp/"
	if err := r.run(); err != nil {
		return nil, err
	}
	return r.report, nil
}

type rewriter struct {
	g       *onnxpb.GraphProto
	o       Options
	pol     policy
	info    map[string]onnx.TypeInfo
	b       *onnx.GraphBuilder
	typ     map[string]onnx.DType // element type of float values after the rewrite
	alias   map[string]string     // value -> the name nodes now read instead
	cache   map[string]string     // "value|type" -> its cast (parameters and constants)
	sources map[string]bool       // graph inputs and initializers
	lowered map[string]bool       // outputs of low-precision matmul-like nodes
	readers map[string][]*onnxpb.NodeProto
	// linearAdds are the bias Adds of linear layers computed as one
	// rounding (linearOnCPU); wide marks their MatMuls' float32 products.
	linearAdds map[*onnxpb.NodeProto]bool
	wide       map[string]bool
	nodes      []*onnxpb.NodeProto
	pending    [][2]string     // (float32 value, low name) casts to add after the current node
	keep       map[string]bool // float values that only compute integers (HalfModel keeps them float32)
	report     *Report
}

func (r *rewriter) low() onnx.DType { return r.o.DType }

// elem is a value's element type after the rewrite (Undefined if unknown).
func (r *rewriter) elem(v string) onnx.DType {
	if t, ok := r.typ[v]; ok {
		return t
	}
	return r.info[v].Elem
}

func (r *rewriter) isFloat(v string) bool {
	switch r.elem(v) {
	case onnx.Float32, onnx.Float16, onnx.BFloat16, onnx.Float64:
		return true
	}
	return false
}

func (r *rewriter) read(v string) string {
	if a, ok := r.alias[v]; ok {
		return a
	}
	return v
}

func (r *rewriter) run() error {
	g := r.g
	if r.o.HalfModel {
		r.keep = indexFloats(g, r.info)
	}
	for _, t := range g.Initializer {
		r.sources[t.GetName()] = true
		if onnx.DType(t.GetDataType()) != onnx.Float32 {
			continue
		}
		if r.o.HalfModel && !r.keep[t.GetName()] {
			if err := toLow(t, r.low()); err != nil {
				return fmt.Errorf("amp: initializer %q: %w", t.GetName(), err)
			}
			r.typ[t.GetName()] = r.low()
		} else {
			r.typ[t.GetName()] = onnx.Float32
		}
	}
	for _, in := range g.Input {
		name := in.GetName()
		if r.sources[name] {
			continue // an old exporter's initializer listed as input
		}
		r.sources[name] = true
		if elemOfValueInfo(in) != onnx.Float32 {
			continue
		}
		r.typ[name] = onnx.Float32
		if r.o.HalfModel {
			r.alias[name] = r.cast(name, r.low())
		}
	}
	for _, n := range g.Node {
		if err := r.node(n); err != nil {
			return err
		}
		r.nodes = append(r.nodes, n)
		for _, p := range r.pending {
			r.addCast(p[0], r.low(), p[1])
		}
		r.pending = r.pending[:0]
	}
	// Low-precision graph outputs are computed under a new name and cast
	// back to float32 under their own.
	for _, o := range g.Output {
		name := o.GetName()
		if r.sources[name] || r.elem(name) == onnx.Float32 || !r.isFloat(name) || elemOfValueInfo(o) != onnx.Float32 {
			continue
		}
		lowName := r.b.Name(name + "/" + dtypeName(r.elem(name)))
		for _, n := range r.nodes {
			for i, s := range n.Input {
				if s == name {
					n.Input[i] = lowName
				}
			}
			for i, s := range n.Output {
				if s == name {
					n.Output[i] = lowName
				}
			}
		}
		r.typ[lowName] = r.elem(name)
		r.info[lowName] = r.info[name]
		r.addCast(lowName, onnx.Float32, name)
	}
	g.Node = r.nodes
	r.fixValueInfo()
	return nil
}

func elemOfValueInfo(vi *onnxpb.ValueInfoProto) onnx.DType {
	return onnx.DType(vi.GetType().GetTensorType().GetElemType())
}

// fixValueInfo drops value_info entries whose element type the rewrite changed.
func (r *rewriter) fixValueInfo() {
	kept := r.g.ValueInfo[:0]
	for _, vi := range r.g.ValueInfo {
		if t, ok := r.typ[vi.GetName()]; ok && t != elemOfValueInfo(vi) {
			continue
		}
		kept = append(kept, vi)
	}
	r.g.ValueInfo = kept
}

// addCast appends Cast(v) -> out.
func (r *rewriter) addCast(v string, to onnx.DType, out string) {
	r.nodes = append(r.nodes, &onnxpb.NodeProto{
		Name: proto.String(r.b.Name("cast_" + out)), OpType: proto.String("Cast"),
		Input: []string{v}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{onnx.AttrInt("to", int64(to))},
	})
	r.typ[out] = to
	if t, ok := r.info[v]; ok {
		t.Elem = to
		r.info[out] = t
	}
	r.report.Casts++
}

// cast returns v converted to type to, adding a Cast. Graph inputs and
// initializers are cast once per type (autocast's weight cache).
func (r *rewriter) cast(v string, to onnx.DType) string {
	key := v + "|" + dtypeName(to)
	if r.sources[v] {
		if c, ok := r.cache[key]; ok {
			return c
		}
	}
	out := r.b.Name(v + "/" + dtypeName(to))
	r.addCast(v, to, out)
	if r.sources[v] {
		r.cache[key] = out
	}
	return out
}

// participating lists the inputs of n that share the node's float type
// parameter (the others, such as Dropout's ratio, keep their type).
func participating(n *onnxpb.NodeProto) func(i int) bool {
	switch opKey(n.GetDomain(), n.GetOpType()) {
	case "Dropout":
		return func(i int) bool { return i == 0 }
	case "Resize", "Upsample":
		return func(i int) bool { return i == 0 }
	case "BatchNormalization":
		return func(i int) bool { return i <= 2 }
	}
	return func(int) bool { return true }
}

// fixedFloatOutput reports outputs whose float type does not follow the
// inputs (normalization statistics, stored in float32).
func fixedFloatOutput(n *onnxpb.NodeProto, i int) bool {
	switch opKey(n.GetDomain(), n.GetOpType()) {
	case "LayerNormalization", "SimplifiedLayerNormalization", "com.microsoft::SimplifiedLayerNormalization",
		"com.microsoft::SkipLayerNormalization", "com.microsoft::SkipSimplifiedLayerNormalization":
		return i >= 1
	}
	return false
}

func hasSubgraph(n *onnxpb.NodeProto) bool {
	for _, a := range n.Attribute {
		if a.G != nil || len(a.Graphs) > 0 {
			return true
		}
	}
	return false
}

func (r *rewriter) node(n *onnxpb.NodeProto) error {
	for i, in := range n.Input {
		if in != "" {
			n.Input[i] = r.read(in)
		}
	}
	if hasSubgraph(n) {
		for _, v := range onnx.NodeInputs(n) {
			if r.isFloat(v) && r.elem(v) != onnx.Float32 || r.o.HalfModel {
				return fmt.Errorf("amp: node %q (%s) has a subgraph; mixed and half precision do not rewrite control flow", n.GetName(), n.GetOpType())
			}
		}
		return nil
	}
	op := opKey(n.GetDomain(), n.GetOpType())
	switch op {
	case "Cast":
		to := onnx.DType(attrInt(n, "to"))
		if to == onnx.Float32 && r.o.HalfModel && !r.keep[n.Output[0]] {
			setAttrInt(n, "to", int64(r.low()))
			to = r.low()
		}
		if onnx.IsFloat(to) {
			r.typ[n.Output[0]] = to
		}
		return nil
	case "CastLike":
		if r.isFloat(n.Input[1]) {
			r.typ[n.Output[0]] = r.elem(n.Input[1])
		}
		return nil
	case "Constant", "ConstantOfShape":
		if a := attrNamed(n, "value"); a != nil && a.T != nil && onnx.DType(a.T.GetDataType()) == onnx.Float32 {
			if r.o.HalfModel && !r.keep[n.Output[0]] {
				if err := toLow(a.T, r.low()); err != nil {
					return fmt.Errorf("amp: node %q: %w", n.GetName(), err)
				}
				r.typ[n.Output[0]] = r.low()
			} else {
				r.typ[n.Output[0]] = onnx.Float32
			}
		} else if op == "Constant" && (attrNamed(n, "value_float") != nil || attrNamed(n, "value_floats") != nil) {
			if r.o.HalfModel && !r.keep[n.Output[0]] {
				// as model.to(dtype) would hold it: a low-precision value tensor
				t := floatConstant(n)
				if err := toLow(t, r.low()); err != nil {
					return fmt.Errorf("amp: node %q: %w", n.GetName(), err)
				}
				n.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}}
				r.typ[n.Output[0]] = r.low()
			} else {
				r.typ[n.Output[0]] = onnx.Float32
			}
		}
		return nil
	}
	part := participating(n)
	var floats []int
	for i, in := range n.Input {
		if in != "" && part(i) && r.isFloat(in) {
			floats = append(floats, i)
		}
	}
	anyFloatOut := false
	for _, out := range n.Output {
		if out != "" && r.info[out].Elem == onnx.Float32 {
			anyFloatOut = true
		}
	}
	if len(floats) == 0 {
		if anyFloatOut { // a float source (RandomNormal, EyeLike, Range of constants...)
			for _, out := range n.Output {
				if r.info[out].Elem == onnx.Float32 {
					r.typ[out] = onnx.Float32
				}
			}
			if r.o.HalfModel {
				return fmt.Errorf("amp: node %q (%s) makes float32 values from no float input; a half-precision model cannot say their type", n.GetName(), op)
			}
		}
		return nil
	}
	if r.linearAdds[n] || r.pol.device == CPU && r.pol.classOf(n.GetDomain(), n.GetOpType()) == lower && r.linearBiasAdd(n) != nil {
		return r.linearOnCPU(n, floats)
	}
	var compute onnx.DType
	roundOutput := false
	cls := r.pol.classOf(n.GetDomain(), n.GetOpType())
	if cls == passthrough && r.isLinearBias(n, floats) {
		cls = lower
	}
	if cls == lower {
		for _, o := range n.Output {
			r.lowered[o] = true
		}
	}
	switch cls {
	case lower:
		compute = r.low()
	case fp32:
		compute = onnx.Float32
	case normalization:
		x := r.elem(n.Input[0])
		allLow := true
		for _, i := range floats {
			allLow = allLow && r.elem(n.Input[i]) == r.low()
		}
		switch {
		case x == r.low() && allLow:
			compute = r.low()
		case x == r.low():
			compute, roundOutput = onnx.Float32, true
		default:
			compute = onnx.Float32
		}
	default:
		compute = r.promote(floatInputs(n, floats))
	}
	local := map[string]string{}
	for _, i := range floats {
		in := n.Input[i]
		if r.elem(in) == compute {
			continue
		}
		c, ok := local[in]
		if !ok {
			c = r.cast(in, compute)
			local[in] = c
		}
		n.Input[i] = c
	}
	if compute == onnx.Float32 {
		r.report.FP32Nodes++
	} else {
		r.report.LowNodes++
	}
	for i, o := range n.Output {
		if o == "" || !(r.info[o].Elem == onnx.Float32 || r.info[o].Elem == onnx.Undefined) {
			continue
		}
		if fixedFloatOutput(n, i) {
			r.typ[o] = onnx.Float32
			continue
		}
		if !roundOutput || i != 0 {
			r.typ[o] = compute
			continue
		}
		// Normalize in float32, round once: Y is computed under a new name
		// and cast to the low precision under its own.
		wide := r.b.Name(o + "/float32")
		n.Output[i] = wide
		r.typ[wide] = onnx.Float32
		r.info[wide] = r.info[o]
		r.pending = append(r.pending, [2]string{wide, o})
	}
	return nil
}

// linearBiasAdd returns the Add that adds a linear layer's bias to the
// output of MatMul n (see isLinearBias), if that Add is the output's only
// reader.
func (r *rewriter) linearBiasAdd(n *onnxpb.NodeProto) *onnxpb.NodeProto {
	if opKey(n.GetDomain(), n.GetOpType()) != "MatMul" || len(n.Output) != 1 {
		return nil
	}
	readers := r.readers[n.Output[0]]
	if len(readers) != 1 || opKey(readers[0].GetDomain(), readers[0].GetOpType()) != "Add" || len(readers[0].Input) != 2 {
		return nil
	}
	add := readers[0]
	bias := add.Input[0]
	if bias == n.Output[0] {
		bias = add.Input[1]
	}
	if t := r.info[bias]; r.sources[bias] && t.Elem == onnx.Float32 && t.RankKnown && t.Rank() == 1 {
		return add
	}
	return nil
}

// linearOnCPU computes a linear layer (MatMul n, or the Add of its bias)
// as torch's CPU addmm does in low precision: the inputs and the bias are
// rounded to the low precision, the product is accumulated and the bias
// added in float32, and the sum is rounded once. (A low-precision MatMul
// followed by a low-precision Add would round twice.)
func (r *rewriter) linearOnCPU(n *onnxpb.NodeProto, floats []int) error {
	local := map[string]string{}
	for _, i := range floats {
		in := n.Input[i]
		if r.elem(in) == onnx.Float32 && r.wide[in] {
			continue // the MatMul's float32 product
		}
		c, ok := local[in]
		if !ok {
			if r.elem(in) != r.low() {
				c = r.cast(in, r.low())
			} else {
				c = in
			}
			c = r.cast(c, onnx.Float32)
			local[in] = c
		}
		n.Input[i] = c
	}
	r.report.LowNodes++
	o := n.Output[0]
	if !r.linearAdds[n] {
		r.linearAdds[r.linearBiasAdd(n)] = true
		r.typ[o], r.wide[o] = onnx.Float32, true
		return nil
	}
	wide := r.b.Name(o + "/float32")
	n.Output[0] = wide
	r.typ[wide] = onnx.Float32
	r.info[wide] = r.info[o]
	r.lowered[o] = true
	r.pending = append(r.pending, [2]string{wide, o})
	return nil
}

// isLinearBias recognizes the bias of a linear layer: exporters write
// nn.Linear on inputs of rank > 2 as MatMul followed by Add of the rank-1
// bias, which torch computes in one low-precision addmm/linear call, so the
// bias is cast to the low precision rather than promoting the sum to
// float32. The bias must be a graph input or initializer (a parameter or a
// constant) added to the output of a low-precision matmul-like node.
func (r *rewriter) isLinearBias(n *onnxpb.NodeProto, floats []int) bool {
	if r.pol.device == "" || opKey(n.GetDomain(), n.GetOpType()) != "Add" || len(floats) != 2 {
		return false
	}
	a, b := n.Input[0], n.Input[1]
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		mm, bias := pair[0], pair[1]
		if r.lowered[mm] && r.sources[r.original(bias)] && r.info[bias].RankKnown && r.info[bias].Rank() == 1 {
			return true
		}
	}
	return false
}

// original is the graph's name for v before HalfModel's input casts.
func (r *rewriter) original(v string) string {
	for k, a := range r.alias {
		if a == v {
			return k
		}
	}
	return v
}

func floatInputs(n *onnxpb.NodeProto, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = n.Input[i]
	}
	return out
}

// promote is torch's result type for float operands: the widest float type
// among operands of rank >= 1 (or of unknown rank), else among the rank-0
// ones, which never promote a tensor.
func (r *rewriter) promote(ins []string) onnx.DType {
	widest := func(zeroDim bool) onnx.DType {
		best := onnx.Undefined
		for _, v := range ins {
			t := r.info[v]
			if (t.RankKnown && t.Rank() == 0) != zeroDim {
				continue
			}
			if rankOf(r.elem(v)) > rankOf(best) {
				best = r.elem(v)
			}
		}
		return best
	}
	if t := widest(false); t != onnx.Undefined {
		return t
	}
	return widest(true)
}

func rankOf(dt onnx.DType) int {
	switch dt {
	case onnx.Float16, onnx.BFloat16:
		return 1
	case onnx.Float32:
		return 2
	case onnx.Float64:
		return 3
	}
	return 0
}

// indexFloats finds the float values of g that are computed from integers
// and constants alone and only serve to compute integers or booleans (T5's
// relative position buckets: positions cast to float, a log, a division,
// cast back to int64). Model code writes such arithmetic with an explicit
// .float(), which a float32 export drops; a half-precision model keeps it
// in float32, as PyTorch would.
func indexFloats(g *onnxpb.GraphProto, info map[string]onnx.TypeInfo) map[string]bool {
	isFloat := func(v string) bool { return info[v].Elem == onnx.Float32 }
	derived := map[string]bool{}
	for _, t := range g.Initializer {
		derived[t.GetName()] = true
	}
	for _, in := range g.Input {
		delete(derived, in.GetName()) // an initializer listed as input can be fed
	}
	for _, n := range g.Node {
		ok := len(n.Input) > 0 || n.GetOpType() == "Constant"
		for _, in := range n.Input {
			if in != "" && isFloat(in) && !derived[in] {
				ok = false
			}
		}
		if hasSubgraph(n) {
			ok = false
		}
		for _, o := range n.Output {
			if ok && isFloat(o) {
				derived[o] = true
			}
		}
	}
	outputs := map[string]bool{}
	for _, o := range g.Output {
		outputs[o.GetName()] = true
	}
	readers := onnx.Consumers(g)
	keep := map[string]bool{}
	for i := len(g.Node) - 1; i >= 0; i-- {
		for _, o := range g.Node[i].Output {
			if derived[o] && !outputs[o] && servesIndices(o, readers, keep, isFloat) {
				keep[o] = true
			}
		}
	}
	for _, t := range g.Initializer {
		if n := t.GetName(); derived[n] && servesIndices(n, readers, keep, isFloat) {
			keep[n] = true
		}
	}
	return keep
}

// servesIndices: every reader of v makes only non-float values or values
// already found to serve indices.
func servesIndices(v string, readers map[string][]*onnxpb.NodeProto, keep map[string]bool, isFloat func(string) bool) bool {
	rs := readers[v]
	if len(rs) == 0 {
		return false
	}
	for _, n := range rs {
		for _, o := range n.Output {
			if o != "" && isFloat(o) && !keep[o] {
				return false
			}
		}
	}
	return true
}

// floatConstant is the float32 tensor of a Constant node's value_float
// (a scalar) or value_floats (a vector).
func floatConstant(n *onnxpb.NodeProto) *onnxpb.TensorProto {
	if a := attrNamed(n, "value_float"); a != nil {
		return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnx.Float32)), FloatData: []float32{a.GetF()}}
	}
	a := attrNamed(n, "value_floats")
	return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnx.Float32)), Dims: []int64{int64(len(a.Floats))}, FloatData: append([]float32(nil), a.Floats...)}
}
