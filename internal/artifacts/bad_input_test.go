package artifacts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/autodiff"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testmodel"
)

func TestToyNamesTransposedWeights(t *testing.T) {
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Act: "Tanh", Output: "logits"})
	out := filepath.Join(dir, "art")
	man, err := Build(Config{Model: model, Out: out, Decoder: model})
	if err != nil {
		t.Fatal(err)
	}
	var lm *Parameter
	for i, p := range man.Parameters {
		if p.Name == "lm_head.weight" {
			lm = &man.Parameters[i]
		}
	}
	if lm == nil || !lm.Transposed || lm.ONNXName != "onnx::MatMul_7" || !lm.Decay {
		t.Fatalf("lm_head.weight not recovered from onnx::MatMul_7 by transposed content: %+v", man.Parameters)
	}
	// The parameter file holds the PyTorch layout, byte for byte.
	orig, _ := safetensors.ReadFile(filepath.Join(dir, "model.safetensors"))
	got, err := safetensors.ReadFile(filepath.Join(out, ParametersFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"shared.weight", "lm_head.weight"} {
		if string(got.Tensors[n].Data) != string(orig.Tensors[n].Data) {
			t.Errorf("%s differs from the weights file", n)
		}
	}
	// The generation graph takes both parameters as inputs, by name.
	if len(man.Generation) != 1 || strings.Join(man.Generation[0].Parameters, ",") != "lm_head.weight,shared.weight" {
		t.Errorf("generation graph parameters: %+v", man.Generation)
	}
	// Freezing keeps the weight a constant in the training graph.
	man, err = Build(Config{Model: model, Out: filepath.Join(dir, "frozen"), Freeze: []string{`^lm_head\.`}})
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Trainable()) != 1 || man.Trainable()[0].Name != "shared.weight" {
		t.Errorf("after --freeze lm_head: trainable %+v", man.Trainable())
	}
	tm, err := onnx.Load(filepath.Join(dir, "frozen", TrainingFile))
	if err != nil {
		t.Fatal(err)
	}
	if !isInitializer(tm.Graph, "lm_head.weight") {
		t.Error("frozen lm_head.weight is not a constant of the training graph")
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		toy   testmodel.Toy
		cfg   func(c *Config)
		is    error
		wants []string
	}{
		{"no logits", testmodel.Toy{Output: "scores"}, nil, fault.Input, []string{`no output named "logits"`, "scores"}},
		{"unexpected input", testmodel.Toy{Output: "logits", ExtraInput: "past_key_values.0.key"}, nil, fault.Input, []string{"unexpected graph inputs past_key_values.0.key", "decoder_input_ids"}},
		{"op without rule", testmodel.Toy{Act: "Atan", Output: "logits"}, nil, autodiff.ErrNoRule, []string{"Atan", "shared.weight"}},
		{"freeze matches nothing", testmodel.Toy{Output: "logits"}, func(c *Config) { c.Freeze = []string{"encoder"} }, nil, []string{`--freeze "encoder" matches no parameter`}},
		{"freeze everything", testmodel.Toy{Output: "logits"}, func(c *Config) { c.Freeze = []string{"."} }, nil, []string{"no trainable parameter"}},
		{"bad regex", testmodel.Toy{Output: "logits"}, func(c *Config) { c.Freeze = []string{"("} }, nil, []string{"not a valid regular expression"}},
		{"label smoothing", testmodel.Toy{Output: "logits"}, func(c *Config) { c.LabelSmoothing = 1 }, nil, []string{"label smoothing"}},
	}
	for i, c := range cases {
		sub := filepath.Join(dir, string(rune('a'+i)))
		os.MkdirAll(sub, 0o755)
		cfg := Config{Model: testmodel.WriteToy(t, sub, c.toy), Out: filepath.Join(sub, "art")}
		if c.cfg != nil {
			c.cfg(&cfg)
		}
		_, err := Build(cfg)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v does not match %v", c.name, err, c.is)
		}
		for _, w := range c.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
		var fe *FreezeError
		if strings.HasPrefix(c.name, "freeze") && !errors.As(err, &fe) {
			t.Errorf("%s: not a FreezeError: %v", c.name, err)
		}
	}
	// A file that is not ONNX.
	junk := filepath.Join(dir, "junk.onnx")
	os.WriteFile(junk, []byte("this is not a model\n"), 0o644)
	_, err := Build(Config{Model: junk, Out: filepath.Join(dir, "junk-art")})
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "not an ONNX model") || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk file: %v", err)
	}
	// Weights that belong to another model.
	sub := filepath.Join(dir, "mismatch")
	os.MkdirAll(sub, 0o755)
	model := testmodel.WriteToy(t, sub, testmodel.Toy{Output: "logits"})
	safetensors.WriteFile(filepath.Join(sub, "other.safetensors"), map[string]safetensors.Tensor{
		"shared.weight": safetensors.FromFloat32([]int64{testmodel.Vocab, testmodel.Dim}, make([]float32, testmodel.Vocab*testmodel.Dim)),
	}, nil)
	_, err = Build(Config{Model: model, Out: filepath.Join(sub, "art"), Weights: filepath.Join(sub, "other.safetensors")})
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), `"shared.weight"`) {
		t.Errorf("mismatched weights: %v", err)
	}
}

// TestRolesByFlag: other input and output names are mapped to the roles.
func TestRolesByFlag(t *testing.T) {
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Output: "scores", DecName: "tgt_tokens"})
	if _, err := Build(Config{Model: model, Out: filepath.Join(dir, "a")}); err == nil {
		t.Fatal("names other than HF's accepted without roles")
	}
	man, err := Build(Config{Model: model, Out: filepath.Join(dir, "b"), Roles: map[string]string{"tgt_tokens": "decoder_input_ids"}, LogitsOutput: "scores"})
	if err != nil {
		t.Fatal(err)
	}
	if man.Inputs[1].Name != "decoder_input_ids" {
		t.Errorf("inputs %+v", man.Inputs)
	}
	for _, bad := range []Config{
		{Roles: map[string]string{"nope": "decoder_input_ids"}, LogitsOutput: "scores"},
		{Roles: map[string]string{"tgt_tokens": "labels"}, LogitsOutput: "scores"},
		{Roles: map[string]string{"tgt_tokens": "decoder_input_ids"}, LogitsOutput: "nope"},
	} {
		bad.Model, bad.Out = model, filepath.Join(dir, "c")
		if _, err := Build(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
