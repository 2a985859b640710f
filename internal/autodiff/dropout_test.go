package autodiff

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// dropoutGraph: two Dropout nodes of ratio 0.1 on x [rows, cols] (ones),
// the first exported in training mode with its mask output.
func dropoutGraph(rows, cols int64) *onnxpb.GraphProto {
	b := onnx.NewGraphBuilder(nil)
	b.Consts = onnx.ConstNode
	b.AddInput("x", onnx.Float32, onnx.Sym("B"), onnx.D(cols))
	r := b.ConstFloat32(0.1)
	b.Node("Dropout", []string{"x", r, b.ConstBool(true)}, []string{"y1", "m1"})
	b.Node("Dropout", []string{"x", r}, []string{"y2"})
	b.AddOutput("y1", onnx.Float32, onnx.Sym("B"), onnx.D(cols))
	b.AddOutput("m1", onnx.Bool, onnx.Sym("B"), onnx.D(cols))
	b.AddOutput("y2", onnx.Float32, onnx.Sym("B"), onnx.D(cols))
	return b.Graph()
}

func TestTrainingDropoutMasks(t *testing.T) {
	const rows, cols = 200, 1000
	g := dropoutGraph(rows, cols)
	n, err := EnableTrainingDropout(g, "dropout_seed")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d Dropout nodes rewritten, want 2", n)
	}
	for _, node := range g.Node {
		if node.GetOpType() == "Dropout" {
			t.Fatal("a Dropout node is left")
		}
	}
	s, err := newSession(t, g, map[string]int64{"": 17})
	if err != nil {
		t.Fatal(err)
	}
	ones := make([]float64, rows*cols)
	for i := range ones {
		ones[i] = 1
	}
	run := func(seed int64) map[string]fdTensor {
		return s.run(t, onnx.Float32, map[string]fdTensor{"x": {shape: []int64{rows, cols}, data: ones}}, []string{"y1", "m1", "y2"},
			map[string]intTensor{"dropout_seed": {data: []int64{seed}}})
	}
	a, again, other, neg := run(7), run(7), run(8), run(-3)
	same := func(p, q []float64) float64 {
		k := 0
		for i := range p {
			if (p[i] != 0) == (q[i] != 0) {
				k++
			}
		}
		return float64(k) / float64(len(p))
	}
	if same(a["y1"].data, again["y1"].data) != 1 || same(a["y2"].data, again["y2"].data) != 1 {
		t.Error("the same seed gave different masks")
	}
	// Independent masks with keep rate 0.9 agree on 0.9^2 + 0.1^2 = 0.82.
	for name, q := range map[string][]float64{"seed 8": other["y1"].data, "seed -3": neg["y1"].data, "second node": a["y2"].data} {
		if f := same(a["y1"].data, q); math.Abs(f-0.82) > 0.01 {
			t.Errorf("mask of seed 7 and %s agree on %.4f of elements, want about 0.82 (independent)", name, f)
		}
	}
	y := a["y1"].data
	kept := 0
	for i, v := range y {
		switch {
		case v == 0:
			if a["m1"].data[i] != 0 {
				t.Fatalf("element %d dropped but mask says kept", i)
			}
		case math.Abs(v-1/0.9) < 1e-6:
			kept++
			if a["m1"].data[i] != 1 {
				t.Fatalf("element %d kept but mask says dropped", i)
			}
		default:
			t.Fatalf("element %d = %g, want 0 or 1/0.9", i, v)
		}
	}
	rate := float64(kept) / float64(len(y))
	if math.Abs(rate-0.9) > 0.005 { // 7 standard deviations
		t.Errorf("keep rate %.4f, want 0.9", rate)
	}
	// Columns and rows are pairwise uncorrelated: the mean |correlation|
	// over pairs matches that of independent masks, sqrt(2/pi)/sqrt(n).
	pairCorr := func(vec func(k int) []float64, count, n int) float64 {
		sum, pairs := 0.0, 0
		for a := 0; a < count; a++ {
			for b := a + 1; b < count; b++ {
				sum += math.Abs(correlation(vec(a), vec(b)))
				pairs++
			}
		}
		return sum / float64(pairs) / (math.Sqrt(2/math.Pi) / math.Sqrt(float64(n)))
	}
	col := func(j int) []float64 {
		v := make([]float64, rows)
		for i := range v {
			v[i] = y[i*cols+j]
		}
		return v
	}
	row := func(i int) []float64 { return y[i*cols : (i+1)*cols] }
	t.Logf("mean pair correlation / independent: columns %.3f, rows %.3f", pairCorr(col, 60, rows), pairCorr(row, 60, cols))
	if r := pairCorr(col, 60, rows); math.Abs(r-1) > 0.15 {
		t.Errorf("columns: mean |correlation| is %.2f times that of independent masks", r)
	}
	if r := pairCorr(row, 60, cols); math.Abs(r-1) > 0.15 {
		t.Errorf("rows: mean |correlation| is %.2f times that of independent masks", r)
	}
	// Neighbouring elements (along a row and down a column) are
	// uncorrelated.
	for _, lag := range []int{1, cols} {
		var sxy, sx, sy, sxx, syy float64
		m := len(y) - lag
		for i := 0; i < m; i++ {
			p, q := y[i], y[i+lag]
			sx, sy, sxy, sxx, syy = sx+p, sy+q, sxy+p*q, sxx+p*p, syy+q*q
		}
		fm := float64(m)
		corr := (sxy/fm - sx/fm*sy/fm) / math.Sqrt((sxx/fm-sx*sx/fm/fm)*(syy/fm-sy*sy/fm/fm))
		if math.Abs(corr) > 0.01 {
			t.Errorf("lag-%d correlation of the mask %.4f", lag, corr)
		}
	}
}

func correlation(p, q []float64) float64 {
	var sxy, sx, sy, sxx, syy float64
	for i := range p {
		sx, sy, sxy, sxx, syy = sx+p[i], sy+q[i], sxy+p[i]*q[i], sxx+p[i]*p[i], syy+q[i]*q[i]
	}
	n := float64(len(p))
	return (sxy/n - sx/n*sy/n) / math.Sqrt((sxx/n-sx*sx/n/n)*(syy/n-sy*sy/n/n))
}

func TestTrainingDropoutBadInput(t *testing.T) {
	g := dropoutGraph(2, 3)
	if _, err := EnableTrainingDropout(g, ""); err == nil {
		t.Error("empty seed name accepted")
	}
	if _, err := EnableTrainingDropout(g, "y2"); err == nil || !strings.Contains(err.Error(), "not a graph input") {
		t.Errorf("seed naming a node output: %v", err)
	}
	g.Input = append(g.Input, onnx.ValueInfoOf("fseed", onnx.Tensor(onnx.Float32)))
	if _, err := EnableTrainingDropout(g, "fseed"); err == nil || !strings.Contains(err.Error(), "int64 scalar") {
		t.Errorf("float seed: %v", err)
	}
	// A ratio that is computed, not constant.
	b := onnx.NewGraphBuilder(nil)
	b.AddInput("x", onnx.Float32, onnx.D(3))
	b.AddInput("r", onnx.Float32)
	b.Op("Dropout", []string{"x", "r"})
	if _, err := EnableTrainingDropout(b.Graph(), "seed"); err == nil || !strings.Contains(err.Error(), "not a constant") {
		t.Errorf("computed ratio: %v", err)
	}
}

// Backward on ONNX Runtime's own training-mode Dropout reuses the mask the
// forward pass drew in the same run: d x = W * mask / (1 - ratio).
func TestNativeTrainingDropoutReusesMask(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	b.Consts = onnx.ConstNode
	b.AddInput("x", onnx.Float64, onnx.Sym("N"))
	b.AddInput("w", onnx.Float64, onnx.Sym("N"))
	y := b.OpN("Dropout", []string{"x", b.Const(onnx.MustTensor("", nil, []float64{0.3})), b.ConstBool(true)}, 1)[0]
	loss := scalarLoss(b, b.Op("Mul", []string{y, "w"}))
	g := b.Graph()
	grads, err := Backward(g, opset17, loss, []string{"x"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var drop *onnxpb.NodeProto
	for _, n := range g.Node {
		if n.GetOpType() == "Dropout" {
			drop = n
		}
	}
	if len(drop.Output) != 2 {
		t.Fatalf("Dropout outputs %v: the rule should have added the mask", drop.Output)
	}
	g.Output = nil
	for _, o := range []string{y, drop.Output[1], grads["x"]} {
		onnx.NewGraphBuilder(g).AddOutputInfo(o, onnx.TypeInfo{})
	}
	g.Output[1].Type = onnx.ValueInfoOf(drop.Output[1], onnx.Tensor(onnx.Bool, onnx.Sym("N"))).Type
	g.Output[0].Type = onnx.ValueInfoOf(y, onnx.Tensor(onnx.Float64, onnx.Sym("N"))).Type
	g.Output[2].Type = onnx.ValueInfoOf(grads["x"], onnx.Tensor(onnx.Float64, onnx.Sym("N"))).Type
	s, err := newSession(t, proto.Clone(g).(*onnxpb.GraphProto), opset17)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	x, w := make([]float64, n), make([]float64, n)
	for i := range x {
		x[i], w[i] = 1+float64(i%7), float64(i%5)-2
	}
	out := s.run(t, onnx.Float64, map[string]fdTensor{"x": {shape: []int64{n}, data: x}, "w": {shape: []int64{n}, data: w}},
		[]string{y, drop.Output[1], grads["x"]})
	dropped := 0
	for i := 0; i < n; i++ {
		m := out[drop.Output[1]].data[i]
		if m == 0 {
			dropped++
		}
		wantY := x[i] * m / 0.7
		wantG := w[i] * m / 0.7
		// ONNX Runtime scales in float32 even for float64 data.
		if math.Abs(out[y].data[i]-wantY) > 1e-6*math.Abs(wantY) || math.Abs(out[grads["x"]].data[i]-wantG) > 1e-12 {
			t.Fatalf("element %d: y %g grad %g, mask %g", i, out[y].data[i], out[grads["x"]].data[i], m)
		}
	}
	if dropped < 200 || dropped > 400 {
		t.Errorf("%d of %d dropped at ratio 0.3", dropped, n)
	}
}

// Options.SeedGradient scales every gradient by the value fed.
func TestSeedGradientScales(t *testing.T) {
	b := onnx.NewGraphBuilder(nil)
	b.Consts = onnx.ConstNode
	b.AddInput("x", onnx.Float64, onnx.Sym("N"))
	b.AddInput("w", onnx.Float64, onnx.Sym("N"))
	b.AddInput("scale", onnx.Float64)
	loss := scalarLoss(b, b.Op("Mul", []string{"x", "w"}))
	g := b.Graph()
	grads, err := Backward(g, opset17, loss, []string{"w"}, Options{SeedGradient: "scale"})
	if err != nil {
		t.Fatal(err)
	}
	g.Output = nil
	b.AddOutput(grads["w"], onnx.Float64, onnx.Sym("N"))
	s, err := newSession(t, g, opset17)
	if err != nil {
		t.Fatal(err)
	}
	x := []float64{1, -2, 3}
	out := s.run(t, onnx.Float64, map[string]fdTensor{"x": {shape: []int64{3}, data: x}, "w": {shape: []int64{3}, data: []float64{5, 6, 7}},
		"scale": {shape: []int64{}, data: []float64{0.25}}}, []string{grads["w"]})
	for i, v := range out[grads["w"]].data {
		if v != 0.25*x[i] {
			t.Errorf("gradient %v, want 0.25 * x", out[grads["w"]].data)
			break
		}
	}
}
