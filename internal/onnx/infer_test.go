package onnx

import (
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

func wantType(t *testing.T, types map[string]TypeInfo, name string, want string) {
	t.Helper()
	got, ok := types[name]
	if !ok {
		t.Errorf("%s: no type", name)
		return
	}
	if got.String() != want {
		t.Errorf("%s: got %s, want %s", name, got, want)
	}
}

// attentionBlock builds one self-attention block the way exporters do:
// heads split with a Reshape whose target comes from Shape -> Gather ->
// Unsqueeze -> Concat on the input, so symbolic batch and sequence sizes
// must survive the folding.
func attentionBlock(t *testing.T) (*GraphBuilder, map[string]string) {
	const vocab, d, heads = 11, 8, 2
	b := NewGraphBuilder(nil)
	ids := b.AddInput("input_ids", Int64, Sym("batch"), Sym("seq"))
	mask := b.AddInput("attention_mask", Int64, Sym("batch"), Sym("seq"))
	emb := b.AddInitializer(MustTensor("emb", []int64{vocab, d}, make([]float32, vocab*d)))
	wq := b.AddInitializer(MustTensor("wq", []int64{d, d}, make([]float32, d*d)))
	gamma := b.AddInitializer(MustTensor("gamma", []int64{d}, make([]float32, d)))
	v := map[string]string{}
	x := b.Op("Gather", []string{emb, ids})
	v["x"] = x
	ln := b.OpN("LayerNormalization", []string{x, gamma}, 3, AttrFloat("epsilon", 1e-5))
	v["ln"], v["mean"] = ln[0], ln[1]
	q := b.Op("MatMul", []string{ln[0], wq})
	shape := b.Op("Shape", []string{q})
	bsz := b.Op("Gather", []string{shape, b.ConstInt64(0)}, AttrInt("axis", 0))
	seq := b.Op("Gather", []string{shape, b.ConstInt64(1)}, AttrInt("axis", 0))
	axes0 := b.ConstInt64Vec(0)
	target := b.Op("Concat", []string{
		b.Op("Unsqueeze", []string{bsz, axes0}), b.Op("Unsqueeze", []string{seq, axes0}),
		b.ConstInt64Vec(heads), b.ConstInt64Vec(-1),
	}, AttrInt("axis", 0))
	qh := b.Op("Transpose", []string{b.Op("Reshape", []string{q, target})}, AttrInts("perm", []int64{0, 2, 1, 3}))
	v["qh"] = qh
	kt := b.Op("Transpose", []string{qh}, AttrInts("perm", []int64{0, 1, 3, 2}))
	scores := b.Op("Div", []string{b.Op("MatMul", []string{qh, kt}), b.ConstFloat32(2)})
	v["scores"] = scores
	m4 := b.Op("Unsqueeze", []string{mask, b.ConstInt64Vec(1, 2)})
	v["m4"] = m4
	cond := b.Op("Equal", []string{m4, b.ConstInt64(0)})
	masked := b.Op("Where", []string{cond, b.ConstFloat32(-1e9), scores})
	v["masked"] = masked
	probs := b.Op("Softmax", []string{masked}, AttrInt("axis", -1))
	ctx := b.Op("MatMul", []string{probs, qh})
	back := b.Op("Reshape", []string{b.Op("Transpose", []string{ctx}, AttrInts("perm", []int64{0, 2, 1, 3})), b.ConstInt64Vec(0, 0, -1)})
	v["back"] = back
	pooled := b.Op("ReduceMean", []string{back}, AttrInts("axes", []int64{1}), AttrInt("keepdims", 0))
	v["pooled"] = pooled
	sum18 := b.Op("ReduceSum", []string{back, b.ConstInt64Vec(-1)})
	v["sum18"] = sum18
	return b, v
}

func TestInferAttentionBlock(t *testing.T) {
	b, v := attentionBlock(t)
	types, err := InferShapes(b.Graph(), map[string]int64{"": 18})
	if err != nil {
		t.Fatal(err)
	}
	wantType(t, types, v["x"], "FLOAT[batch,seq,8]")
	wantType(t, types, v["ln"], "FLOAT[batch,seq,8]")
	wantType(t, types, v["mean"], "FLOAT[batch,seq,1]")
	wantType(t, types, v["qh"], "FLOAT[batch,2,seq,4]")
	wantType(t, types, v["scores"], "FLOAT[batch,2,seq,seq]")
	wantType(t, types, v["m4"], "INT64[batch,1,1,seq]")
	wantType(t, types, v["masked"], "FLOAT[batch,2,seq,seq]")
	wantType(t, types, v["back"], "FLOAT[batch,seq,8]")
	wantType(t, types, v["pooled"], "FLOAT[batch,8]")
	wantType(t, types, v["sum18"], "FLOAT[batch,seq,1]")
}

func TestInferErrors(t *testing.T) {
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, D(2), D(3))
	y := b.AddInput("y", Float32, D(4), D(5))
	b.Op("MatMul", []string{x, y})
	if _, err := InferShapes(b.Graph(), nil); err == nil || !strings.Contains(err.Error(), "MatMul") {
		t.Errorf("MatMul mismatch: %v", err)
	}
	b = NewGraphBuilder(nil)
	x = b.AddInput("x", Float32, D(2), D(3))
	y = b.AddInput("y", Float32, D(4))
	b.Op("Add", []string{x, y})
	if _, err := InferShapes(b.Graph(), nil); err == nil || !strings.Contains(err.Error(), "broadcast") {
		t.Errorf("Add mismatch: %v", err)
	}
	b = NewGraphBuilder(nil)
	b.Op("Relu", []string{"nowhere"})
	if _, err := InferShapes(b.Graph(), nil); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("undefined input: %v", err)
	}
}

func TestInferIfAndLoop(t *testing.T) {
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, Sym("N"), D(4))
	cond := b.AddInput("cond", Bool)

	branch := func(op string, shape []int64) *onnxpb.GraphProto {
		gb := NewGraphBuilder(&onnxpb.GraphProto{Name: proto.String(op)})
		gb.Prefix = op + "/"
		out := gb.Op(op, []string{x})
		if shape != nil {
			out = gb.Op("Reshape", []string{out, gb.ConstInt64Vec(shape...)})
		}
		gb.Graph().Output = append(gb.Graph().Output, &onnxpb.ValueInfoProto{Name: proto.String(out)})
		return gb.Graph()
	}
	same := b.Op("If", []string{cond}, AttrGraph("then_branch", branch("Relu", nil)), AttrGraph("else_branch", branch("Neg", nil)))
	mixed := b.Op("If", []string{cond}, AttrGraph("then_branch", branch("Abs", nil)), AttrGraph("else_branch", branch("Sigmoid", []int64{-1})))

	body := &onnxpb.GraphProto{Name: proto.String("body")}
	lb := NewGraphBuilder(body)
	lb.Prefix = "body/"
	for _, n := range []string{"iter", "cond_in", "acc"} {
		body.Input = append(body.Input, &onnxpb.ValueInfoProto{Name: proto.String("body/" + n)})
	}
	next := lb.Op("Add", []string{"body/acc", x})
	scan := lb.Op("ReduceSum", []string{next, lb.ConstInt64Vec(1)}, AttrInt("keepdims", 0))
	body.Output = []*onnxpb.ValueInfoProto{
		{Name: proto.String("body/cond_in")}, {Name: proto.String(next)}, {Name: proto.String(scan)},
	}
	outs := b.OpN("Loop", []string{b.ConstInt64(3), "", x}, 2, AttrGraph("body", body))

	types, err := InferShapes(b.Graph(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantType(t, types, same, "FLOAT[N,4]")
	if got := types[mixed]; got.Rank() != -1 || got.Elem != Float32 {
		t.Errorf("If with branches of ranks 2 and 1: %v", got)
	}
	wantType(t, types, outs[0], "FLOAT[N,4]")
	if got := types[outs[1]]; got.Rank() != 2 || got.Dims[1].Param != "N" || got.Dims[0].Static() {
		t.Errorf("scan output %v, want [trip count, N]", got)
	}
	wantType(t, types, next, "FLOAT[N,4]")
}

func TestInferDeclaredConflict(t *testing.T) {
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, D(3), D(4))
	y := b.Op("Transpose", []string{x})
	b.AddOutput(y, Float32, D(3), D(4)) // wrong: the transpose is [4, 3]
	types, err := InferShapes(b.Graph(), nil)
	if err == nil || !strings.Contains(err.Error(), "declared FLOAT[3,4], inferred FLOAT[4,3]") {
		t.Fatalf("got %v", err)
	}
	if types[y].String() != "FLOAT[4,3]" {
		t.Fatalf("kept %s", types[y])
	}
}

func TestAnnotateShapes(t *testing.T) {
	b, v := attentionBlock(t)
	g := b.Graph()
	types, err := InferShapes(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	AnnotateShapes(g, types)
	if len(g.ValueInfo) < len(g.Node) {
		t.Fatalf("%d value_info entries for %d nodes", len(g.ValueInfo), len(g.Node))
	}
	recorded := map[string]string{}
	for _, vi := range g.ValueInfo {
		ti, _ := TypeInfoOf(vi)
		recorded[vi.GetName()] = ti.String()
	}
	if recorded[v["qh"]] != "FLOAT[batch,2,seq,4]" {
		t.Errorf("recorded %s", recorded[v["qh"]])
	}
	// Inference over the annotated graph agrees with itself.
	again, err := InferShapes(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, ti := range types {
		if again[name].String() != ti.String() {
			t.Errorf("%s: %s then %s", name, ti, again[name])
		}
	}
}

func TestInferFoldsSizeIntoReshape(t *testing.T) {
	// Reshape(x, [Size(x)]) flattens to one symbolic dimension batch*seq*4.
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, Sym("batch"), Sym("seq"), D(4))
	n := b.Op("Unsqueeze", []string{b.Op("Size", []string{x}), b.ConstInt64Vec(0)})
	flat := b.Op("Reshape", []string{x, n})
	back := b.Op("Reshape", []string{flat, b.Op("Shape", []string{x})})
	types, err := InferShapes(b.Graph(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantType(t, types, flat, "FLOAT[4*batch*seq]")
	wantType(t, types, back, "FLOAT[batch,seq,4]")
	if got, ok := types[flat].Shape(map[string]int64{"batch": 2, "seq": 3}); !ok || got[0] != 24 {
		t.Errorf("evaluated %v %v", got, ok)
	}
}

// Operands of unknown rank (here the output of a custom-domain op) still
// give a rank where the operator fixes it; autodiff's rules rely on these.
func TestInferUnknownRankOperands(t *testing.T) {
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, D(2), D(3))
	w := b.AddInput("w", Float32, D(3), D(4))
	u := b.Op("Cast", b.OpDomain("my.domain", "Mystery", []string{x}, 1), AttrInt("to", int64(Float32)))
	v := map[string]string{
		"all":      b.Op("ReduceSum", []string{u}, AttrInt("keepdims", 0)),
		"allEmpty": b.Op("ReduceMean", []string{u, b.ConstInt64s(nil, []int64{0})}, AttrInt("keepdims", 0)),
		"kept":     b.Op("ReduceSum", []string{u}),
		"someAxes": b.Op("ReduceSum", []string{u, b.ConstInt64Vec(1)}, AttrInt("keepdims", 0)),
		"noop":     b.Op("ReduceSum", []string{u}, AttrInt("keepdims", 0), AttrInt("noop_with_empty_axes", 1)),
		"nonzero":  b.Op("NonZero", []string{u}),
		"concat":   b.Op("Concat", []string{x, u}, AttrInt("axis", 0)),
		"concat2":  b.Op("Concat", []string{u, x}, AttrInt("axis", 1)),
		"einsum":   b.Op("Einsum", []string{u, w}, AttrString("equation", "ij,jk->ik")),
		"implicit": b.Op("Einsum", []string{w, u}, AttrString("equation", "jk,ij")),
		"ellipsis": b.Op("Einsum", []string{u, w}, AttrString("equation", "...j,jk->...k")),
		"rank3":    b.Op("Einsum", []string{u, x}, AttrString("equation", "ijk,jk->ikj")),
	}
	types, err := InferShapes(b.Graph(), map[string]int64{"": 18, "my.domain": 1})
	if err != nil {
		t.Fatal(err)
	}
	wantType(t, types, u, "FLOAT[rank ?]")
	wantType(t, types, v["all"], "FLOAT[]")
	wantType(t, types, v["allEmpty"], "FLOAT[]")
	for _, k := range []string{"kept", "someAxes", "noop", "ellipsis"} {
		wantType(t, types, v[k], "FLOAT[rank ?]")
	}
	// shape checks dims: "?" is a fresh symbol, -1 ... any static size.
	shape := func(k string, want ...int64) {
		t.Helper()
		got := types[v[k]]
		if got.Rank() != len(want) {
			t.Errorf("%s: got %s, want rank %d", k, got, len(want))
			return
		}
		for i, d := range got.Dims {
			if want[i] >= 0 && d.Value != want[i] || want[i] < 0 && (d.Static() || d.Param == "") {
				t.Errorf("%s: got %s, want %v (-1: a fresh symbol)", k, got, want)
			}
		}
	}
	shape("nonzero", -1, -1)
	shape("concat", -1, 3)
	shape("concat2", 2, -1)
	shape("einsum", -1, 4)
	shape("implicit", -1, 4)
	shape("rank3", -1, 3, 2)
	if types[v["nonzero"]].Elem != Int64 {
		t.Errorf("NonZero: %s", types[v["nonzero"]])
	}
}
