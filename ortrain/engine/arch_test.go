package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

// archRefs is testdata/arch/<model_type>/refs.json (scripts/refs/arch_refs.py).
type archRefs struct {
	ModelType string            `json:"model_type"`
	Special   map[string]*int64 `json:"special_ids"`
	Gradients struct {
		Batch map[string]intTensor `json:"batch"`
		Loss  struct {
			Mean     float32 `json:"mean"`
			NumItems int64   `json:"num_items"`
		} `json:"loss"`
		GlobalNorm  float32             `json:"grad_global_norm"`
		Trained     []string            `json:"trained"`
		TiedAliases map[string][]string `json:"tied_aliases"`
		NotTrained  []string            `json:"not_trained"`
	} `json:"gradients"`
	Trainer struct {
		Arguments         map[string]any               `json:"arguments"`
		AcceptsLossKwargs bool                         `json:"model_accepts_loss_kwargs"`
		TrainRows         []tokenRow                   `json:"train_rows"`
		EvalRows          []tokenRow                   `json:"eval_rows"`
		LogHistory        []map[string]json.RawMessage `json:"log_history"`
		TrainOutput       struct {
			GlobalStep   int     `json:"global_step"`
			TrainingLoss float64 `json:"training_loss"`
		} `json:"train_output"`
	} `json:"trainer"`
	Generation struct {
		Sources map[string][][]int64 `json:"sources"`
		Cases   []struct {
			Name      string                     `json:"name"`
			Batch     string                     `json:"batch"`
			Kwargs    map[string]json.RawMessage `json:"kwargs"`
			Sequences [][]int64                  `json:"sequences"`
		} `json:"cases"`
	} `json:"generation"`
}

type tokenRow struct {
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

// archResult is one row of the table TestArchitecturesMatchHF prints.
type archResult struct {
	gradErr, lossErr, gradNormErr, lrErr, evalErr float64
	gradCompared                                  int
	genEqual, genTotal                            int
	kvEqual, recomputeEqual                       int
}

// TestArchitecturesMatchHF trains and generates with the export of every
// architecture the table (internal/arch) supports, as made by
// scripts/export_model.py (testdata/arch/<model_type>), and compares with
// PyTorch and HF: the gradient of every parameter HF trains (and the set of
// trained tensors itself), Seq2SeqTrainer's log_history with gradient
// accumulation 2, and generate()'s greedy and beam sequences through the
// KV-cache and the recompute decoders. It ends with the table of figures.
func TestArchitecturesMatchHF(t *testing.T) {
	env := openEnv(t)
	results := map[string]*archResult{}
	var types []string
	for _, a := range arch.All() {
		if !a.Supported || a.Class == "OrtrainDemoSeq2Seq" {
			continue
		}
		types = append(types, a.ModelType)
		t.Run(a.ModelType, func(t *testing.T) {
			r := &archResult{}
			results[a.ModelType] = r
			checkArchitecture(t, env, a, r)
		})
	}
	if len(types) < 10 {
		t.Errorf("only %d supported architectures: %v", len(types), types)
	}
	var b strings.Builder
	b.WriteString("\n| model_type | gradients: max rel. error (tensors) | log_history GA 2: loss / grad_norm / learning_rate / eval_loss max rel. diff | generation equal / total (KV, recompute) |\n|---|---|---|---|\n")
	for _, mt := range types {
		r := results[mt]
		if r == nil {
			continue // not run (-run filter)
		}
		fmt.Fprintf(&b, "| %s | %.2g (%d) | %.2g / %.2g / %.2g / %.2g | %d/%d (%d, %d) |\n", mt, r.gradErr, r.gradCompared,
			r.lossErr, r.gradNormErr, r.lrErr, r.evalErr, r.genEqual, r.genTotal, r.kvEqual, r.recomputeEqual)
	}
	for _, a := range arch.All() {
		if a.Supported || a.Class == "" {
			continue
		}
		_, err := arch.Resolve(a.ModelType, nil, "")
		fmt.Fprintf(&b, "| %s | refused: %v |\n", a.ModelType, err)
	}
	t.Log(b.String())
}

func checkArchitecture(t *testing.T, env *onnxrt.Env, a arch.Arch, r *archResult) {
	dir := testenv.Testdata(t, "arch", a.ModelType)
	var ref archRefs
	readJSON(t, filepath.Join(dir, "refs.json"), &ref)
	art := t.TempDir()
	man, err := artifacts.Build(artifacts.Config{
		Model: filepath.Join(dir, "model.onnx"), Out: art, RequireArchitecture: true,
		Encoder: filepath.Join(dir, ortdecoder.EncoderFile), Decoder: filepath.Join(dir, ortdecoder.DecoderFile),
		DecoderWithPast: filepath.Join(dir, ortdecoder.DecoderWithPastFile),
	})
	if err != nil {
		t.Fatal(err)
	}
	if man.Architecture == nil || man.Architecture.ModelType != a.ModelType {
		t.Fatalf("manifest architecture %+v", man.Architecture)
	}
	// A LayerDrop the config sets (M2M100's and NLLB-MoE's 0.05) is a
	// difference train reports.
	config := map[string]any{}
	readJSON(t, filepath.Join(dir, "config.json"), &config)
	for _, k := range a.LayerdropKeys {
		if v, _ := config[k].(float64); v > 0 && !strings.Contains(strings.Join(man.Architecture.Differences, "\n"), k) {
			t.Errorf("config.json sets %s %v but the manifest reports no difference: %v", k, v, man.Architecture.Differences)
		}
	}
	t.Run("gradients", func(t *testing.T) { archGradients(t, env, art, man, dir, &ref, r) })
	t.Run("trainer", func(t *testing.T) { archTrainer(t, env, art, man, dir, &ref, r) })
	t.Run("generation", func(t *testing.T) { archGeneration(t, env, dir, &ref, r) })
}

// archGradients: one micro-batch through the training graph; ortrain must
// train exactly the tensors HF trains, with PyTorch's gradients.
func archGradients(t *testing.T, env *onnxrt.Env, art string, man *artifacts.Manifest, dir string, ref *archRefs, r *archResult) {
	grads, err := safetensors.ReadFile(filepath.Join(dir, "grads.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	canonical := map[string]string{}
	for _, n := range ref.Gradients.Trained {
		canonical[n] = n
		for _, alias := range ref.Gradients.TiedAliases[n] {
			canonical[alias] = n
		}
	}
	tr := openTrainer(t, env, art, Options{})
	b := refBatch(ref.Gradients.Batch)
	if archCollator(man, ref).MaskPadDecoderInputs { // as the collator would
		b.DecoderAttentionMask = data.PadMask(b.DecoderInputIDs, int64(archCollator(man, ref).PadID))
	}
	loss, tokens, err := tr.trainMicroBatch(b, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.lossErr = 0
	if tokens != ref.Gradients.Loss.NumItems || math.Abs(float64(loss-ref.Gradients.Loss.Mean)) > 1e-5*float64(ref.Gradients.Loss.Mean) {
		t.Errorf("loss %v over %d tokens, PyTorch %v over %d", loss, tokens, ref.Gradients.Loss.Mean, ref.Gradients.Loss.NumItems)
	}
	global := 0.0
	for _, n := range grads.Names() {
		global = math.Max(global, maxAbs(f32s(grads.Tensors[n].Data)))
	}
	seen := map[string]bool{}
	worst, worstName := 0.0, ""
	for _, p := range man.Parameters {
		if !p.Trainable {
			if c, ok := canonical[p.Name]; ok {
				t.Errorf("HF trains %s (%s) but ortrain keeps it frozen (%s)", p.Name, c, p.FrozenBy)
			}
			continue
		}
		c, ok := canonical[p.Name]
		if !ok {
			t.Errorf("ortrain trains %s, which HF does not train", p.Name)
			continue
		}
		seen[c] = true
		got, err := tr.Gradient(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := f32s(grads.Tensors[c].Data)
		e := maxDiff(got, want) / math.Max(maxAbs(want), 1e-3*global)
		if e > worst {
			worst, worstName = e, p.Name
		}
		r.gradCompared++
	}
	for _, n := range ref.Gradients.Trained {
		if !seen[n] {
			t.Errorf("HF trains %s, which ortrain does not train", n)
		}
	}
	r.gradErr = worst
	t.Logf("%d gradients, max relative error %.3g (%s)", r.gradCompared, worst, worstName)
	if worst > 1e-4 {
		t.Errorf("max relative gradient error %.3g (%s) > 1e-4", worst, worstName)
	}
}

func f32s(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
	}
	return out
}

func archCollator(man *artifacts.Manifest, ref *archRefs) data.Collator {
	pad := 0
	if v := ref.Special["pad"]; v != nil {
		pad = int(*v)
	}
	return collatorFor(man, pad)
}

// archTrainer: HF Seq2SeqTrainer with gradient accumulation 2; every logged
// loss, grad_norm, learning_rate and eval_loss within 1e-5.
func archTrainer(t *testing.T, env *onnxrt.Env, art string, man *artifacts.Manifest, dir string, ref *archRefs, r *archResult) {
	toDataset := func(rows []tokenRow) *data.Dataset {
		var src, lab [][]int32
		for _, row := range rows {
			src, lab = append(src, row.InputIDs), append(lab, row.Labels)
		}
		return data.NewDataset(src, lab)
	}
	a := ortrain.DefaultArguments()
	for k, v := range ref.Trainer.Arguments {
		switch k {
		case "dataloader_num_workers", "disable_tqdm", "remove_unused_columns", "train_sampling_strategy", "use_cpu":
			continue
		}
		if err := a.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	a.OutputDir = filepath.Join(t.TempDir(), "out")
	a.DoTrain = true
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	eng, err := Open(art, env, Options{Session: onnxrt.SessionOptions{IntraOpThreads: 1}, ModelDir: dir,
		Hyper: Hyper{Beta1: a.AdamBeta1, Beta2: a.AdamBeta2, Eps: a.AdamEpsilon, WeightDecay: a.WeightDecay, MaxGradNorm: a.MaxGradNorm}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	col := archCollator(man, ref)
	scaling := lossScalingFor(man)
	if wantHF := ref.Trainer.AcceptsLossKwargs; wantHF != (scaling != ortrain.LossScalingMean) {
		t.Errorf("HF's model_accepts_loss_kwargs is %v, ortrain's loss scaling %v", wantHF, scaling)
	}
	trainer := &ortrain.Trainer{Args: a, Engine: eng, LossScaling: scaling,
		TrainData: &Data{Dataset: toDataset(ref.Trainer.TrainRows), Collate: col, Order: data.Order{BatchSize: a.PerDeviceTrainBatchSize}},
		EvalData:  &Data{Dataset: toDataset(ref.Trainer.EvalRows), Collate: col, Order: data.Order{BatchSize: a.PerDeviceEvalBatchSize}},
	}
	res, err := trainer.Train(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hist := trainer.State().LogHistory
	if len(hist) != len(ref.Trainer.LogHistory) {
		t.Fatalf("%d log entries, HF %d", len(hist), len(ref.Trainer.LogHistory))
	}
	worst := map[string]*float64{"loss": &r.lossErr, "grad_norm": &r.gradNormErr, "learning_rate": &r.lrErr, "eval_loss": &r.evalErr}
	for i, want := range ref.Trainer.LogHistory {
		if w, _ := num(want["step"]); int(w) != hist[i].Step {
			t.Errorf("log_history[%d]: step %d, HF %v", i, hist[i].Step, w)
		}
		for k, dst := range worst {
			w, ok := num(want[k])
			if !ok {
				continue
			}
			g, ok := hist[i].Logs.Get(k)
			if !ok {
				t.Errorf("log_history[%d]: %s missing", i, k)
				continue
			}
			d := math.Abs(g - w)
			if w != 0 {
				d /= math.Abs(w)
			}
			*dst = math.Max(*dst, d)
		}
		if w, ok := num(want["epoch"]); ok {
			if g, _ := hist[i].Logs.Get("epoch"); !relClose(g, w, 1e-12) {
				t.Errorf("log_history[%d]: epoch %v, HF %v", i, g, w)
			}
		}
	}
	for k, v := range worst {
		if *v > 1e-5 {
			t.Errorf("%s differs from HF by %.3g (relative) > 1e-5", k, *v)
		}
	}
	if res.GlobalStep != ref.Trainer.TrainOutput.GlobalStep || !relClose(res.TrainingLoss, ref.Trainer.TrainOutput.TrainingLoss, 1e-5) {
		t.Errorf("train output step %d loss %v, HF %d %v", res.GlobalStep, res.TrainingLoss, ref.Trainer.TrainOutput.GlobalStep, ref.Trainer.TrainOutput.TrainingLoss)
	}
	t.Logf("max relative difference: loss %.2g, grad_norm %.2g, learning_rate %.2g, eval_loss %.2g", r.lossErr, r.gradNormErr, r.lrErr, r.evalErr)
}

// archGeneration: HF generate()'s sequences through the KV-cache graphs
// and through the full forward graph.
func archGeneration(t *testing.T, env *onnxrt.Env, dir string, ref *archRefs, r *archResult) {
	base, err := generate.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := ortdecoder.OpenKV(env, dir, base.PadTokenID, ortdecoder.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	rc, err := ortdecoder.NewRecompute(env, filepath.Join(dir, ortdecoder.FullModelFile), base.PadTokenID, ortdecoder.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, d := range []struct {
		name  string
		dec   generate.Decoder
		count *int
	}{{"kv", kv, &r.kvEqual}, {"recompute", rc, &r.recomputeEqual}} {
		for _, c := range ref.Generation.Cases {
			cfg := base
			if err := cfg.ApplyJSON(c.Kwargs); err != nil {
				t.Fatal(err)
			}
			out, err := generate.Generate(context.Background(), d.dec, ref.Generation.Sources[c.Batch], cfg)
			if err != nil {
				t.Fatalf("%s %s/%s: %v", d.name, c.Name, c.Batch, err)
			}
			r.genTotal++
			if fmt.Sprint(out.Sequences) == fmt.Sprint(c.Sequences) {
				r.genEqual++
				*d.count++
			} else {
				t.Errorf("%s %s/%s:\n got %v\nwant %v", d.name, c.Name, c.Batch, out.Sequences, c.Sequences)
			}
		}
	}
}

// TestUnknownArchitectureIsRefused: a model_type outside the table, and a
// refused one, stop artifacts.Build with a message naming the model type
// and the nearest supported one; --assume_architecture accepts it and the
// manifest records the assumption.
func TestUnknownArchitectureIsRefused(t *testing.T) {
	src := testenv.Testdata(t, "arch", "bart")
	dir := t.TempDir()
	for _, f := range []string{"model.onnx", "model.safetensors", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := map[string]any{}
	readJSON(t, filepath.Join(src, "config.json"), &cfg)
	for _, c := range []struct {
		modelType string
		want      []string
	}{
		{"my_bart_variant", []string{`model_type "my_bart_variant"`, `nearest supported architecture is "bart"`, "--assume_architecture bart"}},
		{"prophetnet", []string{`model_type "prophetnet"`, "not the cross entropy", "--assume_architecture"}},
	} {
		cfg["model_type"] = c.modelType
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := artifacts.Build(artifacts.Config{Model: filepath.Join(dir, "model.onnx"), Out: t.TempDir()})
		if err == nil {
			t.Fatalf("%s: accepted", c.modelType)
		}
		if !errors.Is(err, fault.Input) {
			t.Errorf("%s: error %v is not bad input", c.modelType, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.modelType, err, w)
			}
		}
		man, err := artifacts.Build(artifacts.Config{Model: filepath.Join(dir, "model.onnx"), Out: t.TempDir(), AssumeArchitecture: "bart"})
		if err != nil {
			t.Fatalf("%s with --assume_architecture bart: %v", c.modelType, err)
		}
		if a := man.Architecture; a == nil || a.ModelType != "bart" || a.AssumedFor != c.modelType || a.GradientAccumulation != arch.SumOfMeans {
			t.Errorf("%s: manifest architecture %+v", c.modelType, man.Architecture)
		}
	}
	// A bad assumption is a bad setting.
	_, err := artifacts.Build(artifacts.Config{Model: filepath.Join(dir, "model.onnx"), Out: t.TempDir(), AssumeArchitecture: "gpt2"})
	if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), `"gpt2"`) {
		t.Errorf("--assume_architecture gpt2: %v", err)
	}
	// No config.json at all: refused when an architecture is required.
	os.Remove(filepath.Join(dir, "config.json"))
	_, err = artifacts.Build(artifacts.Config{Model: filepath.Join(dir, "model.onnx"), Out: t.TempDir(), RequireArchitecture: true})
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "config.json") || !strings.Contains(err.Error(), `"bart"`) {
		t.Errorf("no config.json: %v", err)
	}
}
