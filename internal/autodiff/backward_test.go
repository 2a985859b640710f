package autodiff

import (
	"errors"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// graph starts a graph with float inputs of static shape [2,3].
func graph(inputs ...string) *onnx.GraphBuilder {
	b := onnx.NewGraphBuilder(nil)
	b.Consts = onnx.ConstNode
	for _, in := range inputs {
		b.AddInput(in, onnx.Float32, onnx.D(2), onnx.D(3))
	}
	return b
}

func scalarLoss(b *onnx.GraphBuilder, x string) string {
	return b.Op("ReduceSum", []string{x}, onnx.AttrInt("keepdims", 0))
}

var opset17 = map[string]int64{"": 17}

func countOps(nodes []*onnxpb.NodeProto) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n.GetOpType()]++
	}
	return m
}

func TestBadInput(t *testing.T) {
	b := graph("x", "w")
	b.AddInput("ids", onnx.Int64, onnx.D(2))
	y := b.Op("Mul", []string{"x", "w"})
	loss := scalarLoss(b, y)
	g := b.Graph()
	cases := []struct {
		name   string
		loss   string
		wrt    []string
		opsets map[string]int64
		opts   Options
		want   string
	}{
		{"loss missing", "nope", []string{"w"}, opset17, Options{}, `loss "nope" is not a value of the graph`},
		{"loss not scalar", y, []string{"w"}, opset17, Options{}, "must be a scalar"},
		{"loss integer", "ids", []string{"w"}, opset17, Options{}, "must be a float scalar"},
		{"wrt missing", loss, []string{"w", "bias"}, opset17, Options{}, `wrt value "bias" is not in the graph`},
		{"wrt integer", loss, []string{"ids"}, opset17, Options{}, "only float values have gradients"},
		{"no opset", loss, []string{"w"}, map[string]int64{"com.microsoft": 1}, Options{}, "standard ONNX opset 13 or newer"},
		{"old opset", loss, []string{"w"}, map[string]int64{"": 11}, Options{}, "standard ONNX opset 13 or newer"},
		{"seed not an input", loss, []string{"w"}, opset17, Options{SeedGradient: y}, "is not a graph input"},
	}
	for _, c := range cases {
		before := len(g.Node)
		_, err := Backward(g, c.opsets, c.loss, c.wrt, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if len(g.Node) != before {
			t.Errorf("%s: graph changed on error", c.name)
		}
	}
}

func TestNoRuleOnPath(t *testing.T) {
	b := graph("x", "w")
	h := b.Op("Mul", []string{"x", "w"})
	a := b.Node("Atan", []string{h}, []string{"atan_out"})
	a.Name = strPtr("blocker")
	loss := scalarLoss(b, "atan_out")
	g := b.Graph()
	before := len(g.Node)
	_, err := Backward(g, map[string]int64{"": 17}, loss, []string{"w"}, Options{})
	if !errors.Is(err, ErrNoRule) {
		t.Fatalf("error %v, want ErrNoRule", err)
	}
	for _, want := range []string{`"blocker"`, "op Atan", `gradient of "w"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if len(g.Node) != before {
		t.Error("graph changed on error")
	}

	// A custom-domain op is named with its domain.
	b = graph("x", "w")
	h = b.Op("Mul", []string{"x", "w"})
	c := b.OpDomain("my.domain", "Mystery", []string{h}, 1)[0]
	_, err = Backward(b.Graph(), map[string]int64{"": 17, "my.domain": 1}, scalarLoss(b, c), []string{"w"}, Options{})
	if !errors.Is(err, ErrNoRule) || !strings.Contains(err.Error(), "my.domain::Mystery") {
		t.Errorf("error %v, want ErrNoRule naming my.domain::Mystery", err)
	}
}

func strPtr(s string) *string { return &s }

// Ops without rules are fine off the differentiable path: on integer
// values, on values that do not depend on a parameter, and on branches
// that do not reach the loss.
func TestNoRuleOffPath(t *testing.T) {
	b := graph("x", "w")
	b.AddInput("ids", onnx.Int64, onnx.D(2), onnx.D(3))
	// integer path: BitShift-like op without rule on ints, feeding a Cast
	shifted := b.Op("Mystery", []string{"ids"})
	b.SetValueInfo(shifted, onnx.Tensor(onnx.Int64, onnx.D(2), onnx.D(3)))
	mask := b.Op("Cast", []string{shifted}, onnx.AttrInt("to", int64(onnx.Float32)))
	// float, but independent of w
	atx := b.Op("Atan", []string{"x"})
	// depends on w but does not reach the loss
	b.Op("Atan", []string{"w"})
	y := b.Op("Mul", []string{b.Op("Mul", []string{atx, "w"}), mask})
	g := b.Graph()
	grads, err := Backward(g, opset17, scalarLoss(b, y), []string{"w"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if grads["w"] == "" {
		t.Fatal("no gradient for w")
	}
}

func TestReachabilityAndZeroGradients(t *testing.T) {
	for _, zero := range []bool{false, true} {
		b := graph("x", "w", "unused", "side")
		y := b.Op("Add", []string{"x", "w"})
		b.Op("Mul", []string{"side", "side"}) // a branch that does not reach the loss
		loss := scalarLoss(b, y)
		g := b.Graph()
		n0 := len(g.Node)
		grads, err := Backward(g, opset17, loss, []string{"w", "unused", "side"}, Options{ZeroGradients: zero})
		if err != nil {
			t.Fatal(err)
		}
		ops := countOps(g.Node[n0:])
		if ops["Mul"] != 0 {
			t.Errorf("zero=%v: the side branch was differentiated: %v", zero, ops)
		}
		_, hasUnused := grads["unused"]
		_, hasSide := grads["side"]
		if hasUnused != zero || hasSide != zero {
			t.Errorf("zero=%v: gradients %v", zero, grads)
		}
		if zero && ops["ConstantOfShape"] != 2 {
			t.Errorf("zero gradients built with %v", ops)
		}
	}
}

// With equal shapes Add needs no reduction; Exp reuses its output; the
// gradients of two values that are the same tensor still get distinct
// names.
func TestLean(t *testing.T) {
	b := graph("x", "w")
	e := b.Op("Exp", []string{b.Op("Add", []string{"x", "w"})})
	loss := scalarLoss(b, e)
	g := b.Graph()
	n0 := len(g.Node)
	grads, err := Backward(g, opset17, loss, []string{"x", "w"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	added := g.Node[n0:]
	ops := countOps(added)
	// Expand: the loss's ReduceSum; Identity: x and w get distinct names.
	if ops["ReduceSum"] != 0 || ops["Exp"] != 0 || ops["Shape"] != 0 || ops["Reshape"] != 0 || ops["Unsqueeze"] != 0 || ops["Expand"] != 1 {
		t.Errorf("redundant ops in backward graph: %v", ops)
	}
	usesForward := false
	for _, n := range added {
		if n.GetOpType() == "Mul" && (n.Input[0] == e || n.Input[1] == e) {
			usesForward = true
		}
	}
	if !usesForward {
		t.Error("Exp's rule does not reuse the forward output")
	}
	if grads["x"] == grads["w"] {
		t.Errorf("x and w share the gradient name %q", grads["x"])
	}
}

// A [B,T,K] x [K,N] MatMul gives the weight gradient as one 2-D GEMM,
// not a batched product followed by a reduction.
func TestMatMulWeightGradientIsOneGemm(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	b.AddInput("x", onnx.Float32, onnx.Sym("B"), onnx.Sym("T"), onnx.D(4))
	b.AddInput("w", onnx.Float32, onnx.D(4), onnx.D(5))
	y := b.Op("MatMul", []string{"x", "w"})
	loss := scalarLoss(b, y)
	g := b.Graph()
	n0 := len(g.Node)
	if _, err := Backward(g, opset17, loss, []string{"w"}, Options{}); err != nil {
		t.Fatal(err)
	}
	ops := countOps(g.Node[n0:])
	if ops["Gemm"] != 1 || ops["ReduceSum"] != 0 || ops["MatMul"] != 0 {
		t.Errorf("backward ops %v", ops)
	}
}

func TestFanOutSumsOnce(t *testing.T) {
	b := graph("w")
	a := b.Op("Exp", []string{"w"})
	c := b.Op("Tanh", []string{"w"})
	d := b.Op("Neg", []string{"w"})
	y := b.Op("Sum", []string{a, c, d})
	g := b.Graph()
	n0 := len(g.Node)
	grads, err := Backward(g, opset17, scalarLoss(b, y), []string{"w"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sums []*onnxpb.NodeProto
	for _, n := range g.Node[n0:] {
		if n.GetOpType() == "Sum" {
			sums = append(sums, n)
		}
	}
	if len(sums) != 1 || len(sums[0].Input) != 3 || sums[0].Output[0] != grads["w"] {
		t.Errorf("fan-out accumulation: %v", sums)
	}
}

func TestGatherRaisesOpset(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	b.AddInput("table", onnx.Float32, onnx.D(5), onnx.D(3))
	b.AddInput("ids", onnx.Int64, onnx.Sym("B"))
	y := b.Op("Gather", []string{"table", "ids"})
	opsets := map[string]int64{"": 14}
	if _, err := Backward(b.Graph(), opsets, scalarLoss(b, y), []string{"table"}, Options{}); err != nil {
		t.Fatal(err)
	}
	if opsets[""] != 16 {
		t.Errorf("opset %d after a Gather rule, want 16", opsets[""])
	}
}

func TestOpsCoverIssueList(t *testing.T) {
	have := map[string]bool{}
	for _, op := range Ops() {
		have[op] = true
	}
	for _, op := range strings.Fields(`MatMul Gemm Add Sub Mul Div Pow Sqrt Reciprocal Neg Exp Log Tanh Erf Relu
		Sigmoid Gelu Softmax LogSoftmax LayerNormalization SimplifiedLayerNormalization com.microsoft::SimplifiedLayerNormalization
		ReduceMean ReduceSum ReduceMax Gather GatherElements Reshape Transpose Unsqueeze Squeeze Concat Slice Split
		Expand Tile Where Cast Dropout Identity Min Max Abs Einsum Trilu Clip`) {
		if !have[op] {
			t.Errorf("no rule for %s", op)
		}
	}
}

// When a symbolic dim of an operand may or may not be broadcast, the
// reduction axes are found at run time (the FD cases "symbolic_runtime_bcast"
// check the values); when the dims are provably equal nothing is reduced.
func TestSymbolicBroadcastPaths(t *testing.T) {
	for _, c := range []struct {
		x, y    string
		dynamic bool
	}{{"n", "m", true}, {"n", "n", false}} {
		b := onnx.NewGraphBuilder(nil)
		b.AddInput("x", onnx.Float32, onnx.Sym(c.x), onnx.D(3))
		b.AddInput("y", onnx.Float32, onnx.Sym(c.y), onnx.D(3))
		loss := scalarLoss(b, b.Op("Add", []string{"x", "y"}))
		g := b.Graph()
		n0 := len(g.Node)
		if _, err := Backward(g, opset17, loss, []string{"x", "y"}, Options{}); err != nil {
			t.Fatal(err)
		}
		ops := countOps(g.Node[n0:])
		if got := ops["NonZero"] == 2; got != c.dynamic {
			t.Errorf("x[%s,3] + y[%s,3]: backward ops %v, dynamic reduction %v", c.x, c.y, ops, c.dynamic)
		}
		if !c.dynamic && ops["ReduceSum"] != 0 {
			t.Errorf("x[%s,3] + y[%s,3]: needless reduction %v", c.x, c.y, ops)
		}
	}
}

// A tied embedding (two lookups and the output projection) gets its
// gradient in PyTorch's order: each lookup's rows summed into a dense
// tensor of their own (embedding backward), then one Sum with the
// projection's gradient (autograd's accumulation of a tied weight).
// Adding the rows straight into the projection's gradient rounds
// differently, and Adam amplifies that over a run (HF parity tests).
func TestTiedEmbeddingSumsInTorchOrder(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	b.AddInput("table", onnx.Float32, onnx.D(50), onnx.D(4))
	b.AddInput("src", onnx.Int64, onnx.Sym("B"), onnx.Sym("S"))
	b.AddInput("tgt", onnx.Int64, onnx.Sym("B"), onnx.Sym("T"))
	enc := b.Op("Gather", []string{"table", "src"})
	dec := b.Op("Gather", []string{"table", "tgt"})
	ctxv := b.Op("ReduceMean", []string{enc}, onnx.AttrInts("axes", []int64{1}))
	logits := b.Op("MatMul", []string{b.Op("Add", []string{dec, ctxv}), b.Op("Transpose", []string{"table"}, onnx.AttrInts("perm", []int64{1, 0}))})
	loss := scalarLoss(b, logits)
	g := b.Graph()
	n0 := len(g.Node)
	grads, err := Backward(g, opset17, loss, []string{"table"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ops := countOps(g.Node[n0:])
	if ops["ScatterND"] != 2 || ops["ConstantOfShape"] != 2 || ops["Sum"] != 1 {
		t.Errorf("backward ops %v", ops)
	}
	last := g.Node[len(g.Node)-1]
	if last.GetOpType() != "Sum" || len(last.Input) != 3 || last.Output[0] != grads["table"] {
		t.Errorf("the table's gradient is not one Sum of the projection's and each lookup's: %v", last)
	}
}
