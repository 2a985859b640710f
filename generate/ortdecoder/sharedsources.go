package ortdecoder

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// shareSources makes the cross-attention read each source's encoder keys
// and values once for all the rows that continue it: the export attends
// with past_key_values.N.encoder.* of one row per decoder row, so beam
// search feeds them num_beams times over (a gather at the expansion) and
// every step reads them from memory that many times, at a point where the
// cross-attention is bound by memory, not arithmetic.
//
// After the rewrite those inputs have a row per group of decoder rows: the
// rows fall in consecutive groups of one size, each continuing one source
// (kvState.groupSources). Each layer's Q·Kᵀ and ·V become MatMuls that
// broadcast the group's keys and values over its rows ([groups, rows per
// group, heads, 1, size] against [groups, 1, heads, size, positions]);
// every row and head still gets a product of one query row by the same
// ONNX Runtime kernel as before — a scale of the product stays next to it,
// where ONNX Runtime folds it into the kernel — so the numbers are the
// same bit for bit (TestRewrittenDecoderWithPastEqualsTheExport). A Shape
// of those inputs reports a row per decoder row, as before.
//
// The graph is matched by structure: each encoder key input read by a
// Transpose of its last two axes (then optionally × 1) as the right side
// of a MatMul, each value input as the right side of a MatMul, and
// otherwise only by Shape. If any layer differs, the graph is left as it
// was and false returned.
func shareSources(g *onnxpb.GraphProto, opsets map[string]int64) bool {
	m := newGraphMatch(g)
	type layer struct {
		key, value           string
		heads, size          int64
		keysT, scores, mixed *onnxpb.NodeProto
		shapes               []*onnxpb.NodeProto
	}
	var layers []layer
	for _, in := range g.Input {
		name := in.GetName()
		if !strings.HasPrefix(name, "past_key_values.") || !isEncoderPast(name) || !strings.HasSuffix(name, ".key") {
			continue
		}
		l := layer{key: name, value: strings.TrimSuffix(name, ".key") + ".value"}
		var ok bool
		if l.heads, l.size, ok = m.cacheDims(l.key); !ok {
			return false
		}
		if h, s, ok := m.cacheDims(l.value); !ok || h != l.heads || s != l.size || m.outputs[l.key] || m.outputs[l.value] {
			return false
		}
		for _, r := range m.readers[l.key] {
			switch {
			case r.GetOpType() == "Shape" && r.GetDomain() == "" && len(r.Attribute) == 0:
				l.shapes = append(l.shapes, r)
			case r.GetOpType() == "Transpose" && r.GetDomain() == "" && isPerm(r, 0, 1, 3, 2) && l.keysT == nil:
				l.keysT = r
			default:
				return false
			}
		}
		for _, r := range m.readers[l.value] {
			switch {
			case r.GetOpType() == "Shape" && r.GetDomain() == "" && len(r.Attribute) == 0:
				l.shapes = append(l.shapes, r)
			case r.GetOpType() == "MatMul" && r.GetDomain() == "" && len(r.Input) == 2 && r.Input[1] == l.value && l.mixed == nil:
				l.mixed = r
			default:
				return false
			}
		}
		// a Shape's rows come from the decoder's input ids
		if l.keysT == nil || l.mixed == nil || len(l.shapes) > 0 && m.inputs["input_ids"] == nil {
			return false
		}
		right, ok := m.timesOne(l.keysT.Output[0])
		if !ok {
			return false
		}
		if l.scores = m.soleReader(right, "MatMul"); l.scores == nil || l.scores.Input[1] != right {
			return false
		}
		layers = append(layers, l)
	}
	if len(layers) == 0 {
		return false
	}

	// what is changed below, to put back if the result cannot be ordered:
	// the node lists; a node is edited as a copy put in its place
	nodes, inputs, inits := slices.Clone(g.Node), slices.Clone(g.Input), slices.Clone(g.Initializer)
	edit := func(n *onnxpb.NodeProto) *onnxpb.NodeProto {
		c := proto.Clone(n).(*onnxpb.NodeProto)
		g.Node[slices.Index(g.Node, n)] = c
		return c
	}
	b := onnx.NewGraphBuilder(g)
	unsqueeze := func(x string) string {
		if opsets[""] >= 13 {
			return b.Op("Unsqueeze", []string{x, b.ConstInt64Vec(1)})
		}
		return b.Op("Unsqueeze", []string{x}, onnx.AttrInts("axes", []int64{1}))
	}
	// [groups] and [positions] from the first layer's keys (every layer's
	// have the same rows and positions)
	encShape := b.Op("Shape", []string{layers[0].key})
	groups := b.Op("Slice", []string{encShape, b.ConstInt64Vec(0), b.ConstInt64Vec(1)})
	positions := b.Op("Slice", []string{encShape, b.ConstInt64Vec(2), b.ConstInt64Vec(3)})
	rows := ""
	if m.inputs["input_ids"] != nil {
		rows = b.Op("Slice", []string{b.Op("Shape", []string{"input_ids"}), b.ConstInt64Vec(0), b.ConstInt64Vec(1)})
	}
	// regroup makes node write a new value and reshapes that to target
	// under the node's output name
	regroup := func(node *onnxpb.NodeProto, target string) {
		out := node.Output[0]
		grouped := b.Name(out + "_grouped")
		node.Output[0] = grouped
		b.Node("Reshape", []string{grouped, target}, []string{out})
	}
	for _, l := range layers {
		l.keysT, l.scores, l.mixed = edit(l.keysT), edit(l.scores), edit(l.mixed)
		perRow := b.ConstInt64Vec(-1, l.heads, 1)
		// queries [rows, heads, 1, size] → [groups, rows per group, heads, 1, size]
		l.scores.Input[0] = b.Op("Reshape", []string{l.scores.Input[0], b.Op("Concat", []string{groups, b.ConstInt64Vec(-1, l.heads, 1, l.size)}, onnx.AttrInt("axis", 0))})
		// keys [groups, heads, positions, size] → [groups, 1, heads, size, positions]
		l.keysT.Input[0] = unsqueeze(l.key)
		l.keysT.Attribute = []*onnxpb.AttributeProto{onnx.AttrInts("perm", []int64{0, 1, 2, 4, 3})}
		// scores back to [rows, heads, 1, positions] for the bias and
		// softmax; after a scale, which ONNX Runtime folds into the
		// product's kernel (another kernel than an unscaled product's, so
		// the numbers stay those of the export only if it still does)
		scaled := l.scores
		if mul := m.soleReader(l.scores.Output[0], "Mul"); mul != nil && slices.ContainsFunc(mul.Input, func(in string) bool { _, ok := m.scalar(in, 0); return ok }) {
			scaled = edit(mul)
		}
		regroup(scaled, b.Op("Concat", []string{perRow, positions}, onnx.AttrInt("axis", 0)))
		// weights [rows, heads, 1, positions] → [groups, rows per group, heads, 1, positions]
		l.mixed.Input[0] = b.Op("Reshape", []string{l.mixed.Input[0], b.Op("Concat", []string{groups, perRow, positions}, onnx.AttrInt("axis", 0))})
		l.mixed.Input[1] = unsqueeze(l.value)
		regroup(l.mixed, b.ConstInt64Vec(-1, l.heads, 1, l.size))
		// a Shape of the inputs reports a row per decoder row
		for _, s := range l.shapes {
			s = edit(s)
			out := s.Output[0]
			s.Output[0] = b.Name(out + "_groups")
			b.Node("Concat", []string{rows, b.Op("Slice", []string{s.Output[0], b.ConstInt64Vec(1), b.ConstInt64Vec(4)})}, []string{out}, onnx.AttrInt("axis", 0))
		}
	}
	onnx.RemoveDeadNodes(g)
	if err := onnx.TopoSort(g); err != nil {
		g.Node, g.Input, g.Initializer = nodes, inputs, inits
		return false
	}
	return true
}
