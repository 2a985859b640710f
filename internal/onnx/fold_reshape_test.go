package onnx

import (
	"slices"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// reshapeTargets maps each Reshape's output to its constant target, or to
// nil when the target is computed.
func reshapeTargets(t *testing.T, g *onnxpb.GraphProto) map[string][]int64 {
	t.Helper()
	inits := map[string]*onnxpb.TensorProto{}
	for _, init := range g.Initializer {
		inits[init.GetName()] = init
	}
	out := map[string][]int64{}
	for _, n := range g.Node {
		if n.GetOpType() != "Reshape" {
			continue
		}
		out[n.Output[0]] = nil
		if init := inits[n.Input[1]]; init != nil {
			v, err := ToInt64s(init)
			if err != nil {
				t.Fatal(err)
			}
			out[n.Output[0]] = v
		}
	}
	return out
}

// TestFoldReshapeShapes: the exporter's pattern (the heads split of a
// projection, its target built from the Shape of the projection's input)
// becomes [0, 0, 8, 64]; a flattening whose two leading dimensions merge
// gets -1; a target with two unknown entries, one read from a tensor the
// graph does not relate, and allowzero 1 stay computed. The nodes that
// only fed folded targets are gone.
func TestFoldReshapeShapes(t *testing.T) {
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, Sym("batch"), Sym("seq"), D(512))
	other := b.AddInput("other", Float32, Sym("n"))
	w := b.AddInitializer(MustTensor("w", []int64{512, 512}, make([]float32, 512*512)))
	proj := b.Op("MatMul", []string{x, w})
	shape := b.Op("Shape", []string{x})
	dim := func(of string, i int64) string {
		return b.Op("Unsqueeze", []string{b.Op("Gather", []string{of, b.ConstInt64(i)}), b.ConstInt64Vec(0)})
	}
	heads := b.Op("Reshape", []string{proj, b.Op("Concat", []string{dim(shape, 0), dim(shape, 1), b.ConstInt64Vec(8), b.ConstInt64Vec(64)}, AttrInt("axis", 0))})
	rows := b.Op("Mul", []string{dim(shape, 0), dim(shape, 1)})
	flat := b.Op("Reshape", []string{proj, b.Op("Concat", []string{rows, b.ConstInt64Vec(512)}, AttrInt("axis", 0))})
	twoUnknown := b.Op("Reshape", []string{heads, b.Op("Concat", []string{rows, b.ConstInt64Vec(8), dim(shape, 1), b.ConstInt64Vec(64)}, AttrInt("axis", 0))})
	unrelated := b.Op("Reshape", []string{x, b.Op("Concat", []string{dim(b.Op("Shape", []string{other}), 0), b.ConstInt64Vec(-1)}, AttrInt("axis", 0))})
	allowZero := b.Op("Reshape", []string{proj, b.Op("Concat", []string{dim(shape, 0), dim(shape, 1), b.ConstInt64Vec(512)}, AttrInt("axis", 0))}, AttrInt("allowzero", 1))
	for _, o := range []string{heads, flat, twoUnknown, unrelated, allowZero} {
		b.AddOutputInfo(o, TypeInfo{Elem: Float32})
	}
	g := b.Graph()
	nodes := len(g.Node)
	if n := FoldReshapeShapes(g, map[string]int64{"": 18}); n != 2 {
		t.Fatalf("folded %d Reshapes, want 2", n)
	}
	got := reshapeTargets(t, g)
	want := map[string][]int64{heads: {0, 0, 8, 64}, flat: {-1, 512}, twoUnknown: nil, unrelated: nil, allowZero: nil}
	for out, w := range want {
		if !slices.Equal(got[out], w) || (w == nil) != (got[out] == nil) {
			t.Errorf("%s: target %v, want %v", out, got[out], w)
		}
	}
	if len(g.Node) >= nodes {
		t.Errorf("%d nodes before, %d after: the folded targets' computations stayed", nodes, len(g.Node))
	}
	if _, err := InferShapes(g, map[string]int64{"": 18}); err != nil {
		t.Fatalf("the folded graph: %v", err)
	}
}
