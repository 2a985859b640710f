package amp

import (
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// typesAfter rewrites g and returns the element type of every value.
func typesAfter(t *testing.T, g *onnxpb.GraphProto, o Options) map[string]onnx.DType {
	t.Helper()
	if _, err := Rewrite(g, map[string]int64{"": 17}, o); err != nil {
		t.Fatal(err)
	}
	info, err := onnx.InferShapes(g, map[string]int64{"": 17})
	if err != nil {
		t.Fatalf("the rewritten graph does not type-check: %v", err)
	}
	out := map[string]onnx.DType{}
	for k, v := range info {
		out[k] = v.Elem
	}
	return out
}

func producerOf(g *onnxpb.GraphProto, v string) *onnxpb.NodeProto { return onnx.Producers(g)[v] }

// attention-like block: x @ W (+ bias), scores + mask, softmax, layer norm.
func block() (*onnx.GraphBuilder, map[string]string) {
	b := onnx.NewGraphBuilder(nil)
	v := map[string]string{}
	v["x"] = b.AddInput("x", onnx.Float32, onnx.Sym("b"), onnx.D(4), onnx.D(8))
	v["w"] = b.AddInput("w", onnx.Float32, onnx.D(8), onnx.D(8)) // a parameter
	v["bias"] = b.AddInput("bias", onnx.Float32, onnx.D(8))
	v["mask"] = b.AddInput("mask", onnx.Float32, onnx.Sym("b"), onnx.D(4), onnx.D(8))
	v["mm"] = b.Op("MatMul", []string{v["x"], v["w"]})
	v["lin"] = b.Op("Add", []string{v["mm"], v["bias"]})
	v["scaled"] = b.Op("Mul", []string{v["lin"], b.ConstFloat32(0.5)}) // rank 0: no promotion
	v["masked"] = b.Op("Add", []string{v["scaled"], v["mask"]})        // rank 3 float32: promotes
	v["sm"] = b.Op("Softmax", []string{v["scaled"]}, onnx.AttrInt("axis", -1))
	v["mm2"] = b.Op("MatMul", []string{v["x"], v["w"]}) // the parameter read twice: one cast
	v["ln"] = b.Op("LayerNormalization", []string{v["mm2"], b.AddInput("g", onnx.Float32, onnx.D(8)), b.AddInput("beta", onnx.Float32, onnx.D(8))}, onnx.AttrInt("axis", -1))
	for _, o := range []string{"masked", "sm", "ln"} {
		b.AddOutputInfo(v[o], onnx.TypeInfo{Elem: onnx.Float32})
	}
	return b, v
}

func TestRewritePlacesCastsAsAutocast(t *testing.T) {
	for _, device := range []string{CPU, CUDA} {
		t.Run(device, func(t *testing.T) {
			b, v := block()
			g := b.Graph()
			ty := typesAfter(t, g, Options{DType: onnx.Float16, Device: device})
			// the second MatMul reads the same cast of the parameter
			casts := 0
			for _, n := range g.Node {
				if n.GetOpType() == "Cast" && n.Input[0] == v["w"] {
					casts++
				}
			}
			if casts != 1 {
				t.Errorf("parameter w cast %d times, want once (autocast's weight cache)", casts)
			}
			if ty[v["mm2"]] != onnx.Float16 {
				t.Errorf("MatMul computes in %s, want FLOAT16", onnx.DTypeName(ty[v["mm2"]]))
			}
			if ty[v["scaled"]] != onnx.Float16 {
				t.Errorf("low * rank-0 float32 constant is %s, want FLOAT16 (torch: a 0-dim operand does not promote)", onnx.DTypeName(ty[v["scaled"]]))
			}
			if p := producerOf(g, v["masked"]); ty[p.Input[0]] != onnx.Float32 && ty[p.Input[1]] != onnx.Float32 {
				t.Error("low + rank-3 float32 did not promote to FLOAT")
			}
			sm := producerOf(g, v["sm"])
			wantSM := onnx.Float16
			if device == CUDA {
				wantSM = onnx.Float32 // softmax is in CUDA's float32 list, not the CPU's
			}
			if got := ty[sm.Input[0]]; got != wantSM {
				t.Errorf("Softmax input %s, want %s", onnx.DTypeName(got), onnx.DTypeName(wantSM))
			}
			ln := producerOf(g, v["ln"])
			for ln.GetOpType() == "Cast" { // the output cast back; on the CPU normalized in float32 and rounded once
				ln = producerOf(g, ln.Input[0])
			}
			if ty[ln.Input[0]] != onnx.Float32 || ty[ln.Input[1]] != onnx.Float32 {
				t.Errorf("LayerNormalization computes in %s, want FLOAT with float32 weights", onnx.DTypeName(ty[ln.Input[0]]))
			}
			for _, o := range g.Output {
				if elemOfValueInfo(o) != onnx.Float32 || ty[o.GetName()] != onnx.Float32 {
					t.Errorf("graph output %s is %s, want FLOAT (cast back)", o.GetName(), onnx.DTypeName(ty[o.GetName()]))
				}
			}
			lin := producerOf(g, v["lin"])
			if device == CPU {
				// linear with bias on the CPU: float32 sum of rounded operands, rounded once
				if lin.GetOpType() != "Cast" || ty[v["lin"]] != onnx.Float16 {
					t.Errorf("CPU linear output made by %s as %s, want a Cast to FLOAT16", lin.GetOpType(), onnx.DTypeName(ty[v["lin"]]))
				}
			} else if ty[lin.Input[0]] != onnx.Float16 || ty[lin.Input[1]] != onnx.Float16 {
				t.Error("CUDA linear: the bias is not added in FLOAT16")
			}
		})
	}
}

func TestRewriteHalfModel(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	x := b.AddInput("x", onnx.Float32, onnx.D(2), onnx.D(3))
	w := b.AddInitializer(onnx.MustTensor("w", []int64{3}, []float32{1, -1e9, 70000}))
	pos := b.AddInput("pos", onnx.Int64, onnx.D(3))
	// position arithmetic that only computes integers stays float32
	f := b.Op("Cast", []string{pos}, onnx.AttrInt("to", int64(onnx.Float32)))
	lg := b.Op("Log", []string{b.Op("Add", []string{f, b.ConstFloat32(1)})})
	idx := b.Op("Cast", []string{lg}, onnx.AttrInt("to", int64(onnx.Int64)))
	y := b.Op("Mul", []string{x, w})
	b.AddOutputInfo(y, onnx.TypeInfo{Elem: onnx.Float32})
	b.AddOutputInfo(idx, onnx.TypeInfo{Elem: onnx.Int64})
	g := b.Graph()
	ty := typesAfter(t, g, Options{DType: onnx.Float16, HalfModel: true})
	if ty[w] != onnx.Float16 {
		t.Errorf("initializer stays %s", onnx.DTypeName(ty[w]))
	}
	vals := g.Initializer[0]
	bits, _ := onnx.HalfBits(vals)
	for i, want := range []float32{1, -65504, 65504} { // saturated, not infinite
		if got := onnx.HalfToFloat32(bits[i]); got != want {
			t.Errorf("initializer value %d = %v, want %v", i, got, want)
		}
	}
	if ty[lg] != onnx.Float32 {
		t.Errorf("integer-only arithmetic (log of positions) in %s, want FLOAT", onnx.DTypeName(ty[lg]))
	}
	if mul := producerOf(g, y); ty[mul.Input[0]] != onnx.Float16 && mul.GetOpType() != "Cast" {
		t.Errorf("x * w computes in %s", onnx.DTypeName(ty[mul.Input[0]]))
	}
}

// TestRewriteHalfModelFloatConstants: Constant nodes with value_float(s)
// (the dynamo exporter writes them) become low-precision value tensors in a
// half-precision model, as model.to(dtype) holds every float.
func TestRewriteHalfModelFloatConstants(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	x := b.AddInput("x", onnx.Float32, onnx.D(2), onnx.D(3))
	scalar := b.Op("Constant", nil, onnx.AttrFloat("value_float", 0.5))
	vec := b.Op("Constant", nil, onnx.AttrFloats("value_floats", []float32{1, 2, 70000}))
	y := b.Op("Mul", []string{b.Op("Mul", []string{x, scalar}), vec})
	b.AddOutputInfo(y, onnx.TypeInfo{Elem: onnx.Float32})
	g := b.Graph()
	ty := typesAfter(t, g, Options{DType: onnx.Float16, HalfModel: true})
	for _, c := range []struct {
		name string
		dims []int64
		want []float32
	}{{scalar, nil, []float32{0.5}}, {vec, []int64{3}, []float32{1, 2, 65504}}} {
		n := producerOf(g, c.name)
		if ty[c.name] != onnx.Float16 || len(n.Attribute) != 1 || n.Attribute[0].GetName() != "value" {
			t.Fatalf("constant %s: %s, attributes %v", c.name, onnx.DTypeName(ty[c.name]), n.Attribute)
		}
		tp := n.Attribute[0].T
		bits, err := onnx.HalfBits(tp)
		if err != nil || len(tp.Dims) != len(c.dims) || len(bits) != len(c.want) {
			t.Fatalf("constant %s: dims %v, %d values (%v)", c.name, tp.Dims, len(bits), err)
		}
		for i, w := range c.want {
			if got := onnx.HalfToFloat32(bits[i]); got != w {
				t.Errorf("constant %s[%d] = %v, want %v", c.name, i, got, w)
			}
		}
	}
}

func TestRewriteRefusesControlFlowWithLowValues(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	x := b.AddInput("x", onnx.Float32, onnx.D(2), onnx.D(2))
	mm := b.Op("MatMul", []string{x, x})
	body := onnx.NewGraphBuilder(nil)
	body.AddOutput(body.Op("Identity", []string{mm}), onnx.Float16)
	cond := b.ConstBool(true)
	n := b.Node("If", []string{cond}, []string{"y"})
	n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{Name: stringPtr("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body.Graph()},
		&onnxpb.AttributeProto{Name: stringPtr("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body.Graph()})
	b.AddOutputInfo("y", onnx.TypeInfo{Elem: onnx.Float32})
	_, err := Rewrite(b.Graph(), map[string]int64{"": 17}, Options{DType: onnx.Float16, Device: CPU})
	if err == nil || !strings.Contains(err.Error(), "control flow") {
		t.Errorf("error %v, want one about control flow", err)
	}
	if _, err := Rewrite(block2(), map[string]int64{"": 17}, Options{DType: onnx.Float32, Device: CPU}); err == nil {
		t.Error("FLOAT as the low precision accepted")
	}
}

func block2() *onnxpb.GraphProto { b, _ := block(); return b.Graph() }

func stringPtr(s string) *string { return &s }
