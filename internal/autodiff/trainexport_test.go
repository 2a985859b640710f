package autodiff

import (
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestTrainingModeExportWithDropout takes the tiny T5 exported in training
// mode (24 Dropout nodes, scripts/fixtures/make_t5_train_export.py),
// enables seeded dropout, differentiates HF's loss, and checks: the same
// seed gives the same loss and gradient twice, another seed another loss,
// and the gradient of an attention weight (softmax dropout downstream) matches a
// directional finite difference taken with the same seed.
func TestTrainingModeExportWithDropout(t *testing.T) {
	env := ortEnv(t)
	m, err := onnx.Load(testenv.Testdata(t, "autodiff", "t5-tiny-train.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	n, err := EnableTrainingDropout(g, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if n != 24 {
		t.Fatalf("%d Dropout nodes rewritten, want 24", n)
	}
	// One weight becomes an input so finite differences can move it.
	var param *onnxpb.TensorProto
	inits := g.Initializer[:0]
	for _, in := range g.Initializer {
		if param == nil && strings.HasSuffix(in.GetName(), "block.1.layer.0.SelfAttention.q.weight") {
			param = in
			continue
		}
		inits = append(inits, in)
	}
	g.Initializer = inits
	if param == nil {
		t.Fatal("no attention query weight in the export")
	}
	p := param.GetName()
	dims := make([]onnx.Dim, len(param.Dims))
	for i, d := range param.Dims {
		dims[i] = onnx.D(d)
	}
	b := onnx.NewGraphBuilder(g)
	b.Consts = onnx.ConstNode
	b.AddInput(p, onnx.Float32, dims...)
	b.AddInput("labels", onnx.Int64, onnx.Sym("batch"), onnx.Sym("seq"))
	loss := appendCrossEntropy(b, "logits", "labels")
	opsets := onnx.Opsets(m)
	grads, err := Backward(g, opsets, loss, []string{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g.Output = nil
	b.AddOutput(loss, onnx.Float32)
	b.AddOutputInfo(grads[p], onnx.TypeInfo{Elem: onnx.Float32})
	for d, v := range opsets {
		onnx.SetOpset(m, d, v)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromBytes(data, "t5-tiny-train", onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	raw, err := os.ReadFile(testenv.Testdata(t, "gradients", "t5-tiny.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs gradRefs
	if err := json.Unmarshal(raw, &refs); err != nil {
		t.Fatal(err)
	}
	w0, err := onnx.Float32s(param)
	if err != nil {
		t.Fatal(err)
	}
	run := func(seed int64, w []float32) (float64, []float32) {
		feeds := map[string]*onnxrt.Value{}
		for _, name := range []string{"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels"} {
			bt := refs.Batch[name]
			v, err := onnxrt.NewTensor(bt.Shape, bt.Data)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			feeds[name] = v
		}
		sv, _ := onnxrt.NewTensor([]int64{}, []int64{seed})
		defer sv.Close()
		feeds["seed"] = sv
		wv, _ := onnxrt.NewTensor(param.Dims, w)
		defer wv.Close()
		feeds[p] = wv
		outs, err := s.Run(feeds, []string{loss, grads[p]})
		if err != nil {
			t.Fatal(err)
		}
		defer outs[loss].Close()
		defer outs[grads[p]].Close()
		l, _ := outs[loss].Scalar()
		gr, _ := outs[grads[p]].Float32s()
		return l, gr
	}
	l1, g1 := run(1, w0)
	l1b, g1b := run(1, w0)
	l2, _ := run(2, w0)
	if l1 != l1b {
		t.Errorf("seed 1 gave losses %v and %v", l1, l1b)
	}
	for i := range g1 {
		if g1[i] != g1b[i] {
			t.Fatalf("seed 1 gave different gradients at %d", i)
		}
	}
	if l1 == l2 {
		t.Errorf("seeds 1 and 2 gave the same loss %v", l1)
	}
	if math.Abs(l1-refs.Loss.Mean) < 1e-6 {
		t.Errorf("loss with dropout %v equals the dropout-free loss", l1)
	}
	// Directional derivative along the gradient plus a random direction
	// (a large derivative keeps float32 rounding small next to it; the
	// random part catches errors orthogonal to the gradient), same seed.
	rms := 0.0
	for _, v := range g1 {
		rms += float64(v) * float64(v)
	}
	rms = math.Sqrt(rms / float64(len(g1)))
	rng := rand.New(rand.NewSource(3))
	dir := make([]float32, len(w0))
	an := 0.0
	for i := range dir {
		dir[i] = float32(float64(g1[i])/rms + rng.NormFloat64())
		an += float64(dir[i]) * float64(g1[i])
	}
	shift := func(h float32) []float32 {
		w := make([]float32, len(w0))
		for i := range w {
			w[i] = w0[i] + h*dir[i]
		}
		return w
	}
	// float32 central differences: rounding grows as h shrinks and ReLU
	// kinks crossed downstream grow with h, so the best of three steps is
	// taken; a wrong rule is off by O(1) at every step.
	rel, fd := math.Inf(1), 0.0
	for _, h := range []float32{1e-5, 3e-5, 1e-4} {
		lp, _ := run(1, shift(h))
		lm, _ := run(1, shift(-h))
		d := (lp - lm) / (2 * float64(h))
		if e := math.Abs(d-an) / math.Abs(an); e < rel {
			rel, fd = e, d
		}
	}
	t.Logf("losses: seed 1 %.6f, seed 2 %.6f, no dropout %.6f; directional derivative %.6g, finite difference %.6g (relative error %.2e)", l1, l2, refs.Loss.Mean, an, fd, rel)
	if rel > 2e-3 {
		t.Errorf("directional derivative %.6g, finite difference %.6g", an, fd)
	}
}
