package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
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
