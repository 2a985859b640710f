package engine

import (
	"math"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testmodel"
)

func toyBatch() *data.Batch {
	r := rand.New(rand.NewSource(3))
	b := &data.Batch{Rows: 3, SourceLen: 2, TargetLen: 5}
	for i := 0; i < b.Rows*b.SourceLen; i++ {
		b.InputIDs = append(b.InputIDs, int64(r.Intn(testmodel.Vocab)))
	}
	for i := 0; i < b.Rows*b.TargetLen; i++ {
		b.DecoderInputIDs = append(b.DecoderInputIDs, int64(r.Intn(testmodel.Vocab)))
		label := int64(r.Intn(testmodel.Vocab))
		if i%7 == 6 {
			label = -100
		}
		b.Labels = append(b.Labels, label)
	}
	return b
}

// TestDropoutSeeded: the same seed gives the same loss and gradients, other
// seeds other masks, eval runs without dropout, and training with a fresh
// seed per step lowers the loss.
func TestDropoutSeeded(t *testing.T) {
	env := openEnv(t)
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Dropout: true, Act: "Tanh", Output: "logits"})
	out := filepath.Join(dir, "art")
	man, err := artifacts.Build(artifacts.Config{Model: model, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if man.DropoutNodes != 1 {
		t.Fatalf("dropout nodes %d, want 1", man.DropoutNodes)
	}
	tr := openTrainer(t, env, out, Options{Hyper: Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1}})
	b := toyBatch()
	l1, _, err := tr.trainMicroBatch(b, 1, 7)
	if err != nil {
		t.Fatal(err)
	}
	g1, _ := tr.Gradient("shared.weight")
	if _, err := tr.optimizerStep(0); err != nil { // lr 0: parameters unchanged, gradients reset
		t.Fatal(err)
	}
	l2, _, _ := tr.trainMicroBatch(b, 1, 7)
	g2, _ := tr.Gradient("shared.weight")
	l3, _, _ := tr.trainMicroBatch(b, 1, 8)
	if l1 != l2 || maxDiff(g1, g2) != 0 {
		t.Errorf("seed 7 twice: loss %v vs %v, gradient difference %v", l1, l2, maxDiff(g1, g2))
	}
	if l3 == l1 {
		t.Errorf("seeds 7 and 8 gave the same loss %v", l1)
	}
	ev, err := tr.Eval(b, false)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Loss == l1 || ev.Loss == l3 {
		t.Errorf("eval loss %v equals a dropout loss", ev.Loss)
	}
	if _, err := tr.optimizerStep(0); err != nil {
		t.Fatal(err)
	}
	before := ev.Loss
	for step := int64(0); step < 40; step++ {
		if _, _, err := tr.trainMicroBatch(b, 1, 1000+step); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.optimizerStep(0.05); err != nil {
			t.Fatal(err)
		}
	}
	after, err := tr.Eval(b, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dropout 0.3: eval loss %v -> %v after 40 AdamW steps", before, after.Loss)
	if !(after.Loss < 0.7*before) {
		t.Errorf("loss did not fall: %v -> %v", before, after.Loss)
	}

	// Without dropout the training loss is the eval loss.
	out2 := filepath.Join(dir, "nodrop")
	if _, err := artifacts.Build(artifacts.Config{Model: model, Out: out2, DisableDropout: true}); err != nil {
		t.Fatal(err)
	}
	tr2 := openTrainer(t, env, out2, Options{})
	l, _, err := tr2.trainMicroBatch(b, 1, 7)
	if err != nil {
		t.Fatal(err)
	}
	if l != before {
		t.Errorf("--no-dropout training loss %v, eval loss %v", l, before)
	}
}

// TestAccumulationAndState: two micro-batches with loss_scale 1/2 give the
// gradient of one with scale 1; saved parameters and optimizer state
// restore a trainer exactly.
func TestAccumulationAndState(t *testing.T) {
	env := openEnv(t)
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Act: "Tanh", Output: "logits"})
	out := filepath.Join(dir, "art")
	if _, err := artifacts.Build(artifacts.Config{Model: model, Out: out}); err != nil {
		t.Fatal(err)
	}
	h := Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5}
	a := openTrainer(t, env, out, Options{Hyper: h})
	b := toyBatch()
	if _, _, err := a.trainMicroBatch(b, 1, 0); err != nil {
		t.Fatal(err)
	}
	whole, _ := a.Gradient("lm_head.weight")
	if _, err := a.optimizerStep(0); err != nil {
		t.Fatal(err)
	}
	a.trainMicroBatch(b, 0.5, 0)
	a.trainMicroBatch(b, 0.5, 0)
	halves, _ := a.Gradient("lm_head.weight")
	if d := maxDiff(whole, halves); d > 1e-6*maxAbs(whole) {
		t.Errorf("accumulated halves differ from the whole gradient by %v", d)
	}
	for i := 0; i < 3; i++ {
		a.trainMicroBatch(b, 1, 0)
		if _, err := a.optimizerStep(0.01); err != nil {
			t.Fatal(err)
		}
	}
	pPath, sPath := filepath.Join(dir, "p.safetensors"), filepath.Join(dir, "s.safetensors")
	if err := a.SaveParameters(pPath); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveOptimizerState(sPath); err != nil {
		t.Fatal(err)
	}
	c := openTrainer(t, env, out, Options{Hyper: h})
	if err := c.LoadParameters(pPath); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadOptimizerState(sPath); err != nil {
		t.Fatal(err)
	}
	if c.Step() != a.Step() {
		t.Errorf("step %d after load, want %d", c.Step(), a.Step())
	}
	for _, tr := range []*Engine{a, c} {
		tr.trainMicroBatch(b, 1, 0)
		if _, err := tr.optimizerStep(0.01); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"shared.weight", "lm_head.weight"} {
		pa, _ := a.Param(n)
		pc, _ := c.Param(n)
		if d := maxDiff(pa, pc); d != 0 {
			t.Errorf("%s: restored trainer differs by %v after a step", n, d)
		}
	}
	// SetParam / Param round trip in PyTorch layout (lm_head is stored transposed).
	v := make([]float32, testmodel.Vocab*testmodel.Dim)
	for i := range v {
		v[i] = float32(i)
	}
	if err := c.SetParam("lm_head.weight", v); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Param("lm_head.weight")
	if maxDiff(got, v) != 0 {
		t.Error("SetParam/Param round trip changed values")
	}
	if err := c.SetParam("lm_head.weight", v[:3]); err == nil {
		t.Error("SetParam accepted a wrong size")
	}
	if err := c.LoadOptimizerState(pPath); err == nil {
		t.Error("loading parameters as optimizer state was accepted")
	}
	if math.IsNaN(float64(got[0])) || onnx.NumElements([]int64{testmodel.Vocab, testmodel.Dim}) != int64(len(got)) {
		t.Error("bad parameter read")
	}
}

// TestSGDThroughTrainer: with momentum and decay off, one SGD step is
// p - lr*g; with momentum the state is saved under torch's key.
func TestSGDThroughTrainer(t *testing.T) {
	env := openEnv(t)
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Act: "Tanh", Output: "logits"})
	out := filepath.Join(dir, "art")
	if _, err := artifacts.Build(artifacts.Config{Model: model, Out: out}); err != nil {
		t.Fatal(err)
	}
	tr := openTrainer(t, env, out, Options{Optimizer: "sgd", Hyper: Hyper{MaxGradNorm: 0, Momentum: 0}})
	b := toyBatch()
	before, _ := tr.Param("lm_head.weight")
	tr.trainMicroBatch(b, 1, 0)
	g, _ := tr.Gradient("lm_head.weight")
	if _, err := tr.optimizerStep(0.1); err != nil {
		t.Fatal(err)
	}
	after, _ := tr.Param("lm_head.weight")
	for i := range g {
		want := before[i] + g[i]*float32(-0.1)
		if math.Abs(float64(after[i]-want)) > 1e-7*math.Max(1, math.Abs(float64(want))) {
			t.Fatalf("element %d: %v, want %v", i, after[i], want)
		}
	}
	sPath := filepath.Join(dir, "sgd.safetensors")
	if err := tr.SaveOptimizerState(sPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(out, env, Options{Optimizer: "lion"}); err == nil {
		t.Error("unknown optimizer accepted")
	}
	a := openTrainer(t, env, out, Options{})
	if err := a.LoadOptimizerState(sPath); err == nil {
		t.Error("AdamW trainer loaded SGD state")
	}
}

// TestSaveWithFrozen: saved parameters include frozen ones, unchanged, in
// PyTorch layout, next to the trained ones.
func TestSaveWithFrozen(t *testing.T) {
	env := openEnv(t)
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Act: "Tanh", Output: "logits"})
	out := filepath.Join(dir, "art")
	if _, err := artifacts.Build(artifacts.Config{Model: model, Out: out, Freeze: []string{"lm_head"}}); err != nil {
		t.Fatal(err)
	}
	tr := openTrainer(t, env, out, Options{})
	tr.trainMicroBatch(toyBatch(), 1, 0)
	if _, err := tr.optimizerStep(0.1); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "saved.safetensors")
	if err := tr.SaveParameters(p); err != nil {
		t.Fatal(err)
	}
	saved, err := safetensors.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := safetensors.ReadFile(filepath.Join(dir, "model.safetensors"))
	if string(saved.Tensors["lm_head.weight"].Data) != string(orig.Tensors["lm_head.weight"].Data) {
		t.Error("frozen lm_head.weight changed or lost its layout")
	}
	if string(saved.Tensors["shared.weight"].Data) == string(orig.Tensors["shared.weight"].Data) {
		t.Error("trained shared.weight was not updated")
	}
	if saved.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", saved.Metadata)
	}
}
