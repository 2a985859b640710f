package artifacts

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

var mergeCases = []string{"t5-qv", "t5-ffn", "bart-qv", "bart-ffn", "marian-qv", "marian-ffn"}

// buildAdapted builds the artifacts of the arch fixture mt with the
// adapter folder applied.
func buildAdapted(t *testing.T, mt, adapter string) string {
	t.Helper()
	dir := testenv.Testdata(t, "arch", mt)
	art := filepath.Join(t.TempDir(), "art")
	if _, err := Build(Config{
		Model: filepath.Join(dir, "model.onnx"), Out: art,
		Encoder: filepath.Join(dir, "encoder_model.onnx"), Decoder: filepath.Join(dir, "decoder_model.onnx"),
		DecoderWithPast: filepath.Join(dir, "decoder_with_past_model.onnx"), Adapter: adapter,
	}); err != nil {
		t.Fatal(err)
	}
	return art
}

func readTensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, n := range f.Names() {
		if out[n], err = f.Tensors[n].Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// graphWeights reads the float initializers of the generation graphs in
// dir (an exported model folder) by name, in PyTorch layout (man says
// which the graphs hold transposed).
func graphWeights(t *testing.T, dir string, man *Manifest) map[string][]float32 {
	t.Helper()
	byName := map[string]Parameter{}
	for _, p := range man.Parameters {
		byName[p.Name] = p
	}
	out := map[string][]float32{}
	for _, f := range []string{EncoderFile, DecoderFile, DecoderWithPastFile} {
		m, err := onnx.Load(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range m.Graph.Node {
			if strings.HasPrefix(n.GetName(), "lora/") {
				t.Errorf("%s: adapter node %s left", f, n.GetName())
			}
		}
		for _, in := range m.Graph.Input {
			if _, ok := byName[in.GetName()]; ok {
				t.Errorf("%s: parameter %s is still an input", f, in.GetName())
			}
		}
		for _, init := range m.Graph.Initializer {
			p, ok := byName[init.GetName()]
			if !ok {
				continue
			}
			v, err := onnx.Float32s(init)
			if err != nil {
				t.Fatal(err)
			}
			v = p.ToTorch(v)
			if prev, ok := out[p.Name]; ok && maxAbs(prev, v) != 0 {
				t.Errorf("%s differs between the graphs", p.Name)
			}
			out[p.Name] = v
		}
	}
	return out
}

// TestWriteInferenceMergesAsPEFT: the model folder written with MergeLoRA
// from the artifacts of each PEFT-trained adapter holds PEFT's
// merge_and_unload() weights (testdata/lora/<case>/merged.safetensors,
// scripts/refs/lora_refs.py --merged) within 1e-5, the base model's
// weights elsewhere, and graphs with no adapter branch, no adapter tensor
// and no parameter input.
func TestWriteInferenceMergesAsPEFT(t *testing.T) {
	var rows []string
	for _, name := range mergeCases {
		t.Run(name, func(t *testing.T) {
			mt := strings.SplitN(name, "-", 2)[0]
			ref := testenv.Testdata(t, "lora", name)
			art := buildAdapted(t, mt, filepath.Join(ref, "trained"))
			man, err := ReadManifest(art)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := WriteInference(art, out, InferenceOptions{MergeLoRA: true}); err != nil {
				t.Fatal(err)
			}
			got := graphWeights(t, out, man)
			want := readTensors(t, filepath.Join(ref, "merged.safetensors"))
			base := readTensors(t, filepath.Join(testenv.Testdata(t, "arch", mt), "model.safetensors"))
			worst, change, merged := 0.0, 0.0, 0
			for k, w := range want {
				if k == "logits" {
					continue
				}
				merged++
				d := maxAbs(got[k], w)
				worst = max(worst, d)
				if d > 1e-5 {
					t.Errorf("%s: merged weight differs from merge_and_unload()'s by %.3g > 1e-5", k, d)
				}
				change = max(change, maxAbs(base[k], w))
			}
			if change < 1e-3 {
				t.Errorf("the trained adapter changes the weights by at most %.2g: the check would prove nothing", change)
			}
			for k, v := range got {
				if strings.Contains(k, "lora_") {
					t.Errorf("merged model holds adapter tensor %s", k)
				}
				if _, ok := want[k]; !ok {
					if b, ok := base[k]; ok && maxAbs(v, b) != 0 {
						t.Errorf("%s is not adapted but differs from the base model", k)
					}
				}
			}
			rows = append(rows, fmt.Sprintf("%s: %d merged weights, max abs diff from merge_and_unload() %.2g (largest change by the adapter %.2g)", name, merged, worst, change))
		})
	}
	t.Log("\n" + strings.Join(rows, "\n"))
}

// TestWriteInferenceRefusals: a folder without LoRA has nothing to merge
// (a settings error), and a folder that is no artifact folder is bad input.
func TestWriteInferenceRefusals(t *testing.T) {
	dir := testenv.Testdata(t, "arch", "t5")
	plain := filepath.Join(t.TempDir(), "plain")
	if _, err := Build(Config{
		Model: filepath.Join(dir, "model.onnx"), Out: plain,
		Encoder: filepath.Join(dir, "encoder_model.onnx"), Decoder: filepath.Join(dir, "decoder_model.onnx"),
		DecoderWithPast: filepath.Join(dir, "decoder_with_past_model.onnx"),
	}); err != nil {
		t.Fatal(err)
	}
	err := WriteInference(plain, t.TempDir(), InferenceOptions{MergeLoRA: true})
	if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "built without LoRA") {
		t.Errorf("merge without LoRA: %v", err)
	}
	err = WriteInference(dir, t.TempDir(), InferenceOptions{MergeLoRA: true})
	if !errors.Is(err, fault.Input) {
		t.Errorf("not an artifact folder: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

func maxAbs(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
