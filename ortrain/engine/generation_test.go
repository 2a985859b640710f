package engine

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

type fixtureRefs struct {
	Batch   map[string]intTensor `json:"batch"`
	Encoder struct {
		LastHiddenState struct {
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"last_hidden_state"`
	} `json:"encoder"`
	Decoder struct {
		Inputs  map[string]json.RawMessage `json:"inputs"`
		Outputs map[string]struct {
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	} `json:"decoder"`
}

// runWithParams runs a generation graph with the trainer's current
// parameters bound to its parameter inputs.
func runWithParams(t *testing.T, env *onnxrt.Env, tr *Engine, path string, in map[string]*onnxrt.Value, out string) *onnxrt.Value {
	t.Helper()
	s, err := env.NewSession(path, onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	params := tr.ParamValues()
	for _, i := range s.Inputs() {
		if v, ok := params[i.Name]; ok {
			in[i.Name] = v
		}
	}
	outs, err := s.Run(in, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	return outs[out]
}

// TestGenerationGraphsUseTrainerParams: the rewritten encoder and decoder
// reproduce the exported graphs' PyTorch outputs when fed the trainer's
// parameters, and follow the parameters after an optimizer step.
func TestGenerationGraphsUseTrainerParams(t *testing.T) {
	env := openEnv(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			src := testenv.Testdata(t, "models", name)
			var refs fixtureRefs
			readJSON(t, filepath.Join(src, "refs.json"), &refs)
			dir := t.TempDir()
			man, err := artifacts.Build(artifacts.Config{Model: filepath.Join(src, "model.onnx"), Out: dir,
				Encoder: filepath.Join(src, "encoder_model.onnx"), Decoder: filepath.Join(src, "decoder_model.onnx"),
				DecoderWithPast: filepath.Join(src, "decoder_with_past_model.onnx")})
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range man.Generation {
				if len(g.Parameters) == 0 {
					t.Errorf("%s takes no parameters", g.File)
				}
			}
			tr := openTrainer(t, env, dir, Options{})
			ids, mask := refs.Batch["input_ids"], refs.Batch["attention_mask"]
			encoderIn := func() map[string]*onnxrt.Value {
				a, _ := onnxrt.NewTensor(ids.Shape, ids.Data)
				m, _ := onnxrt.NewTensor(mask.Shape, mask.Data)
				t.Cleanup(func() { a.Close(); m.Close() })
				return map[string]*onnxrt.Value{"input_ids": a, "attention_mask": m}
			}
			hidden := runWithParams(t, env, tr, filepath.Join(dir, man.Files.Encoder), encoderIn(), "last_hidden_state")
			defer hidden.Close()
			h, _ := hidden.Float32s()
			want := refs.Encoder.LastHiddenState.Data
			if d := maxDiff(h, want); d > 1e-4*maxAbs(want) {
				t.Errorf("encoder output differs from PyTorch by %v", d)
			}
			var decIDs intTensor
			if err := json.Unmarshal(refs.Decoder.Inputs["input_ids"], &decIDs); err != nil {
				t.Fatal(err)
			}
			di, _ := onnxrt.NewTensor(decIDs.Shape, decIDs.Data)
			dm, _ := onnxrt.NewTensor(mask.Shape, mask.Data)
			defer di.Close()
			defer dm.Close()
			logits := runWithParams(t, env, tr, filepath.Join(dir, man.Files.Decoder),
				map[string]*onnxrt.Value{"input_ids": di, "encoder_attention_mask": dm, "encoder_hidden_states": hidden}, "logits")
			l, _ := logits.Float32s()
			logits.Close()
			wantL := refs.Decoder.Outputs["logits"].Data
			if d := maxDiff(l, wantL); d > 1e-4*maxAbs(wantL) {
				t.Errorf("decoder logits differ from PyTorch by %v", d)
			}
			// One optimizer step later the encoder sees the new weights.
			if _, _, err := tr.trainMicroBatch(refBatch(refs.Batch), 1, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.optimizerStep(1e-2); err != nil {
				t.Fatal(err)
			}
			after := runWithParams(t, env, tr, filepath.Join(dir, man.Files.Encoder), encoderIn(), "last_hidden_state")
			defer after.Close()
			h2, _ := after.Float32s()
			if maxDiff(h, h2) < 1e-3 {
				t.Error("encoder output did not change after an optimizer step")
			}
		})
	}
}
