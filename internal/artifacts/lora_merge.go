package artifacts

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// MergeLoRA returns the model's parameters (its own names, PyTorch layout)
// with every adapter merged into the weight it adapts, as PEFT's
// merge_and_unload computes them: W + scaling·B·A. value gives a
// parameter's current value in PyTorch layout. The adapters' tensors are
// left out; biases and modules_to_save come with their trained values.
func (m *Manifest) MergeLoRA(value func(Parameter) ([]float32, error)) (map[string][]float32, error) {
	ad := m.LoRA
	if ad == nil {
		return nil, fmt.Errorf("the artifacts train no LoRA adapter")
	}
	byName := map[string]Parameter{}
	out := map[string][]float32{}
	for _, p := range m.Parameters {
		byName[p.Name] = p
		if p.MatchedBy == ByLoRA {
			continue
		}
		v, err := value(p)
		if err != nil {
			return nil, err
		}
		out[p.Name] = v
	}
	for _, mod := range ad.Modules {
		w, ok := out[mod.Weight]
		if !ok {
			return nil, fmt.Errorf("LoRA: the adapted weight %s is no parameter of the artifacts", mod.Weight)
		}
		var ab [2][]float32
		for i, name := range []string{lora.AName(mod.Name), lora.BName(mod.Name)} {
			p, ok := byName[name]
			if !ok {
				return nil, fmt.Errorf("LoRA: %s is no parameter of the artifacts", name)
			}
			v, err := value(p)
			if err != nil {
				return nil, err
			}
			ab[i] = v
		}
		r := int64(ad.Config.R)
		if int64(len(w)) != mod.In*mod.Out || int64(len(ab[0])) != r*mod.In || int64(len(ab[1])) != mod.Out*r {
			return nil, fmt.Errorf("LoRA: %s: weight, lora_A and lora_B do not fit a %dx%d layer of rank %d", mod.Name, mod.Out, mod.In, r)
		}
		out[mod.Weight] = lora.Merge(w, ab[0], ab[1], ad.Config.R, mod.In, mod.Out, ad.Config.Scaling())
	}
	return out, nil
}

// InferenceOptions choose what WriteInference writes.
type InferenceOptions struct {
	// Adapter holds values (PyTorch layout, by ortrain's names, as
	// lora.Adapter.ReadWeights returns them) that replace the folder's
	// adapter tensors.
	Adapter map[string][]float32
	// MergeLoRA merges the adapters into the base weights (PEFT's
	// merge_and_unload) and takes their branches out of the graphs, which
	// then compute what the base model's graphs compute, with the merged
	// weights.
	MergeLoRA bool
}

// WriteInference writes into dst (an existing folder) the generation graphs
// of the artifact folder src as an exported model folder in Optimum's
// layout (encoder_model.onnx, decoder_model.onnx,
// decoder_with_past_model.onnx), with the parameters held as initializers
// (constants, which ONNX Runtime can pre-pack, as in the source export),
// opts applied. ortdecoder.OpenModel decodes it with the KV cache.
func WriteInference(src, dst string, opts InferenceOptions) error {
	man, err := ReadManifest(src)
	if err != nil {
		return err
	}
	if man.Files.Encoder == "" || man.Files.Decoder == "" || man.Files.DecoderWithPast == "" {
		return fault.Inputf("%s: the artifacts have no encoder / decoder / decoder_with_past generation graphs; rebuild them from an export with past key values (Optimum layout)", src)
	}
	if (opts.Adapter != nil || opts.MergeLoRA) && man.LoRA == nil {
		return fault.Settingsf("%s was built without LoRA: there is no adapter to apply or merge", src)
	}
	file := man.Files.Parameters
	if file == "" {
		file = ParametersFile
	}
	if err := modelfile.CheckIn(src, file); err != nil {
		return fault.Mark(fault.Input, err)
	}
	st, err := safetensors.ReadFile(filepath.Join(src, file))
	if err != nil {
		return fault.Inputf("%s: %v", filepath.Join(src, file), err)
	}
	value := func(p Parameter) ([]float32, error) {
		if v, ok := opts.Adapter[p.Name]; ok {
			return v, nil
		}
		t, ok := st.Tensors[p.Name]
		if !ok {
			return nil, fault.Inputf("%s: parameter %q is missing", filepath.Join(src, file), p.Name)
		}
		if !slices.Equal(t.Shape, p.TorchShape()) {
			return nil, fault.Inputf("%s: parameter %q has shape %v, the manifest says %v", filepath.Join(src, file), p.Name, t.Shape, p.TorchShape())
		}
		return t.Float32s()
	}
	var merged map[string][]float32
	if opts.MergeLoRA {
		if merged, err = man.MergeLoRA(value); err != nil {
			return err
		}
	}
	byName := map[string]Parameter{}
	for _, p := range man.Parameters {
		byName[p.Name] = p
	}
	for _, g := range man.Generation {
		file, ok := map[string]string{"encoder": EncoderFile, "decoder": DecoderFile, "decoder_with_past": DecoderWithPastFile}[g.Role]
		if !ok {
			continue
		}
		m, err := onnx.Load(filepath.Join(src, g.File))
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		if err := onnx.ResolveExternalData(m, src); err != nil {
			return fault.Mark(fault.Input, err)
		}
		if opts.MergeLoRA {
			lora.Strip(m.Graph)
		}
		ins := m.Graph.Input[:0]
		for _, in := range m.Graph.Input {
			p, ok := byName[in.GetName()]
			if !ok {
				ins = append(ins, in)
				continue
			}
			var v []float32
			if merged != nil {
				if v, ok = merged[p.Name]; !ok {
					return fmt.Errorf("%s: no merged value for %s", g.File, p.Name)
				}
			} else if v, err = value(p); err != nil {
				return err
			}
			t, err := onnx.NewTensor(p.Name, p.Shape, p.ToGraph(v))
			if err != nil {
				return err
			}
			m.Graph.Initializer = append(m.Graph.Initializer, t)
		}
		m.Graph.Input = ins
		if err := onnx.Save(m, filepath.Join(dst, file), onnx.SaveOptions{ExternalData: true}); err != nil {
			return err
		}
	}
	return nil
}
