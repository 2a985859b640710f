package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

// ampRef is a file of scripts/refs/amp_refs.py.
type ampRef struct {
	Model      string `json:"model"`
	DType      string `json:"dtype"`
	GradScaler *struct {
		InitScale      float64 `json:"init_scale"`
		GrowthFactor   float64 `json:"growth_factor"`
		BackoffFactor  float64 `json:"backoff_factor"`
		GrowthInterval int     `json:"growth_interval"`
	} `json:"grad_scaler"`
	GA        int `json:"gradient_accumulation_steps"`
	Optimizer struct {
		LR          float64 `json:"lr"`
		WeightDecay float64 `json:"weight_decay"`
		MaxGradNorm float64 `json:"max_grad_norm"`
	} `json:"optimizer"`
	Batches []map[string]struct {
		Shape []int   `json:"shape"`
		Data  []int64 `json:"data"`
	} `json:"batches"`
	Steps []struct {
		Step       int      `json:"step"`
		Loss       float64  `json:"loss"`
		LossFP32   float64  `json:"loss_float32"`
		GradNorm   *float64 `json:"grad_norm"`
		NonFinite  string   `json:"grad_norm_nonfinite"`
		LR         float64  `json:"learning_rate"`
		Skipped    bool     `json:"skipped"`
		Scale      float64  `json:"scale"`
		ScaleAfter float64  `json:"scale_after"`
	} `json:"steps"`
}

func readAMPRef(t *testing.T, name string) *ampRef {
	t.Helper()
	raw, err := os.ReadFile(testenv.Testdata(t, "amp", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r ampRef
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// fixedBatches is TrainData over the reference's micro-batches, in order.
type fixedBatches []*data.Batch

func (f fixedBatches) NumExamples() int { return len(f) * f[0].Rows }
func (f fixedBatches) NumBatches() int  { return len(f) }
func (f fixedBatches) Epoch(epoch, skip int) (ortrain.BatchIterator, error) {
	return &fixedIter{rest: f[skip:]}, nil
}

type fixedIter struct{ rest []*data.Batch }

func (it *fixedIter) Next(ctx context.Context) (ortrain.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(it.rest) == 0 {
		return nil, io.EOF
	}
	b := it.rest[0]
	it.rest = it.rest[1:]
	return b, nil
}

func (r *ampRef) batches(t *testing.T) fixedBatches {
	var out fixedBatches
	for i, b := range r.Batches {
		ids, lab := b["input_ids"], b["labels"]
		if len(ids.Shape) != 2 || len(lab.Shape) != 2 {
			t.Fatalf("batch %d: bad shapes", i)
		}
		out = append(out, &data.Batch{Rows: ids.Shape[0], SourceLen: ids.Shape[1], TargetLen: lab.Shape[1],
			InputIDs: ids.Data, AttentionMask: b["attention_mask"].Data, DecoderInputIDs: b["decoder_input_ids"].Data, Labels: lab.Data})
	}
	return out
}

// scaleRecorder records the loss scale after every optimizer step.
type scaleRecorder struct {
	ortrain.NopCallback
	eng    *Engine
	scales []float32
}

func (s *scaleRecorder) OnStepEnd(*ortrain.Event) error {
	s.scales = append(s.scales, s.eng.LossScale())
	return nil
}

type ampRun struct {
	logs   []ortrain.LogEntry
	scales []float32
	engine *Engine
}

// ampOpts interrupt a run (stopAfter: save a checkpoint after that step
// and stop) or resume one (resume: a checkpoint folder).
type ampOpts struct {
	stopAfter int
	resume    string
}

// trainAMP trains a fixture with the reference's settings through the
// Trainer on the artifact folder's graphs named variant.
func trainAMP(t *testing.T, env *onnxrt.Env, ref *ampRef, artDir, variant, out string, o ampOpts) ampRun {
	t.Helper()
	var scaler *amp.ScalerConfig
	if gs := ref.GradScaler; gs != nil {
		scaler = &amp.ScalerConfig{InitScale: gs.InitScale, GrowthFactor: gs.GrowthFactor, BackoffFactor: gs.BackoffFactor, GrowthInterval: gs.GrowthInterval}
	}
	eng, err := Open(artDir, env, Options{Session: onnxrt.SessionOptions{IntraOpThreads: 1}, Variant: variant, Scaler: scaler,
		Hyper: Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: ref.Optimizer.WeightDecay, MaxGradNorm: ref.Optimizer.MaxGradNorm}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	batches := ref.batches(t)
	a := ortrain.DefaultArguments()
	a.OutputDir = out
	a.DoTrain = true
	a.MaxSteps = len(ref.Steps)
	a.PerDeviceTrainBatchSize = batches[0].Rows
	a.GradientAccumulationSteps = ref.GA
	a.LearningRate = ref.Optimizer.LR
	a.WeightDecay = ref.Optimizer.WeightDecay
	a.MaxGradNorm = ref.Optimizer.MaxGradNorm
	a.LoggingSteps = 1
	a.SaveStrategy = ortrain.StrategyNo
	a.ResumeFromCheckpoint = o.resume
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	rec := &scaleRecorder{eng: eng}
	tr := &ortrain.Trainer{Args: a, Engine: eng, TrainData: batches, LossScaling: ortrain.LossScalingHF, Callbacks: []ortrain.Callback{rec}}
	if o.stopAfter > 0 {
		tr.Callbacks = append(tr.Callbacks, stopAfter{step: o.stopAfter})
	}
	if _, err := tr.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ampRun{logs: tr.State().LogHistory, scales: rec.scales, engine: eng}
}

// stopAfter saves a checkpoint after a step and stops training there (an
// interruption).
type stopAfter struct {
	ortrain.NopCallback
	step int
}

func (s stopAfter) OnStepEnd(e *ortrain.Event) error {
	if e.State.GlobalStep == s.step {
		e.Control.ShouldSave = true
		e.Control.ShouldTrainingStop = true
	}
	return nil
}

func buildAMPArtifacts(t *testing.T, name string, p artifacts.Precision) string {
	t.Helper()
	modelDir := testenv.Testdata(t, "models", name)
	dir := t.TempDir()
	if _, err := artifacts.Build(artifacts.Config{
		Model: filepath.Join(modelDir, "model.onnx"), Out: dir,
		Encoder: filepath.Join(modelDir, "encoder_model.onnx"), Decoder: filepath.Join(modelDir, "decoder_model.onnx"),
		DecoderWithPast: filepath.Join(modelDir, "decoder_with_past_model.onnx"),
		Precisions:      []artifacts.Precision{p},
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func stepLogs(logs []ortrain.LogEntry) []ortrain.LogEntry {
	var out []ortrain.LogEntry
	for _, l := range logs {
		if _, ok := l.Logs.Get("loss"); ok {
			out = append(out, l)
		}
	}
	return out
}

func rel(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(b), 1e-30) }

// TestFloat16MatchesTorchAutocast trains T5, BART and Marian with float16
// mixed precision on the CPU (the CPU autocast op lists) for 30 steps of
// gradient accumulation 2 and compares every logged loss and grad_norm
// with PyTorch's CPU autocast + GradScaler on the same weights and batches
// (scripts/refs/amp_refs.py): within 1e-3 relative; the steps the scaler
// skips (inf/NaN gradients, forced by an initial scale of 2^24) are the
// same, with a non-finite grad_norm logged and the learning rate held; the
// scale after every step is equal.
func TestFloat16MatchesTorchAutocast(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		t.Run(name, func(t *testing.T) {
			ref := readAMPRef(t, name+"-float16")
			p := artifacts.Precision{Options: amp.Options{DType: onnx.Float16, Device: amp.CPU}}
			dir := buildAMPArtifacts(t, name, p)
			run := trainAMP(t, env, ref, dir, p.Name(), t.TempDir(), ampOpts{})
			checkAMPRun(t, ref, run, 1e-3)
		})
	}
}

func checkAMPRun(t *testing.T, ref *ampRef, run ampRun, tol float64) {
	t.Helper()
	logs := stepLogs(run.logs)
	if len(logs) != len(ref.Steps) {
		t.Fatalf("%d logged steps, reference %d", len(logs), len(ref.Steps))
	}
	worstLoss, worstNorm, skipped := 0.0, 0.0, 0
	// How far ortrain's loss is from torch's mixed-precision loss, against
	// how far torch's float32 loss of the same micro-batches is from it.
	var offMixed, offFP32 float64
	for i, want := range ref.Steps {
		got := logs[i]
		what := fmt.Sprintf("step %d", want.Step)
		if got.Step != want.Step {
			t.Errorf("%s: logged at step %d", what, got.Step)
		}
		loss, _ := got.Logs.Get("loss")
		worstLoss = math.Max(worstLoss, rel(loss, want.Loss))
		offMixed += math.Abs(loss - want.Loss)
		offFP32 += math.Abs(want.LossFP32 - want.Loss)
		if rel(loss, want.Loss) > tol {
			t.Errorf("%s: loss %.8g, torch %.8g (rel %.2g)", what, loss, want.Loss, rel(loss, want.Loss))
		}
		gn, _ := got.Logs.Get("grad_norm")
		if want.GradNorm == nil {
			skipped++
			if !math.IsNaN(gn) && !math.IsInf(gn, 0) {
				t.Errorf("%s: torch skipped the step (grad_norm %s), ortrain logged grad_norm %v", what, want.NonFinite, gn)
			}
		} else {
			worstNorm = math.Max(worstNorm, rel(gn, *want.GradNorm))
			if rel(gn, *want.GradNorm) > tol {
				t.Errorf("%s: grad_norm %.8g, torch %.8g (rel %.2g)", what, gn, *want.GradNorm, rel(gn, *want.GradNorm))
			}
		}
		if os.Getenv("ORTRAIN_SHOW_DIFFS") != "" {
			wn := math.NaN()
			if want.GradNorm != nil {
				wn = *want.GradNorm
			}
			t.Logf("%s: loss rel %.2g (torch float32 %.2g) grad_norm rel %.2g (%v, torch %v)", what, rel(loss, want.Loss), rel(want.LossFP32, want.Loss), rel(gn, wn), gn, wn)
		}
		lr, _ := got.Logs.Get("learning_rate")
		if rel(lr, want.LR) > 1e-12 {
			t.Errorf("%s: learning_rate %v, torch %v", what, lr, want.LR)
		}
		if ref.GradScaler != nil {
			if i >= len(run.scales) || float64(run.scales[i]) != want.ScaleAfter {
				t.Errorf("%s: scale after the step %v, torch %v", what, run.scales, want.ScaleAfter)
			}
		}
	}
	t.Logf("worst relative difference: loss %.2g, grad_norm %.2g; %d skipped steps; mean |loss - torch's| %.3g, torch's float32 loss %.3g away",
		worstLoss, worstNorm, skipped, offMixed/float64(len(ref.Steps)), offFP32/float64(len(ref.Steps)))
}

// TestBFloat16EmulationMatchesTorchAutocast trains the fixtures for 20
// steps with the bfloat16 mixed-precision graphs emulated in float32 (a
// Cast to bfloat16 and back wherever the real graphs round; the CPU
// provider has no bfloat16 kernels) and compares every logged loss with
// PyTorch's CPU autocast in bfloat16 (no loss scaling) on the same weights
// and batches: within 2e-3 relative.
func TestBFloat16EmulationMatchesTorchAutocast(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		t.Run(name, func(t *testing.T) {
			ref := readAMPRef(t, name+"-bfloat16")
			p := artifacts.Precision{Options: amp.Options{DType: onnx.BFloat16, Device: amp.CPU}, Emulate: true}
			dir := buildAMPArtifacts(t, name, p)
			run := trainAMP(t, env, ref, dir, p.Name(), t.TempDir(), ampOpts{})
			checkBF16Run(t, ref, run)
		})
	}
}

func checkBF16Run(t *testing.T, ref *ampRef, run ampRun) {
	t.Helper()
	logs := stepLogs(run.logs)
	if len(logs) != len(ref.Steps) {
		t.Fatalf("%d logged steps, reference %d", len(logs), len(ref.Steps))
	}
	worst, worstNorm := 0.0, 0.0
	var offMixed, offFP32 float64
	for i, want := range ref.Steps {
		loss, _ := logs[i].Logs.Get("loss")
		worst = math.Max(worst, rel(loss, want.Loss))
		offMixed += math.Abs(loss - want.Loss)
		offFP32 += math.Abs(want.LossFP32 - want.Loss)
		if rel(loss, want.Loss) > 2e-3 {
			t.Errorf("step %d: loss %.8g, torch %.8g (rel %.2g)", want.Step, loss, want.Loss, rel(loss, want.Loss))
		}
		if gn, _ := logs[i].Logs.Get("grad_norm"); want.GradNorm != nil {
			worstNorm = math.Max(worstNorm, rel(gn, *want.GradNorm))
		}
	}
	t.Logf("worst relative difference: loss %.2g (grad_norm %.2g, not checked); mean |loss - torch's| %.3g, torch's float32 loss %.3g away",
		worst, worstNorm, offMixed/float64(len(ref.Steps)), offFP32/float64(len(ref.Steps)))
}

// TestFloat16ResumeIsBitIdentical interrupts a float16 run (T5, the
// reference's scaler settings: skipped steps at the start, growth, a
// skipped step later) after step 13, resumes it from the checkpoint in a
// new engine and trainer, and checks that every logged value, the loss
// scale after every step, the optimizer's step count and every final
// parameter are bit for bit those of the uninterrupted run.
func TestFloat16ResumeIsBitIdentical(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ref := readAMPRef(t, "t5-tiny-float16")
	p := artifacts.Precision{Options: amp.Options{DType: onnx.Float16, Device: amp.CPU}}
	dir := buildAMPArtifacts(t, "t5-tiny", p)
	whole := trainAMP(t, env, ref, dir, p.Name(), t.TempDir(), ampOpts{})

	out := t.TempDir()
	const stop = 13
	first := trainAMP(t, env, ref, dir, p.Name(), out, ampOpts{stopAfter: stop})
	ckpt := filepath.Join(out, fmt.Sprintf("checkpoint-%d", stop))
	if _, err := os.Stat(filepath.Join(ckpt, ScalerFile)); err != nil {
		t.Fatalf("the checkpoint has no scaler state: %v", err)
	}
	rest := trainAMP(t, env, ref, dir, p.Name(), out, ampOpts{resume: ckpt})

	wantLogs, gotLogs := stepLogs(whole.logs), stepLogs(rest.logs)
	if len(wantLogs) != len(gotLogs) || len(wantLogs) != len(ref.Steps) {
		t.Fatalf("%d logged steps after resuming, %d uninterrupted", len(gotLogs), len(wantLogs))
	}
	for i := range wantLogs {
		w, g := wantLogs[i], gotLogs[i]
		for _, k := range []string{"loss", "grad_norm", "learning_rate"} {
			wv, _ := w.Logs.Get(k)
			gv, _ := g.Logs.Get(k)
			// (the steps before the checkpoint come from trainer_state.json,
			// where a NaN loses its payload bits)
			if math.Float64bits(wv) != math.Float64bits(gv) && !(math.IsNaN(wv) && math.IsNaN(gv)) {
				t.Errorf("step %d: %s %v after resuming, %v uninterrupted", w.Step, k, gv, wv)
			}
		}
	}
	scales := append(append([]float32(nil), first.scales...), rest.scales...)
	if fmt.Sprint(scales) != fmt.Sprint(whole.scales) {
		t.Errorf("loss scales %v after resuming, %v uninterrupted", scales, whole.scales)
	}
	if a, b := rest.engine.Step(), whole.engine.Step(); a != b {
		t.Errorf("optimizer step %d after resuming, %d uninterrupted", a, b)
	}
	for _, prm := range whole.engine.Manifest().Trainable() {
		w, err := whole.engine.Param(prm.Name)
		if err != nil {
			t.Fatal(err)
		}
		g, err := rest.engine.Param(prm.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(g[i]) {
				t.Fatalf("parameter %s[%d] = %v after resuming, %v uninterrupted", prm.Name, i, g[i], w[i])
			}
		}
	}
	skipped := 0
	for _, s := range ref.Steps {
		if s.Skipped {
			skipped++
		}
	}
	t.Logf("resumed at step %d of %d (%d skipped steps, final scale %v): identical", stop, len(ref.Steps), skipped, whole.scales[len(whole.scales)-1])
}

// TestHalfPrecisionEval: with fp16_full_eval's graphs the engine evaluates
// in half precision only outside training (HF casts the model in
// evaluate()/predict() when not in train()); the loss is model.half()'s
// (scripts/refs/amp_refs.py) within 1e-3, while inside training it stays
// the float32 one.
func TestHalfPrecisionEval(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	raw, err := os.ReadFile(testenv.Testdata(t, "amp", "autocast_ops.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs struct {
		Fixtures struct {
			Losses map[string]struct {
				Float32     float64 `json:"float32"`
				HalfFloat16 float64 `json:"half_float16"`
			} `json:"losses"`
		} `json:"fixtures"`
	}
	if err := json.Unmarshal(raw, &refs); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		half := artifacts.Precision{Options: amp.Options{DType: onnx.Float16, HalfModel: true}}
		dir := buildAMPArtifacts(t, name, half)
		eng, err := Open(dir, env, Options{HalfEvalVariant: half.Name(), Session: onnxrt.SessionOptions{IntraOpThreads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		b := loadFixtureBatch(t, name)
		eng.SetTraining(true)
		in, err := eng.Eval(b, false)
		if err != nil {
			t.Fatal(err)
		}
		eng.SetTraining(false)
		out, err := eng.Eval(b, false)
		if err != nil {
			t.Fatal(err)
		}
		eng.Close()
		ref := refs.Fixtures.Losses[name]
		t.Logf("%s: in training %.8g (torch float32 %.8g); outside %.8g (torch model.half() %.8g)", name, in.Loss, ref.Float32, out.Loss, ref.HalfFloat16)
		if rel(float64(in.Loss), ref.Float32) > 1e-6 {
			t.Errorf("%s: loss in training %v, want the float32 %v", name, in.Loss, ref.Float32)
		}
		if rel(float64(out.Loss), ref.HalfFloat16) > 1e-3 {
			t.Errorf("%s: half-precision loss %v, torch %v", name, out.Loss, ref.HalfFloat16)
		}
	}
}

// loadFixtureBatch is testdata/models/<name>/refs.json's batch.
func loadFixtureBatch(t *testing.T, name string) *data.Batch {
	t.Helper()
	raw, err := os.ReadFile(testenv.Testdata(t, "models", name, "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Batch map[string]struct {
			Shape []int   `json:"shape"`
			Data  []int64 `json:"data"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	ids, lab := r.Batch["input_ids"], r.Batch["labels"]
	return &data.Batch{Rows: ids.Shape[0], SourceLen: ids.Shape[1], TargetLen: lab.Shape[1], InputIDs: ids.Data,
		AttentionMask: r.Batch["attention_mask"].Data, DecoderInputIDs: r.Batch["decoder_input_ids"].Data, Labels: lab.Data,
		DecoderAttentionMask: r.Batch["decoder_attention_mask"].Data}
}
