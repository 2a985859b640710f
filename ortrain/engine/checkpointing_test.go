package engine

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestGradientCheckpointingGivesIdenticalGradients trains one micro-batch
// of each fixture with dropout (a fixed seed) with and without gradient
// checkpointing: loss, token count and every gradient must be bit for bit
// the same, since the recomputed layers run the same operators on the same
// values and their dropout masks are functions of the seed. Without
// dropout, the checkpointed graphs must also match PyTorch's gradients
// (checkGradientsOf).
func TestGradientCheckpointingGivesIdenticalGradients(t *testing.T) {
	env := openEnv(t)
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		t.Run(name, func(t *testing.T) {
			var ref gradRef
			readJSON(t, "../../testdata/gradients/"+name+".json", &ref)
			b := refBatch(ref.Batch)
			// The training-mode export keeps the model's Dropout nodes
			// (scripts/fixtures/make_t5_train_export.py).
			cfg := artifacts.Config{Model: "../../testdata/autodiff/" + name + "-train.onnx", Weights: "../../testdata/models/" + name + "/model.safetensors"}
			build := func(cfg artifacts.Config) (string, *artifacts.Manifest) {
				cfg.Out = t.TempDir()
				man, err := artifacts.Build(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return cfg.Out, man
			}
			plainDir, plainMan := build(cfg)
			cfg.GradientCheckpointing = true
			ckptDir, ckptMan := build(cfg)
			if plainMan.DropoutNodes == 0 {
				t.Fatalf("%s: the fixture has no Dropout nodes; the test needs them", name)
			}
			rec := ckptMan.GradientCheckpointing
			if rec == nil || len(rec.Layers) == 0 {
				t.Fatalf("no layers recomputed: %+v", rec)
			}
			total := 0
			for _, l := range rec.Layers {
				if l.Recomputed == 0 {
					t.Errorf("layer %s: nothing recomputed", l.Module)
				}
				total += l.Recomputed
			}
			t.Logf("%s: %d layers recomputed (%d nodes): %+v", name, len(rec.Layers), total, rec.Layers)
			// With ONNX Runtime's graph optimisations off, the recomputed
			// layers run exactly the operators of the forward pass: bit for
			// bit the same gradients. With them on (the default), ONNX
			// Runtime fuses operators only where nothing else reads the
			// values in between, which differ between the two graphs (the
			// checkpointed forward pass makes T5's RMS norm one kernel),
			// so each graph rounds its own way.
			for _, exact := range []bool{true, false} {
				so := onnxrt.SessionOptions{DisableOptimizations: exact}
				plain := openTrainer(t, env, plainDir, Options{Session: so})
				ckpt := openTrainer(t, env, ckptDir, Options{Session: so})
				const seed = 1234
				l1, n1, err := plain.trainMicroBatch(b, 1, seed)
				if err != nil {
					t.Fatal(err)
				}
				l2, n2, err := ckpt.trainMicroBatch(b, 1, seed)
				if err != nil {
					t.Fatal(err)
				}
				if n1 != n2 || exact && l1 != l2 || math.Abs(float64(l1-l2)) > 1e-6*math.Abs(float64(l1)) {
					t.Errorf("optimisations off %v: loss %v over %d tokens with checkpointing, %v over %d without", exact, l2, n2, l1, n1)
				}
				// The error of a tensor is measured as in checkGradientsOf:
				// against its largest value, or 1e-3 of the model's largest
				// gradient for tensors whose true gradient is zero (attention
				// key biases) and hold rounding noise.
				global := 0.0
				for _, p := range plainMan.Trainable() {
					g1, err := plain.Gradient(p.Name)
					if err != nil {
						t.Fatal(err)
					}
					global = math.Max(global, maxAbs(g1))
				}
				worst, worstName, differ, sqDiff, sq := 0.0, "", 0, 0.0, 0.0
				for _, p := range plainMan.Trainable() {
					g1, err := plain.Gradient(p.Name)
					if err != nil {
						t.Fatal(err)
					}
					g2, err := ckpt.Gradient(p.Name)
					if err != nil {
						t.Fatal(err)
					}
					same := true
					for i := range g1 {
						same = same && math.Float32bits(g1[i]) == math.Float32bits(g2[i])
					}
					if !same {
						differ++
					}
					for i := range g1 {
						d := float64(g1[i]) - float64(g2[i])
						sqDiff += d * d
						sq += float64(g1[i]) * float64(g1[i])
					}
					if e := maxDiff(g1, g2) / math.Max(maxAbs(g1), 1e-3*global); e > worst {
						worst, worstName = e, p.Name
					}
				}
				all := math.Sqrt(sqDiff / sq)
				t.Logf("%s, optimisations off %v: loss %v vs %v; %d of %d gradients differ in some bit; max relative difference %.3g (%s), of all gradients together (L2) %.3g", name, exact, l2, l1, differ, len(plainMan.Trainable()), worst, worstName, all)
				if exact && differ > 0 {
					t.Errorf("%d gradients differ with graph optimisations off", differ)
				}
				if worst > 1e-5 || all > 1e-6 {
					t.Errorf("optimisations off %v: max relative gradient difference %.3g (%s), %.3g of all gradients together: want at most 1e-5 and 1e-6", exact, worst, worstName, all)
				}
			}
		})
	}
}

// TestGradientCheckpointingMatchesPyTorch: the checkpointed training graph
// against PyTorch autograd (dropout off), as TestGradientsMatchPyTorch.
func TestGradientCheckpointingMatchesPyTorch(t *testing.T) {
	env := openEnv(t)
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		t.Run(name, func(t *testing.T) {
			src := "../../testdata/models/" + name
			checkGradientsOf(t, env, name, "model.onnx", artifacts.Config{Model: src + "/model.onnx", Weights: src + "/model.safetensors", GradientCheckpointing: true})
		})
	}
}

// TestGradientCheckpointingEveryArchitecture: the checkpointed training
// graph of every supported architecture's export (testdata/arch) gives
// PyTorch's gradients, as TestArchitecturesMatchHF checks without it.
func TestGradientCheckpointingEveryArchitecture(t *testing.T) {
	env := openEnv(t)
	for _, a := range arch.All() {
		if !a.Supported || a.Class == "OrtrainDemoSeq2Seq" {
			continue
		}
		t.Run(a.ModelType, func(t *testing.T) {
			dir := testenv.Testdata(t, "arch", a.ModelType)
			var ref archRefs
			readJSON(t, filepath.Join(dir, "refs.json"), &ref)
			art := t.TempDir()
			man, err := artifacts.Build(artifacts.Config{Model: filepath.Join(dir, "model.onnx"), Out: art, RequireArchitecture: true, GradientCheckpointing: true})
			if err != nil {
				t.Fatal(err)
			}
			if man.GradientCheckpointing == nil || len(man.GradientCheckpointing.Layers) < 2 {
				t.Fatalf("layers recomputed: %+v", man.GradientCheckpointing)
			}
			archGradients(t, env, art, man, dir, &ref, &archResult{})
		})
	}
}

// TestGradientCheckpointingMixedPrecision: the float16 autocast graphs
// (CPU op lists, loss scaled by GradScaler's initial 2^16) recompute their
// layers too, with the same gradients.
func TestGradientCheckpointingMixedPrecision(t *testing.T) {
	env := openEnv(t)
	const name = "t5-tiny"
	var ref gradRef
	readJSON(t, "../../testdata/gradients/"+name+".json", &ref)
	p := artifacts.Precision{Options: amp.Options{DType: onnx.Float16, Device: amp.CPU}}
	src := testenv.Testdata(t, "models", name)
	var grads [2]map[string][]float32
	var losses [2]float32
	for i, ckpt := range []bool{false, true} {
		dir := t.TempDir()
		man, err := artifacts.Build(artifacts.Config{Model: filepath.Join(src, "model.onnx"), Out: dir, Precisions: []artifacts.Precision{p}, GradientCheckpointing: ckpt})
		if err != nil {
			t.Fatal(err)
		}
		if ckpt && (man.GradientCheckpointing == nil || len(man.GradientCheckpointing.Layers) == 0 || man.GradientCheckpointing.Layers[0].Recomputed == 0) {
			t.Fatalf("nothing recomputed: %+v", man.GradientCheckpointing)
		}
		scaler := amp.DefaultScalerConfig()
		e := openTrainer(t, env, dir, Options{Variant: p.Name(), Scaler: &scaler, Session: onnxrt.SessionOptions{DisableOptimizations: true}})
		if losses[i], _, err = e.trainMicroBatch(refBatch(ref.Batch), 1, 5); err != nil {
			t.Fatal(err)
		}
		grads[i] = map[string][]float32{}
		for _, q := range man.Trainable() {
			if grads[i][q.Name], err = e.Gradient(q.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if losses[0] != losses[1] {
		t.Errorf("loss %v with checkpointing, %v without", losses[1], losses[0])
	}
	for n, g := range grads[0] {
		for j := range g {
			if math.Float32bits(g[j]) != math.Float32bits(grads[1][n][j]) {
				t.Fatalf("%s[%d]: %v with checkpointing, %v without", n, j, grads[1][n][j], g[j])
			}
		}
	}
	t.Logf("float16 autocast: loss %v, %d gradients bit-identical", losses[0], len(grads[0]))
}

// TestGradientCheckpointingLoRA: LoRA adapters with lora_dropout inside the
// recomputed layers (frozen base weights as shared inputs) get the same
// gradients.
func TestGradientCheckpointingLoRA(t *testing.T) {
	env := openEnv(t)
	const name = "t5-tiny"
	var ref gradRef
	readJSON(t, "../../testdata/gradients/"+name+".json", &ref)
	src := testenv.Testdata(t, "models", name)
	var grads [2]map[string][]float32
	var losses [2]float32
	for i, ckpt := range []bool{false, true} {
		dir := t.TempDir()
		cfg := &lora.Config{R: 4, Alpha: 8, Dropout: 0.1, TargetModules: []string{"q", "v", "wi"}, Bias: "none", Seed: 3}
		man, err := artifacts.Build(artifacts.Config{Model: filepath.Join(src, "model.onnx"), Out: dir, LoRA: cfg, GradientCheckpointing: ckpt})
		if err != nil {
			t.Fatal(err)
		}
		e := openTrainer(t, env, dir, Options{Session: onnxrt.SessionOptions{DisableOptimizations: true}})
		if losses[i], _, err = e.trainMicroBatch(refBatch(ref.Batch), 1, 9); err != nil {
			t.Fatal(err)
		}
		grads[i] = map[string][]float32{}
		for _, q := range man.Trainable() {
			if grads[i][q.Name], err = e.Gradient(q.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if losses[0] != losses[1] {
		t.Errorf("loss %v with checkpointing, %v without", losses[1], losses[0])
	}
	nonzero := 0
	for n, g := range grads[0] {
		for j := range g {
			if g[j] != 0 {
				nonzero++
			}
			if math.Float32bits(g[j]) != math.Float32bits(grads[1][n][j]) {
				t.Fatalf("%s[%d]: %v with checkpointing, %v without", n, j, grads[1][n][j], g[j])
			}
		}
	}
	if nonzero == 0 {
		t.Fatal("all adapter gradients are zero")
	}
	t.Logf("LoRA: loss %v, %d adapter gradients bit-identical", losses[0], len(grads[0]))
}
