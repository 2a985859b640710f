package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

// loraRefs is testdata/lora/<model>-<config>/refs.json
// (scripts/refs/lora_refs.py): archRefs' trainer and special ids, plus
// PEFT's counts and the batch of logits.safetensors.
type loraRefs struct {
	archRefs
	TrainableParams int64                `json:"trainable_params"`
	AllParams       int64                `json:"all_params"`
	LogitsBatch     map[string]intTensor `json:"logits_batch"`
}

var loraCases = []string{"t5-qv", "t5-ffn", "bart-qv", "bart-ffn", "marian-qv", "marian-ffn"}

// buildLoRAArtifacts builds artifacts of the arch fixture of model type mt
// with the adapter (or config) given.
func buildLoRAArtifacts(t *testing.T, mt, adapter string, cfg *lora.Config) (string, *artifacts.Manifest, error) {
	t.Helper()
	return buildLoRAArtifactsOf(t, testenv.Testdata(t, "arch", mt), adapter, cfg)
}

func buildLoRAArtifactsOf(t *testing.T, dir, adapter string, cfg *lora.Config) (string, *artifacts.Manifest, error) {
	t.Helper()
	art := t.TempDir()
	man, err := artifacts.Build(artifacts.Config{
		Model: filepath.Join(dir, "model.onnx"), Out: art, RequireArchitecture: true,
		Encoder: filepath.Join(dir, ortdecoder.EncoderFile), Decoder: filepath.Join(dir, ortdecoder.DecoderFile),
		DecoderWithPast: filepath.Join(dir, ortdecoder.DecoderWithPastFile),
		Adapter:         adapter, LoRA: cfg,
	})
	return art, man, err
}

// TestLoRAMatchesPEFT trains the adapters PEFT made before its own run
// (testdata/lora/*/initial: same initial lora_A, lora_B zero) with
// Seq2SeqTrainer's arguments, 20 steps with gradient accumulation 2, and
// compares log_history with PEFT + HF Seq2SeqTrainer's (loss, grad_norm,
// learning_rate, eval_loss within 1e-5 relative); the trainable parameter
// count must be PEFT's, and the adapter PEFT trained, loaded into ortrain,
// must give PEFT's logits (1e-5).
func TestLoRAMatchesPEFT(t *testing.T) {
	env := openEnv(t)
	var rows []string
	for _, name := range loraCases {
		t.Run(name, func(t *testing.T) {
			dir := testenv.Testdata(t, "lora", name)
			var ref loraRefs
			readJSON(t, filepath.Join(dir, "refs.json"), &ref)
			mt := ref.ModelType
			art, man, err := buildLoRAArtifacts(t, mt, filepath.Join(dir, "initial"), nil)
			if err != nil {
				t.Fatal(err)
			}
			trainable, all := man.LoRACounts()
			if trainable != ref.TrainableParams || all != ref.AllParams {
				t.Errorf("trainable params %d of %d, PEFT %d of %d", trainable, all, ref.TrainableParams, ref.AllParams)
			}
			r := &archResult{}
			archTrainer(t, env, art, man, testenv.Testdata(t, "arch", mt), &ref.archRefs, r)
			logitsErr := checkLoRALogits(t, env, art, filepath.Join(dir, "trained"), ref.LogitsBatch, filepath.Join(dir, "logits.safetensors"))
			rows = append(rows, fmt.Sprintf("| %s | %d / %d | %.2g / %.2g / %.2g / %.2g | %.2g |", name, trainable, all,
				r.lossErr, r.gradNormErr, r.lrErr, r.evalErr, logitsErr))
		})
	}
	t.Logf("\n| case | trainable / all params (= PEFT) | log_history max rel. diff: loss / grad_norm / learning_rate / eval_loss | PEFT-trained adapter: logits max abs diff |\n|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

// checkLoRALogits loads the adapter folder into an engine on art and
// compares the eval graph's logits of batch with want (safetensors
// "logits"); it returns the largest absolute difference.
func checkLoRALogits(t *testing.T, env *onnxrt.Env, art, adapter string, batch map[string]intTensor, want string) float64 {
	t.Helper()
	eng := openTrainer(t, env, art, Options{})
	if err := eng.LoadAdapter(adapter); err != nil {
		t.Fatal(err)
	}
	got := loraLogits(t, eng, batch)
	f, err := safetensors.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.Tensors["logits"].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != len(got) {
		t.Fatalf("%d logits, reference %d", len(got), len(w))
	}
	d := maxDiff(got, w)
	if d > 1e-5 {
		t.Errorf("logits with %s differ from PEFT's by %.3g > 1e-5", adapter, d)
	}
	return d
}

func loraLogits(t *testing.T, eng *Engine, batch map[string]intTensor) []float32 {
	t.Helper()
	b := refBatch(batch)
	res, err := eng.Eval(b, true)
	if err != nil {
		t.Fatal(err)
	}
	return res.Logits
}

// TestLoRABadInput: a target that matches nothing, a rank of 0 and an
// adapter made for another base model are refused with errors that say
// what to do.
func TestLoRABadInput(t *testing.T) {
	cfg := lora.Defaults()
	cfg.Alpha = 16
	cfg.TargetModules = []string{"q", "nonexistent"}
	_, _, err := buildLoRAArtifacts(t, "t5", "", &cfg)
	if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), `"nonexistent" matches no module`) || !strings.Contains(err.Error(), "q, k, v, o") {
		t.Errorf("unknown target: %v", err)
	}
	cfg.TargetModules = []string{"q"}
	cfg.R = 0
	if _, _, err = buildLoRAArtifacts(t, "t5", "", &cfg); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "lora_r 0") {
		t.Errorf("r 0: %v", err)
	}
	// T5's q,v adapter on BART: no module of BART is named q or v.
	_, _, err = buildLoRAArtifacts(t, "bart", testenv.Testdata(t, "lora", "t5-qv", "initial"), nil)
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "match no linear layer") || !strings.Contains(err.Error(), "another base model") {
		t.Errorf("T5 adapter on BART: %v", err)
	}
	// An adapter of the d_model 16 BART on the d_model 32 one: same
	// names, other shapes (and layers the adapter lacks).
	_, _, err = buildLoRAArtifactsOf(t, testenv.Testdata(t, "models", "bart-tiny"), testenv.Testdata(t, "lora", "bart-qv", "initial"), nil)
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "another base model") {
		t.Errorf("adapter of another BART: %v", err)
	}
	// A target that is no linear layer.
	cfg.R = 8
	cfg.TargetModules = []string{"layer_norm"}
	if _, _, err = buildLoRAArtifacts(t, "t5", "", &cfg); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "no linear layer") {
		t.Errorf("layer norm target: %v", err)
	}
}

// TestLoRAAdapterLoadsInPEFT trains each q,v adapter for a few steps from
// the PEFT-made initial one and saves it as a checkpoint does; the folder
// must hold PEFT's files and keys, and PeftModel.from_pretrained of it
// must compute ortrain's logits (the committed testdata/lora/roundtrip.json
// made by scripts/refs/lora_refs.py --roundtrip from what this test writes
// under $ORTRAIN_LORA_ROUNDTRIP_OUT).
func TestLoRAAdapterLoadsInPEFT(t *testing.T) {
	env := openEnv(t)
	out := os.Getenv("ORTRAIN_LORA_ROUNDTRIP_OUT")
	var rt struct {
		Cases map[string]struct {
			Diff float64  `json:"max_abs_diff_from_ortrain"`
			Keys []string `json:"adapter_keys"`
		} `json:"cases"`
	}
	if out == "" {
		readJSON(t, testenv.Testdata(t, "lora", "roundtrip.json"), &rt)
	}
	for _, name := range []string{"t5-qv", "bart-ffn", "marian-qv"} {
		t.Run(name, func(t *testing.T) {
			dir := testenv.Testdata(t, "lora", name)
			var ref loraRefs
			readJSON(t, filepath.Join(dir, "refs.json"), &ref)
			art, _, err := buildLoRAArtifacts(t, ref.ModelType, filepath.Join(dir, "initial"), nil)
			if err != nil {
				t.Fatal(err)
			}
			eng := openTrainer(t, env, art, Options{})
			trainSteps(t, eng, ref, 3)
			save := t.TempDir()
			if out != "" {
				save = filepath.Join(out, name)
			}
			adapter := filepath.Join(save, "adapter")
			if err := os.MkdirAll(adapter, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := eng.SaveModel(adapter); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{lora.ConfigFile, lora.WeightsFile} {
				if _, err := os.Stat(filepath.Join(adapter, f)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat(filepath.Join(adapter, ModelFile)); err == nil {
				t.Errorf("a LoRA checkpoint holds %s", ModelFile)
			}
			// Same keys and shapes as PEFT's own file for this config.
			ours, err := safetensors.ReadFile(filepath.Join(adapter, lora.WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			peft, err := safetensors.ReadFile(filepath.Join(dir, "trained", lora.WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ours.Names()) != fmt.Sprint(peft.Names()) {
				t.Errorf("keys %v, PEFT %v", ours.Names(), peft.Names())
			}
			logits := loraLogits(t, eng, ref.LogitsBatch)
			merged, err := eng.MergedParameters()
			if err != nil {
				t.Fatal(err)
			}
			if out != "" {
				writeRoundtripCase(t, save, ref, logits)
				if err := safetensors.WriteFile(filepath.Join(save, "merged.safetensors"), merged, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			// merge_and_unload's weights (the adapted ones; the others are the base model's).
			pm, err := safetensors.ReadFile(testenv.Testdata(t, "lora", "roundtrip", name+"-merged.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for _, k := range pm.Names() {
				w, _ := pm.Tensors[k].Float32s()
				g, err := merged[k].Float32s()
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				worst = max(worst, maxDiff(g, w))
			}
			if len(pm.Names()) != len(eng.LoRA().Modules) || worst > 1e-6 {
				t.Errorf("merged weights: %d compared (want %d), max abs diff from merge_and_unload %.3g > 1e-6", len(pm.Names()), len(eng.LoRA().Modules), worst)
			}
			c, ok := rt.Cases[name]
			if !ok {
				t.Fatalf("roundtrip.json has no case %s", name)
			}
			f, err := safetensors.ReadFile(testenv.Testdata(t, "lora", "roundtrip", name+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := f.Tensors["logits"].Float32s()
			if err != nil {
				t.Fatal(err)
			}
			d := maxDiff(logits, want)
			t.Logf("PeftModel.from_pretrained of ortrain's adapter: logits max abs diff %.2g (at reference time %.2g)", d, c.Diff)
			if d > 1e-5 || c.Diff > 1e-5 {
				t.Errorf("PEFT's logits with ortrain's adapter differ by %.3g (reference run %.3g) > 1e-5", d, c.Diff)
			}
		})
	}
}

// trainSteps runs n optimizer steps over the first rows of the case's
// training data (one micro-batch of two rows each).
func trainSteps(t *testing.T, eng *Engine, ref loraRefs, n int) {
	t.Helper()
	man := eng.Manifest()
	col := archCollator(man, &ref.archRefs)
	for s := 0; s < n; s++ {
		var src, lab [][]int32
		for _, r := range ref.Trainer.TrainRows {
			src, lab = append(src, r.InputIDs), append(lab, r.Labels)
		}
		b := col.Collate(data.NewDataset(src, lab), []int{2 * s, 2*s + 1})
		if _, _, err := eng.trainMicroBatch(b, 1, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.optimizerStep(1e-3); err != nil {
			t.Fatal(err)
		}
	}
}

func writeRoundtripCase(t *testing.T, dir string, ref loraRefs, logits []float32) {
	t.Helper()
	b := ref.LogitsBatch
	shape := []int64{b["decoder_input_ids"].Shape[0], b["decoder_input_ids"].Shape[1], int64(len(logits)) / (b["decoder_input_ids"].Shape[0] * b["decoder_input_ids"].Shape[1])}
	if err := safetensors.WriteFile(filepath.Join(dir, "ortrain_logits.safetensors"), map[string]safetensors.Tensor{"logits": safetensors.FromFloat32(shape, logits)}, nil); err != nil {
		t.Fatal(err)
	}
	batch := map[string][][]int64{}
	for k, v := range b {
		w := v.Shape[1]
		for i := int64(0); i < v.Shape[0]; i++ {
			batch[k] = append(batch[k], v.Data[i*w:(i+1)*w])
		}
	}
	meta := map[string]any{"model_type": ref.ModelType, "batch": batch}
	raw, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoRAKeysMatchPEFT: for bias lora_only and all, the tensors that
// train and the keys of adapter_model.safetensors are PEFT's
// (testdata/lora/keys.json), and so are the trainable counts; bias all
// with modules_to_save, whose PEFT layout ortrain does not write, is
// refused.
func TestLoRAKeysMatchPEFT(t *testing.T) {
	var ref struct {
		Cases map[string]struct {
			ModelType       string           `json:"model_type"`
			Options         map[string]any   `json:"options"`
			Targets         []string         `json:"target_modules"`
			TrainableParams int64            `json:"trainable_params"`
			AllParams       int64            `json:"all_params"`
			Keys            map[string][]int `json:"keys"`
		} `json:"cases"`
	}
	readJSON(t, testenv.Testdata(t, "lora", "keys.json"), &ref)
	for name, c := range ref.Cases {
		t.Run(name, func(t *testing.T) {
			cfg := lora.Defaults()
			cfg.Alpha = 16
			cfg.TargetModules = c.Targets
			for k, v := range c.Options {
				if err := cfg.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			_, man, err := buildLoRAArtifacts(t, c.ModelType, "", &cfg)
			if cfg.Bias == lora.BiasAll && len(cfg.ModulesToSave) > 0 {
				if !errors.Is(err, fault.Settings) {
					t.Errorf("bias all with modules_to_save: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			trainable, all := man.LoRACounts()
			if trainable != c.TrainableParams || all != c.AllParams {
				t.Errorf("trainable %d of %d, PEFT %d of %d", trainable, all, c.TrainableParams, c.AllParams)
			}
			var keys []string
			for _, n := range man.LoRA.Trained() {
				keys = append(keys, man.LoRA.Key(n))
			}
			var want []string
			for k := range c.Keys {
				want = append(want, k)
			}
			slices.Sort(keys)
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Errorf("keys %v\nPEFT %v", keys, want)
			}
		})
	}
}

// TestLoRATargetsMatchPEFT: the modules a target_modules value adapts
// (a list of suffixes, a regular expression, all-linear) are the ones
// get_peft_model wraps (testdata/lora/keys.json "targets").
func TestLoRATargetsMatchPEFT(t *testing.T) {
	var ref struct {
		Targets map[string]struct {
			ModelType string          `json:"model_type"`
			Targets   json.RawMessage `json:"target_modules"`
			Adapted   []string        `json:"adapted"`
		} `json:"targets"`
	}
	readJSON(t, testenv.Testdata(t, "lora", "keys.json"), &ref)
	if len(ref.Targets) < 6 {
		t.Fatalf("%d target cases", len(ref.Targets))
	}
	for name, c := range ref.Targets {
		t.Run(name, func(t *testing.T) {
			cfg := lora.Defaults()
			var list []string
			var re string
			if json.Unmarshal(c.Targets, &list) == nil {
				cfg.TargetModules = list
			} else if err := json.Unmarshal(c.Targets, &re); err == nil {
				cfg.SetTargets("re:" + re)
				if re == lora.AllLinear {
					cfg.SetTargets(re)
				}
			} else {
				t.Fatal(err)
			}
			_, man, err := buildLoRAArtifacts(t, c.ModelType, "", &cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range man.LoRA.Modules {
				got = append(got, m.Name)
			}
			want := slices.Clone(c.Adapted)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("adapted %v\nPEFT    %v", got, want)
			}
		})
	}
}

// TestLoRADropout: lora_dropout adds a seeded Dropout on each adapter's
// input in the training graph only: evaluation computes what the adapter
// without dropout computes, training differs once B is non-zero, and a
// dropout seed reproduces its step.
func TestLoRADropout(t *testing.T) {
	env := openEnv(t)
	dir := testenv.Testdata(t, "lora", "t5-qv")
	var ref loraRefs
	readJSON(t, filepath.Join(dir, "refs.json"), &ref)
	cfg := lora.Defaults()
	cfg.Alpha, cfg.TargetModules, cfg.Seed = 16, []string{"q", "v"}, 5
	plainArt, plain, err := buildLoRAArtifacts(t, "t5", "", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dropout = 0.3
	dropArt, drop, err := buildLoRAArtifacts(t, "t5", "", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	// q and v of three attention blocks, one use each in the forward graph.
	if drop.DropoutNodes != plain.DropoutNodes+6 {
		t.Errorf("%d Dropout nodes with lora_dropout, %d without: want 6 more", drop.DropoutNodes, plain.DropoutNodes)
	}
	engines := map[string]*Engine{"plain": openTrainer(t, env, plainArt, Options{}), "dropout": openTrainer(t, env, dropArt, Options{})}
	b := refBatch(ref.LogitsBatch)
	for _, e := range engines { // one step, so that B is no longer zero
		if _, _, err := e.trainMicroBatch(b, 1, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.optimizerStep(1e-2); err != nil {
			t.Fatal(err)
		}
	}
	// At the first step B is zero, so the loss is the base model's either
	// way, but B's gradient is computed from the dropped input: the
	// adapters differ after it.
	pb, _ := engines["plain"].Param(lora.BName("encoder.block.0.layer.0.SelfAttention.q"))
	db, _ := engines["dropout"].Param(lora.BName("encoder.block.0.layer.0.SelfAttention.q"))
	if maxDiff(pb, db) == 0 {
		t.Error("lora_dropout changed nothing in training")
	}
	// Evaluation runs without dropout: with the same adapter values, the
	// same logits.
	for _, n := range drop.LoRA.Trained() {
		v, err := engines["plain"].Param(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := engines["dropout"].SetParam(n, v); err != nil {
			t.Fatal(err)
		}
	}
	if d := maxDiff(loraLogits(t, engines["plain"], ref.LogitsBatch), loraLogits(t, engines["dropout"], ref.LogitsBatch)); d != 0 {
		t.Errorf("eval logits differ by %g with lora_dropout", d)
	}
	// Same seed, same step.
	var losses []float32
	for range 2 {
		l, _, err := engines["dropout"].trainMicroBatch(b, 1, 42)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l)
	}
	if losses[0] != losses[1] {
		t.Errorf("dropout seed 42 gives losses %v", losses)
	}
}

// TestLoRABaseWeightsAreSharedInputs: with LoRA the base weights are no
// constants of the graphs but inputs of every graph that reads them, so
// that the engine holds one value each on the device for all sessions,
// with no gradient buffer and no optimizer state.
func TestLoRABaseWeightsAreSharedInputs(t *testing.T) {
	env := openEnv(t)
	art, man, err := buildLoRAArtifacts(t, "bart", testenv.Testdata(t, "lora", "bart-qv", "initial"), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]bool{}
	for _, p := range man.Parameters {
		if p.FrozenBy != "" && strings.HasPrefix(p.FrozenBy, "lora:") {
			if !p.SharedInput {
				t.Errorf("%s frozen by LoRA but not a shared input", p.Name)
			}
			base[p.Name] = true
		}
	}
	if len(base) == 0 {
		t.Fatal("no frozen base weight")
	}
	files := []string{man.Files.Training, man.Files.Eval, man.Files.Forward}
	for _, g := range man.Generation {
		files = append(files, g.File)
	}
	for _, f := range files {
		m, err := onnx.Load(filepath.Join(art, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, init := range m.Graph.Initializer {
			if base[init.GetName()] {
				t.Errorf("%s holds base weight %s as a constant", f, init.GetName())
			}
		}
		inputs := 0
		for _, in := range m.Graph.Input {
			if base[in.GetName()] {
				inputs++
			}
		}
		if inputs == 0 {
			t.Errorf("%s takes no base weight as an input", f)
		}
	}
	eng := openTrainer(t, env, art, Options{})
	if len(eng.shared) != len(base) || len(eng.grad) != len(man.Trainable()) || len(eng.st) != 2*len(man.Trainable()) {
		t.Errorf("%d shared values for %d base weights; %d gradient buffers and %d optimizer states for %d trainable tensors",
			len(eng.shared), len(base), len(eng.grad), len(eng.st), len(man.Trainable()))
	}
}

// TestLoRAOnOptimumExports: the same adapter on Optimum's export of a
// fixture (encoder and decoder graphs composed, no model.safetensors) and
// on its model.onnx export computes the same: after one training step
// from the same seeded adapters, the same loss and logits. The modules are
// found from the graphs alone.
func TestLoRAOnOptimumExports(t *testing.T) {
	env := openEnv(t)
	var ref gradRef
	readJSON(t, testenv.Testdata(t, "gradients", "bart-tiny.json"), &ref)
	results := map[string][]float32{}
	for _, dir := range []string{testenv.Testdata(t, "models", "bart-tiny"), testenv.Testdata(t, "optimum", "bart-tiny-with-past")} {
		bc, err := artifacts.FolderConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := lora.Defaults()
		cfg.Alpha, cfg.Seed = 16, 3
		cfg.SetTargets("all-linear")
		bc.Out, bc.LoRA = t.TempDir(), &cfg
		man, err := artifacts.Build(bc)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(man.LoRA.Modules) != 32 { // q,k,v,out_proj of 6 attention blocks; fc1, fc2 of 4 layers
			t.Fatalf("%s: %d modules adapted, want 32", dir, len(man.LoRA.Modules))
		}
		eng := openTrainer(t, env, bc.Out, Options{})
		b := refBatch(ref.Batch)
		if _, _, err := eng.trainMicroBatch(b, 1, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.optimizerStep(1e-2); err != nil {
			t.Fatal(err)
		}
		res, err := eng.Eval(b, true)
		if err != nil {
			t.Fatal(err)
		}
		results[filepath.Base(dir)] = res.Logits
		t.Logf("%s: %d modules adapted, eval loss after one step %v", filepath.Base(dir), len(man.LoRA.Modules), res.Loss)
	}
	// Positions without a label (padding) are computed differently by the
	// two exports' decoder masks; those with one are the model's output.
	labels := ref.Batch["labels"].Data
	vocab := len(results["bart-tiny"]) / len(labels)
	worst := 0.0
	for i, l := range labels {
		if l == -100 {
			continue
		}
		worst = max(worst, maxDiff(results["bart-tiny"][i*vocab:(i+1)*vocab], results["bart-tiny-with-past"][i*vocab:(i+1)*vocab]))
	}
	if worst > 1e-5 {
		t.Errorf("logits at labelled positions differ by %g between the two exports", worst)
	}
}

// TestSaveMergedFolderGeneratesAsPEFT: the folder SaveMerged writes (train
// --merge_lora's output_dir) with each PEFT-trained adapter of the T5, BART
// and Marian fixtures is a model folder that the KV decoder opens as it
// is: its greedy and beam sequences are HF generate()'s with PEFT's
// merge_and_unload() model (testdata/lora/<case>/merged.json, made by
// scripts/refs/lora_refs.py --merged), and its model.safetensors holds
// merge_and_unload()'s weights within 1e-5.
func TestSaveMergedFolderGeneratesAsPEFT(t *testing.T) {
	env := openEnv(t)
	for _, name := range loraCases {
		t.Run(name, func(t *testing.T) {
			dir := testenv.Testdata(t, "lora", name)
			var ref struct {
				ModelType        string `json:"model_type"`
				GenerationMerged struct {
					Sources map[string][][]int64 `json:"sources"`
					Cases   []struct {
						Name      string                     `json:"name"`
						Batch     string                     `json:"batch"`
						Kwargs    map[string]json.RawMessage `json:"kwargs"`
						Sequences [][]int64                  `json:"sequences"`
					} `json:"cases"`
				} `json:"generation_merged"`
			}
			readJSON(t, filepath.Join(dir, "merged.json"), &ref)
			art, _, err := buildLoRAArtifacts(t, ref.ModelType, filepath.Join(dir, "trained"), nil)
			if err != nil {
				t.Fatal(err)
			}
			eng := openTrainer(t, env, art, Options{ModelDir: testenv.Testdata(t, "arch", ref.ModelType)})
			out := t.TempDir()
			if err := eng.SaveMerged(out); err != nil {
				t.Fatal(err)
			}
			got, err := safetensors.ReadFile(filepath.Join(out, ModelFile))
			if err != nil {
				t.Fatal(err)
			}
			want, err := safetensors.ReadFile(filepath.Join(dir, "merged.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range want.Names() {
				if k == "logits" {
					continue
				}
				w, _ := want.Tensors[k].Float32s()
				g, err := got.Tensors[k].Float32s()
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if d := maxDiff(g, w); d > 1e-5 {
					t.Errorf("%s: merged weight differs from merge_and_unload()'s by %.3g", k, d)
				}
			}
			m, err := ortdecoder.OpenModel(env, out, ortdecoder.OpenOptions{Options: ortdecoder.Options{IntraOpThreads: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Kind != "kv" {
				t.Errorf("decoded by %q, want the KV decoder", m.Kind)
			}
			for _, c := range ref.GenerationMerged.Cases {
				cfg := m.Config
				if err := cfg.ApplyJSON(c.Kwargs); err != nil {
					t.Fatal(err)
				}
				res, err := generate.Generate(context.Background(), m, ref.GenerationMerged.Sources[c.Batch], cfg)
				if err != nil {
					t.Fatalf("%s/%s: %v", c.Name, c.Batch, err)
				}
				if fmt.Sprint(res.Sequences) != fmt.Sprint(c.Sequences) {
					t.Errorf("%s/%s:\n got %v\nwant %v (HF generate, merge_and_unload)", c.Name, c.Batch, res.Sequences, c.Sequences)
				}
			}
		})
	}
}
