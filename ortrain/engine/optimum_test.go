package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

// optimumFolder copies testdata/optimum/<name> into a temporary folder,
// leaving out the named files and adding model.safetensors of the fixture
// the export was made from when withWeights.
func optimumFolder(t *testing.T, name, fixture string, withWeights bool, drop ...string) string {
	t.Helper()
	src := testenv.Testdata(t, "optimum", name)
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	skip := map[string]bool{}
	for _, d := range drop {
		skip[d] = true
	}
	cp := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range ents {
		if !skip[e.Name()] {
			cp(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	if withWeights {
		cp(testenv.Testdata(t, "models", fixture, "model.safetensors"), filepath.Join(dir, "model.safetensors"))
	}
	return dir
}

// TestOptimumExportsTrainLikePyTorch builds the artifacts from folders that
// optimum-cli export onnx wrote (default task and with past; the merged
// decoder alone), as `ortrain train --model DIR` does, and compares loss
// and every gradient with PyTorch's on the same weights
// (testdata/gradients: the same references the forward graphs model.onnx
// meet). Without model.safetensors every parameter is named by the graph
// (initializer names, module paths, tied copies); BART's folded
// final_logits_bias is the one tensor left unmatched, kept frozen as HF
// does. With the weights file nothing is left over.
func TestOptimumExportsTrainLikePyTorch(t *testing.T) {
	env := openEnv(t)
	for _, fixture := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		for _, c := range []struct {
			folder      string
			drop        []string
			withWeights bool
		}{
			{fixture, nil, false},
			{fixture + "-with-past", nil, false},
			{fixture + "-with-past", []string{artifacts.OptimumDecoder, artifacts.OptimumDecoderWithPast}, false},
			{fixture, nil, true},
		} {
			label := c.folder
			if len(c.drop) > 0 {
				label += "-merged-only"
			}
			if c.withWeights {
				label += "+safetensors"
			}
			t.Run(label, func(t *testing.T) {
				dir := optimumFolder(t, c.folder, fixture, c.withWeights, c.drop...)
				cfg, err := artifacts.FolderConfig(dir)
				if err != nil {
					t.Fatal(err)
				}
				man, worst := checkGradientsOf(t, env, fixture, label, cfg)
				if worst > 1e-4 {
					t.Errorf("max relative gradient error %.3g > 1e-4", worst)
				}
				if man.Composition == nil || len(man.Composition.Shared) != 1 {
					t.Errorf("composition %+v: want the token embedding shared by encoder and decoder", man.Composition)
				}
				var unmatched []string
				for _, u := range man.Unmatched {
					unmatched = append(unmatched, u.ONNXName)
				}
				wantUnmatched := 0
				if fixture == "bart-tiny" && !c.withWeights {
					wantUnmatched = 1
				}
				if len(unmatched) != wantUnmatched {
					t.Errorf("unmatched initializers %v, want %d", unmatched, wantUnmatched)
				}
				for _, p := range man.Parameters {
					if strings.Contains(p.Name, "::") || strings.Contains(p.Name, "/") {
						t.Errorf("parameter %q carries an exporter name", p.Name)
					}
					if strings.HasSuffix(p.Name, "final_logits_bias") && p.Trainable {
						t.Errorf("%s is a buffer and must stay frozen", p.Name)
					}
				}
				if c.folder != fixture && man.Files.DecoderWithPast == "" {
					t.Errorf("with-past export: no KV-cache generation graphs")
				}
			})
		}
	}
}

// TestTiedMonolithTrainsLMHead: a monolithic Optimum export of tied BART
// (model.onnx) holds the lm_head as a separate, transposed, constant-folded
// copy of the embedding. It must be the embedding parameter, trained: the
// embedding's gradient then sums both uses and matches PyTorch.
func TestTiedMonolithTrainsLMHead(t *testing.T) {
	env := openEnv(t)
	for _, withWeights := range []bool{false, true} {
		dir := optimumFolder(t, "bart-tiny-monolith", "bart-tiny", withWeights)
		cfg, err := artifacts.FolderConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		man, worst := checkGradientsOf(t, env, "bart-tiny", "monolith", cfg)
		if worst > 1e-4 {
			t.Errorf("weights file %v: max relative gradient error %.3g > 1e-4", withWeights, worst)
		}
		found := false
		for _, p := range man.Parameters {
			if p.Name == "model.shared.weight" {
				found = p.Trainable && len(p.Aliases) == 1 && p.Aliases[0].Transposed
			}
		}
		if !found {
			t.Errorf("weights file %v: model.shared.weight is not one trainable parameter with the transposed lm_head as its alias: %+v", withWeights, man.Parameters)
		}
	}
}

// roundTripRefs is testdata/optimum/roundtrip.json, written by
// scripts/refs/hf_roundtrip_refs.py: the logits that
// AutoModelForSeq2SeqLM.from_pretrained(checkpoint) (transformers 5.24)
// computes from the checkpoints this test writes.
type roundTripRefs struct {
	Models map[string]struct {
		HFLogits          intTensorF `json:"hf_logits"`
		MissingKeys       []string   `json:"missing_keys"`
		UnexpectedKeys    []string   `json:"unexpected_keys"`
		MaxAbsVsOrtrain   float64    `json:"max_abs_vs_ortrain"`
		CheckpointTensors []string   `json:"checkpoint_tensors"`
	} `json:"models"`
}

type intTensorF struct {
	Shape []int64   `json:"shape"`
	Data  []float32 `json:"data"`
}

// TestOptimumCheckpointsLoadInHF trains each Optimum export (default task,
// no model.safetensors: names come from the graphs alone) for 3 AdamW steps
// and writes a checkpoint as the trainer does. Its tensors carry HF's
// names and shapes (those of the fixture's own save_pretrained file),
// none is missing but the folded buffer reported as unmatched, and
// from_pretrained of it computes the logits ortrain computes (the committed
// reference; with ORTRAIN_ROUNDTRIP_OUT set, the checkpoints and ortrain's
// logits are written there for the reference script).
func TestOptimumCheckpointsLoadInHF(t *testing.T) {
	env := openEnv(t)
	var refs roundTripRefs
	write := os.Getenv("ORTRAIN_ROUNDTRIP_OUT")
	if write == "" { // writing checkpoints for the reference script, which makes this file
		readJSON(t, testenv.Testdata(t, "optimum", "roundtrip.json"), &refs)
	}
	for _, fixture := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		t.Run(fixture, func(t *testing.T) {
			var gref gradRef
			readJSON(t, testenv.Testdata(t, "gradients", fixture+".json"), &gref)
			src := optimumFolder(t, fixture, fixture, false)
			cfg, err := artifacts.FolderConfig(src)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Out = t.TempDir()
			if fixture == "marian-tiny" {
				// HF trains Marian's sinusoidal position tables but
				// save_pretrained leaves them out and from_pretrained
				// recomputes them, so no checkpoint (HF's own included)
				// carries trained tables back into HF: compare with them
				// frozen.
				cfg.Freeze = []string{`embed_positions\.weight$`}
			}
			man, err := artifacts.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tr := openTrainer(t, env, cfg.Out, Options{ModelDir: src, Hyper: Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1}})
			b := refBatch(gref.Batch)
			b.DecoderAttentionMask = nil // the composed graph has no such input, as HF's collator gives none
			for range 3 {
				if _, _, err := tr.trainMicroBatch(b, 1, 0); err != nil {
					t.Fatal(err)
				}
				if _, err := tr.optimizerStep(1e-2); err != nil {
					t.Fatal(err)
				}
			}
			ckpt := t.TempDir()
			if write != "" {
				ckpt = filepath.Join(write, fixture)
				if err := os.MkdirAll(ckpt, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := tr.SaveModel(ckpt); err != nil {
				t.Fatal(err)
			}
			ev, err := tr.Eval(b, true)
			if err != nil {
				t.Fatal(err)
			}
			if write != "" {
				bs, _ := json.Marshal(map[string]any{"shape": ev.LogitsShape, "data": ev.Logits})
				if err := os.WriteFile(filepath.Join(ckpt, "ortrain_logits.json"), bs, 0o644); err != nil {
					t.Fatal(err)
				}
			}

			// Without Python: names and shapes are HF's, and only the
			// reported unmatched tensors are missing.
			got, err := safetensors.ReadFile(filepath.Join(ckpt, ModelFile))
			if err != nil {
				t.Fatal(err)
			}
			hf, err := safetensors.ReadFile(testenv.Testdata(t, "models", fixture, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range got.Names() {
				h, ok := hf.Tensors[n]
				if !ok && !strings.HasSuffix(n, "embed_positions.weight") { // Marian's tables: HF recomputes, never saves them
					t.Errorf("checkpoint tensor %q is not a tensor of HF's save_pretrained file", n)
				} else if ok && !slices.Equal(h.Shape, got.Tensors[n].Shape) {
					t.Errorf("checkpoint tensor %q has shape %v, HF's %v", n, got.Tensors[n].Shape, h.Shape)
				}
			}
			var missing []string
			for _, n := range hf.Names() {
				if _, ok := got.Tensors[n]; !ok {
					missing = append(missing, n)
				}
			}
			wantMissing := ""
			if fixture == "bart-tiny" {
				wantMissing = "final_logits_bias" // folded into onnx::Add_*, reported as unmatched
			}
			if strings.Join(missing, ",") != wantMissing || len(man.Unmatched) != len(missing) {
				t.Errorf("missing from the checkpoint: %v (unmatched %+v)", missing, man.Unmatched)
			}

			// With Python's answer: from_pretrained(checkpoint) logits.
			if write != "" {
				return
			}
			ref, ok := refs.Models[fixture]
			if !ok {
				t.Fatalf("no reference for %s in roundtrip.json", fixture)
			}
			if !slices.Equal(ref.HFLogits.Shape, ev.LogitsShape) {
				t.Fatalf("logits shape %v, HF %v", ev.LogitsShape, ref.HFLogits.Shape)
			}
			d := maxDiff(ev.Logits, ref.HFLogits.Data)
			t.Logf("%s: max |ortrain - from_pretrained(checkpoint)| logits %.3g (reference run: %.3g); HF missing keys %v, unexpected %v", fixture, d, ref.MaxAbsVsOrtrain, ref.MissingKeys, ref.UnexpectedKeys)
			if d > 1e-4 {
				t.Errorf("logits differ from HF's by %.3g", d)
			}
			if len(ref.UnexpectedKeys) > 0 {
				t.Errorf("HF found unexpected keys %v", ref.UnexpectedKeys)
			}
		})
	}
}
