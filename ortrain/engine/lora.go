package engine

import (
	"fmt"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// LoRA returns the adapter the engine trains, or nil when it trains the
// model's own weights.
func (e *Engine) LoRA() *lora.Adapter { return e.man.LoRA }

// saveAdapter writes the adapter in PEFT's layout (adapter_config.json and
// adapter_model.safetensors under PEFT's keys), which
// PeftModel.from_pretrained loads onto the base model.
func (e *Engine) saveAdapter(dir string) error {
	ad := e.man.LoRA
	tensors := map[string]safetensors.Tensor{}
	for _, name := range ad.Trained() {
		p, ok := e.param(name)
		if !ok || !p.Trainable {
			return fmt.Errorf("adapter tensor %s is no trainable parameter of the artifacts", name)
		}
		v, err := e.download(e.cur[name])
		if err != nil {
			return err
		}
		tensors[name] = safetensors.FromFloat32(p.TorchShape(), p.ToTorch(v))
	}
	if err := ad.WriteWeights(dir, tensors); err != nil {
		return err
	}
	base := ad.BaseModel
	if e.opts.ModelDir != "" {
		base = e.opts.ModelDir
	}
	return lora.WriteConfig(dir, ad.Config, base)
}

// LoadAdapter reads a PEFT adapter folder (one ortrain or PEFT wrote for
// the same base model and config) into the adapter's parameters.
func (e *Engine) LoadAdapter(dir string) error {
	e.version++
	vals, err := e.man.LoRA.ReadWeights(dir)
	if err != nil {
		return err
	}
	for name, v := range vals {
		p, _ := e.param(name)
		if err := e.upload(e.cur[name], p.ToGraph(v)); err != nil {
			return err
		}
	}
	return nil
}

// SaveMerged writes the model with every adapter merged into its base
// weight (PEFT's merge_and_unload: W + scaling·B·A) as model.safetensors
// under the model's own names, with the source model's configs: a full
// checkpoint that loads with AutoModelForSeq2SeqLM.from_pretrained. The
// inference graphs (model.onnx, encoder/decoder/decoder_with_past) are
// written again, without the adapter branches and with the merged weights,
// so that the folder is one model for ortrain predict --model too, as fast
// as the base model.
func (e *Engine) SaveMerged(dir string) error {
	values, err := e.mergedValues()
	if err != nil {
		return err
	}
	tensors := map[string]safetensors.Tensor{}
	for _, p := range e.man.Parameters {
		if v, ok := values[p.Name]; ok {
			tensors[p.Name] = safetensors.FromFloat32(p.TorchShape(), v)
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, ModelFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if err := e.copyModelFiles(dir, copiedModelFiles); err != nil {
		return err
	}
	return e.exportInference(dir, values)
}

// MergedParameters are the model's parameters (PyTorch names and layout)
// with the adapters merged into the targeted weights.
func (e *Engine) MergedParameters() (map[string]safetensors.Tensor, error) {
	values, err := e.mergedValues()
	if err != nil {
		return nil, err
	}
	out := map[string]safetensors.Tensor{}
	for _, p := range e.man.Parameters {
		if v, ok := values[p.Name]; ok {
			out[p.Name] = safetensors.FromFloat32(p.TorchShape(), v)
		}
	}
	return out, nil
}

// mergedValues are MergedParameters' values: the trained ones from the
// device, the frozen ones from the artifacts' parameter file.
func (e *Engine) mergedValues() (map[string][]float32, error) {
	if e.man.LoRA == nil {
		return nil, fmt.Errorf("the engine trains no LoRA adapter")
	}
	initial, err := safetensors.ReadFile(filepath.Join(e.dir, e.man.Files.Parameters))
	if err != nil {
		return nil, err
	}
	return e.man.MergeLoRA(func(p artifacts.Parameter) ([]float32, error) {
		if p.Trainable {
			v, err := e.download(e.cur[p.Name])
			if err != nil {
				return nil, err
			}
			return p.ToTorch(v), nil
		}
		t, ok := initial.Tensors[p.Name]
		if !ok {
			return nil, fmt.Errorf("parameter %q is missing from %s", p.Name, e.man.Files.Parameters)
		}
		return t.Float32s()
	})
}

// sameLoRA reports whether an artifact folder trains what cfg asks for:
// the same LoRA config (or none). An adapter folder's config is read to
// compare; its values are loaded into the engine, not kept in the folder.
func sameLoRA(man *artifacts.Manifest, cfg Config) bool {
	want := cfg.LoRA
	if cfg.Adapter != "" {
		c, _, err := lora.ReadConfig(cfg.Adapter)
		if err != nil {
			return false
		}
		want = &c
	}
	if want == nil || man.LoRA == nil {
		return want == nil && man.LoRA == nil
	}
	return man.LoRA.Config.Equal(*want)
}

func describeLoRA(man *artifacts.Manifest) string {
	if man.LoRA == nil {
		return "to train the full model (no LoRA)"
	}
	return "to train LoRA adapters with " + man.LoRA.Config.String()
}

// SaveMerged writes the model with the adapters merged (Engine.SaveMerged)
// into dir.
func (s *Session) SaveMerged(dir string) error {
	if s.engine.LoRA() == nil {
		return fmt.Errorf("--merge_lora: the run trains no LoRA adapter")
	}
	return s.engine.SaveMerged(dir)
}
