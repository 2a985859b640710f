package ortdecoder

import (
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// pastLengthInput is the input of a decoder-with-past graph that attends
// over its cache in place (attendInPlace): the positions the cache holds,
// an int32 of shape [1].
const pastLengthInput = "ortrain_past_length"

// cacheCapacityDim names the position axis of the cache tensors of such a
// graph: the positions allocated, of which pastLengthInput are held.
const cacheCapacityDim = "ortrain_cache_capacity"

// msDomain is ONNX Runtime's operator domain.
const msDomain = "com.microsoft"

// attendInPlace makes each decoder layer's self-attention read its cache
// where it lies instead of a copy: the export appends the new position's
// key and value to the whole past with a Concat, a copy of the cache at
// every step, before Q·Kᵀ, softmax and ·V. Each such attention becomes ONNX
// Runtime's DecoderMaskedMultiHeadAttention with a shared past and present
// buffer: past_key_values.N.decoder.* are allocated for more positions than
// they hold (cacheCapacityDim), present.N.decoder.* are bound to the same
// memory, and the operator writes the new position in place and attends
// over the first pastLengthInput + 1 positions. It computes Q·Kᵀ with the
// export's attention bias as the product's addend, the softmax and the
// product with V with the same ONNX Runtime routines as the export's
// MatMul, Add and Softmax, so the logits are the same bit for bit
// (TestAttendInPlaceEqualsTheExport).
//
// The graph is matched by structure, not by names: for every decoder cache
// input pair, a Concat along the positions, a Transpose of the keys, an
// optional scale of exactly 1 (scaled-dot-product exports multiply both
// sides by √scale; a scale other than 1 on the keys would have to be
// applied to the cache), MatMul, an optional scale, additive biases, Softmax over
// the last axis, MatMul with the values, and reshapes back to
// [rows, 1, heads·head size]; the other readers of the cache may only take
// its Shape, which then reports the positions held. If any layer differs,
// the graph is left as it was and false returned.
func attendInPlace(g *onnxpb.GraphProto, opsets map[string]int64) bool {
	m := newGraphMatch(g)
	var plans []inPlaceAttention
	for _, in := range g.Input {
		name := in.GetName()
		if !strings.HasPrefix(name, "past_key_values.") || isEncoderPast(name) || !strings.HasSuffix(name, ".key") {
			continue
		}
		p, ok := m.matchAttention(name, strings.TrimSuffix(name, ".key")+".value", opsets)
		if !ok {
			return false
		}
		plans = append(plans, p)
	}
	if len(plans) == 0 {
		return false
	}
	// what is changed below, to put back if the result cannot be ordered
	nodes, inputs, inits := slices.Clone(g.Node), slices.Clone(g.Input), slices.Clone(g.Initializer)
	b := onnx.NewGraphBuilder(g)
	b.AddInput(pastLengthInput, onnx.Int32, onnx.D(1))
	past := b.Op("Cast", []string{pastLengthInput}, onnx.AttrInt("to", int64(onnx.Int64)))
	held := map[bool]string{false: past, true: b.Op("Add", []string{past, b.ConstInt64Vec(1)})}
	front, back := [2]string{b.ConstInt64Vec(0), b.ConstInt64Vec(2)}, [2]string{b.ConstInt64Vec(3), b.ConstInt64Vec(4)}
	removed := map[*onnxpb.NodeProto]bool{}
	perHead := map[string]string{}
	for _, p := range plans {
		q := p.query
		if p.queryScale != "" {
			q = b.Op("Mul", []string{q, p.queryScale})
		}
		bias := ""
		switch len(p.biases) {
		case 1:
			bias = p.biases[0]
		case 2:
			bias = b.Op("Add", p.biases)
		}
		if bias != "" {
			// ONNX Runtime's CPU kernel reads a bias of shape
			// [rows, 1, 1, positions] (a mask broadcast over the heads) as
			// if it had every head, past the end of it: give it every
			// head. Layers sharing a bias share its expansion.
			if perHead[bias] == "" {
				perHead[bias] = b.Op("Expand", []string{bias, b.ConstInt64Vec(1, p.heads, 1, 1)})
			}
			bias = perHead[bias]
		}
		b.AddNode(&onnxpb.NodeProto{
			Name: proto.String(b.Name("ortrain_attend_in_place")), OpType: proto.String("DecoderMaskedMultiHeadAttention"), Domain: proto.String(msDomain),
			Input:  []string{q, p.key, p.value, "", bias, p.pastK, p.pastV, pastLengthInput},
			Output: []string{p.out, p.presentK, p.presentV},
			Attribute: []*onnxpb.AttributeProto{
				onnx.AttrInt("num_heads", p.heads), onnx.AttrFloat("scale", p.scale), onnx.AttrInt("past_present_share_buffer", 1),
			},
		})
		for _, n := range p.replaced {
			removed[n] = true
		}
		// a Shape of the cache reports the positions held: the allocated
		// shape with its position axis replaced
		for _, s := range p.shapes {
			removed[s.node] = true
			allocated := b.Op("Shape", []string{s.of})
			b.Node("Concat", []string{
				b.Op("Slice", []string{allocated, front[0], front[1]}), held[s.present], b.Op("Slice", []string{allocated, back[0], back[1]}),
			}, []string{s.node.Output[0]}, onnx.AttrInt("axis", 0))
		}
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *onnxpb.NodeProto) bool { return removed[n] })
	onnx.RemoveDeadNodes(g)
	if err := onnx.TopoSort(g); err != nil {
		g.Node, g.Input, g.Initializer = nodes, inputs, inits
		return false
	}
	for _, p := range plans {
		for _, vi := range slices.Concat(g.Input, g.Output) {
			switch vi.GetName() {
			case p.pastK, p.pastV, p.presentK, p.presentV:
				dims := vi.GetType().GetTensorType().GetShape().GetDim()
				dims[2].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: cacheCapacityDim}
			}
		}
	}
	return true
}

// inPlaceAttention is one layer's self-attention as attendInPlace found it.
type inPlaceAttention struct {
	pastK, pastV, presentK, presentV string
	// query, key, value: the new position's projections, [rows, 1, heads·size]
	query, key, value string
	queryScale        string // multiplies the query ("" none)
	// biases are added to Q·Kᵀ in turn: none, one, or (older T5 exports)
	// the position bias and then the mask, which is 0 at every position
	// a decoding step attends to, so that adding their sum first changes
	// nothing there
	biases []string
	out    string // the attention's output, [rows, 1, heads·size]
	heads  int64
	// scale multiplies Q·Kᵀ. The operator scales the product and adds the
	// bias in one step (a fused multiply-add) where the export rounds the
	// scaled product first: the same when the scale is 1 (T5) or the bias
	// 0, which is what a decoding step's causal mask adds at every
	// position it attends to (BART, Marian).
	scale    float32
	replaced []*onnxpb.NodeProto // the concats and the node that made out
	shapes   []cacheShape
}

// cacheShape is a Shape node reading a cache tensor.
type cacheShape struct {
	node    *onnxpb.NodeProto
	of      string // the past input of the same allocated shape
	present bool   // it reads the present (one more position held)
}

type graphMatch struct {
	g        *onnxpb.GraphProto
	producer map[string]*onnxpb.NodeProto
	readers  map[string][]*onnxpb.NodeProto
	consts   map[string]*onnxpb.TensorProto
	inputs   map[string]*onnxpb.ValueInfoProto
	outputs  map[string]bool
}

func newGraphMatch(g *onnxpb.GraphProto) *graphMatch {
	m := &graphMatch{g: g, producer: onnx.Producers(g), readers: onnx.Consumers(g), consts: map[string]*onnxpb.TensorProto{},
		inputs: map[string]*onnxpb.ValueInfoProto{}, outputs: map[string]bool{}}
	for _, t := range g.Initializer {
		m.consts[t.GetName()] = t
	}
	for _, n := range g.Node {
		if n.GetOpType() == "Constant" && n.GetDomain() == "" && len(n.Output) == 1 {
			for _, a := range n.Attribute {
				if a.GetName() == "value" && a.T != nil {
					m.consts[n.Output[0]] = a.T
				}
			}
		}
	}
	for _, in := range g.Input {
		m.inputs[in.GetName()] = in
	}
	for _, o := range g.Output {
		m.outputs[o.GetName()] = true
	}
	return m
}

// op is the standard-domain node of the given type making name (nil if none).
func (m *graphMatch) op(name, opType string) *onnxpb.NodeProto {
	n := m.producer[name]
	if n == nil || n.GetOpType() != opType || n.GetDomain() != "" {
		return nil
	}
	return n
}

// soleReader is the only node reading name, if it is of type opType and
// name is not a graph output.
func (m *graphMatch) soleReader(name, opType string) *onnxpb.NodeProto {
	rs := m.readers[name]
	if len(rs) != 1 || m.outputs[name] || rs[0].GetOpType() != opType || rs[0].GetDomain() != "" {
		return nil
	}
	return rs[0]
}

// ints is the value of a constant integer tensor.
func (m *graphMatch) ints(name string) ([]int64, bool) {
	t := m.consts[name]
	if t == nil {
		return nil, false
	}
	vals, err := onnx.ToFloat64s(t)
	if err != nil {
		return nil, false
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		out[i] = int64(v)
	}
	return out, true
}

// scalar is the value of a one-element constant, or of a Cast, Sqrt or
// Identity of one (how scaled-dot-product exports write their scale).
func (m *graphMatch) scalar(name string, depth int) (float64, bool) {
	if t := m.consts[name]; t != nil {
		vals, err := onnx.ToFloat64s(t)
		if err != nil || len(vals) != 1 {
			return 0, false
		}
		return vals[0], true
	}
	n := m.producer[name]
	if n == nil || depth > 4 || n.GetDomain() != "" || len(n.Input) != 1 {
		return 0, false
	}
	v, ok := m.scalar(n.Input[0], depth+1)
	switch n.GetOpType() {
	case "Identity", "Cast":
		return v, ok && (n.GetOpType() == "Identity" || onnx.AttrIntOr(n, "to", 0) == int64(onnx.Float32))
	case "Sqrt":
		return math.Sqrt(v), ok && v >= 0
	}
	return 0, false
}

func isPerm(n *onnxpb.NodeProto, perm ...int64) bool {
	p, ok := onnx.AttrIntsOf(n, "perm")
	return ok && slices.Equal(p, perm)
}

// splitHeads undoes the export's split into heads: name must be
// Transpose[0,2,1,3](Reshape(x, [·, ·, heads, size])); it returns x.
func (m *graphMatch) splitHeads(name string, heads, size int64) (string, bool) {
	t := m.op(name, "Transpose")
	if t == nil || !isPerm(t, 0, 2, 1, 3) {
		return "", false
	}
	r := m.op(t.Input[0], "Reshape")
	if r == nil || len(r.Input) < 2 {
		return "", false
	}
	// [rows, positions, heads, size], one of the last two possibly -1
	// (then the Concat with the cache fixes it)
	target, ok := m.ints(r.Input[1])
	if !ok || len(target) != 4 || target[0] > 0 || target[1] > 1 {
		return "", false
	}
	if !(target[2] == heads && target[3] == size || target[2] == -1 && target[3] == size || target[2] == heads && target[3] == -1) {
		return "", false
	}
	return r.Input[0], true
}

// timesOne skips a Mul of name by a constant 1 if that is what reads it;
// a Mul by anything else fails (the operator scales Q·Kᵀ with one
// rounding fewer than a product followed by a Mul).
func (m *graphMatch) timesOne(name string) (string, bool) {
	mul := m.soleReader(name, "Mul")
	if mul == nil {
		return name, true
	}
	other := mul.Input[1]
	if other == name {
		other = mul.Input[0]
	}
	if v, ok := m.scalar(other, 0); !ok || v != 1 {
		return "", false
	}
	return mul.Output[0], true
}

// cacheDims are the static heads and head size of a cache input.
func (m *graphMatch) cacheDims(name string) (heads, size int64, ok bool) {
	in := m.inputs[name]
	if in == nil {
		return 0, 0, false
	}
	ti, ok := onnx.TypeInfoOf(in)
	if !ok || !ti.RankKnown || len(ti.Dims) != 4 || ti.Elem != onnx.Float32 || !ti.Dims[1].Static() || !ti.Dims[3].Static() {
		return 0, 0, false
	}
	return ti.Dims[1].Value, ti.Dims[3].Value, true
}

// appended finds the Concat appending the new position to a past input,
// and the projection [rows, 1, heads·size] the new position comes from.
func (m *graphMatch) appended(past string, heads, size int64) (concat *onnxpb.NodeProto, projection string, ok bool) {
	for _, r := range m.readers[past] {
		if r.GetOpType() != "Concat" || r.GetDomain() != "" {
			continue
		}
		if concat != nil || len(r.Input) != 2 || r.Input[0] != past {
			return nil, "", false
		}
		concat = r
	}
	if concat == nil || !m.outputs[concat.Output[0]] {
		return nil, "", false
	}
	if axis := onnx.AttrIntOr(concat, "axis", 0); axis != 2 && axis != -2 {
		return nil, "", false
	}
	projection, ok = m.splitHeads(concat.Input[1], heads, size)
	return concat, projection, ok
}

func (m *graphMatch) matchAttention(pastK, pastV string, opsets map[string]int64) (p inPlaceAttention, ok bool) {
	heads, size, ok := m.cacheDims(pastK)
	if h, s, okV := m.cacheDims(pastV); !ok || !okV || h != heads || s != size {
		return p, false
	}
	p = inPlaceAttention{pastK: pastK, pastV: pastV, heads: heads}
	concatK, key, ok := m.appended(pastK, heads, size)
	if !ok {
		return p, false
	}
	concatV, value, ok := m.appended(pastV, heads, size)
	if !ok {
		return p, false
	}
	p.presentK, p.presentV, p.key, p.value = concatK.Output[0], concatV.Output[0], key, value

	// keys: Transpose, optionally × 1, as the right side of Q·Kᵀ
	// (scaled-dot-product exports scale both sides by √scale)
	var keysT *onnxpb.NodeProto
	for _, r := range m.readers[p.presentK] {
		if r.GetOpType() == "Transpose" {
			if keysT != nil || !isPerm(r, 0, 1, 3, 2) {
				return p, false
			}
			keysT = r
		}
	}
	if keysT == nil {
		return p, false
	}
	right := keysT.Output[0]
	if right, ok = m.timesOne(right); !ok {
		return p, false
	}
	scores := m.soleReader(right, "MatMul")
	if scores == nil || scores.Input[1] != right {
		return p, false
	}

	// the query, optionally scaled after the split into heads
	left := scores.Input[0]
	if mul := m.op(left, "Mul"); mul != nil {
		for i, in := range mul.Input {
			if _, ok := m.scalar(in, 0); ok {
				p.queryScale, left = in, mul.Input[1-i]
				break
			}
		}
		if p.queryScale == "" {
			return p, false
		}
	}
	if p.query, ok = m.splitHeads(left, heads, size); !ok {
		return p, false
	}

	// optionally × a scale, + biases, softmax over the positions, · V
	probs := scores.Output[0]
	p.scale = 1
	if mul := m.soleReader(probs, "Mul"); mul != nil {
		other := mul.Input[1]
		if other == probs {
			other = mul.Input[0]
		}
		v, ok := m.scalar(other, 0)
		if !ok || v == 0 || float64(float32(v)) != v {
			return p, false
		}
		p.scale, probs = float32(v), mul.Output[0]
	}
	for add := m.soleReader(probs, "Add"); add != nil && len(p.biases) < 2; add = m.soleReader(probs, "Add") {
		bias := add.Input[1]
		if bias == probs {
			bias = add.Input[0]
		}
		p.biases = append(p.biases, bias)
		probs = add.Output[0]
	}
	softmax := m.soleReader(probs, "Softmax")
	if softmax == nil {
		return p, false
	}
	// before opset 13 Softmax flattens from its axis (default 1) on
	def := int64(-1)
	if opsets[""] < 13 {
		def = 1
	}
	if axis := onnx.AttrIntOr(softmax, "axis", def); axis != -1 && axis != 3 {
		return p, false
	}
	weighted := m.soleReader(softmax.Output[0], "MatMul")
	if weighted == nil || weighted.Input[0] != softmax.Output[0] || weighted.Input[1] != p.presentV {
		return p, false
	}

	// back to [rows, 1, heads·size]: with one position, transposing heads
	// and positions and reshaping keep the elements' order
	cur := weighted.Output[0]
	for range 4 {
		n := m.readers[cur]
		if len(n) != 1 || m.outputs[cur] || n[0].GetDomain() != "" || n[0].Input[0] != cur {
			return p, false
		}
		switch next := n[0]; {
		case next.GetOpType() == "Transpose" && isPerm(next, 0, 2, 1, 3):
			cur = next.Output[0]
			continue
		case next.GetOpType() == "Reshape" && len(next.Input) == 2:
			target, ok := m.ints(next.Input[1])
			if !ok || (len(target) != 3 && len(target) != 4) {
				return p, false
			}
			if len(target) == 4 {
				cur = next.Output[0]
				continue
			}
			// [rows, 1, heads·size], the last possibly -1
			if target[0] > 0 || target[1] > 1 || target[2] != heads*size && (target[2] != -1 || target[1] < 0) {
				return p, false
			}
			p.out = next.Output[0]
			p.replaced = []*onnxpb.NodeProto{concatK, concatV, next}
		default:
			return p, false
		}
		break
	}
	if p.out == "" {
		return p, false
	}

	// every other reader of the cache takes its Shape
	known := map[*onnxpb.NodeProto]bool{concatK: true, concatV: true, keysT: true, weighted: true}
	for _, c := range []struct {
		name, of string
		present  bool
	}{{pastK, pastK, false}, {pastV, pastV, false}, {p.presentK, pastK, true}, {p.presentV, pastV, true}} {
		for _, r := range m.readers[c.name] {
			switch {
			case known[r]:
			case r.GetOpType() == "Shape" && r.GetDomain() == "" && len(r.Attribute) == 0:
				p.shapes = append(p.shapes, cacheShape{node: r, of: c.of, present: c.present})
			default:
				return p, false
			}
		}
	}
	return p, true
}
