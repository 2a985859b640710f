package engine

import (
	"fmt"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// tokenizerFiles are copied from the source model folder next to the
// exported graphs so that the folder is complete for `ortrain predict`.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model",
	"source.spm", "target.spm", "vocab.json"}

// graphValues returns a trainable parameter's current value in the graphs'
// layout.
func (e *Engine) graphValues(p artifacts.Parameter) ([]float32, error) {
	if v, ok := e.shared[p.Name]; ok {
		return e.download(v)
	}
	return e.download(e.cur[p.Name])
}

// ExportInference writes ONNX inference graphs with the current (trained)
// parameters as initializers into dir: model.onnx (the artifacts' forward
// graph; in folders made before it, the source model folder's), the
// artifacts' encoder/decoder/decoder_with_past generation graphs, and the
// tokenizer files. dir then works as a model folder for
// `ortrain predict --model` and any ONNX consumer.
func (e *Engine) ExportInference(dir string) error { return e.exportInference(dir, nil) }

// exportInference is ExportInference; with merged (the parameters in
// PyTorch layout with the LoRA adapters merged in, Engine.mergedValues) the
// graphs lose their adapter branches and hold the merged weights.
func (e *Engine) exportInference(dir string, merged map[string][]float32) error {
	man := e.man
	byName := map[string]artifacts.Parameter{}
	byONNX := map[string]artifacts.Parameter{}
	for _, p := range man.Parameters {
		if !p.Trainable && !p.SharedInput || merged != nil && p.MatchedBy == artifacts.ByLoRA {
			continue
		}
		byName[p.Name] = p
		n := p.ONNXName
		if n == "" {
			n = p.Name
		}
		byONNX[n] = p
	}
	tensor := func(name string, p artifacts.Parameter) (*onnxpb.TensorProto, error) {
		var v []float32
		var err error
		if merged != nil {
			w, ok := merged[p.Name]
			if !ok {
				return nil, fmt.Errorf("no merged value for %s", p.Name)
			}
			v = p.ToGraph(w)
		} else if v, err = e.graphValues(p); err != nil {
			return nil, err
		}
		return onnx.NewTensor(name, p.Shape, v)
	}
	graphs := man.Generation
	if man.Files.Forward != "" {
		// The forward graph with ortrain's parameter names, ties resolved.
		graphs = append([]artifacts.Generation{{Role: "forward", File: man.Files.Forward}}, graphs...)
	} else if e.opts.ModelDir != "" {
		src := filepath.Join(e.opts.ModelDir, "model.onnx")
		m, err := onnx.Load(src)
		if err != nil {
			return err
		}
		if err := onnx.ResolveExternalData(m, e.opts.ModelDir); err != nil {
			return err
		}
		for i, init := range m.Graph.Initializer {
			if p, ok := byONNX[init.GetName()]; ok {
				t, err := tensor(init.GetName(), p)
				if err != nil {
					return err
				}
				m.Graph.Initializer[i] = t
			}
		}
		if err := onnx.Save(m, filepath.Join(dir, "model.onnx"), onnx.SaveOptions{}); err != nil {
			return err
		}
	}
	if e.opts.ModelDir != "" {
		if err := e.copyModelFiles(dir, tokenizerFiles); err != nil {
			return err
		}
	}
	for _, g := range graphs {
		out := g.File
		if g.Role == "forward" {
			out = "model.onnx"
		}
		m, err := onnx.Load(filepath.Join(e.dir, g.File))
		if err != nil {
			return err
		}
		if merged != nil {
			lora.Strip(m.Graph)
		}
		ins := m.Graph.Input[:0]
		for _, in := range m.Graph.Input {
			p, ok := byName[in.GetName()]
			if !ok {
				ins = append(ins, in)
				continue
			}
			t, err := tensor(in.GetName(), p)
			if err != nil {
				return err
			}
			m.Graph.Initializer = append(m.Graph.Initializer, t)
		}
		m.Graph.Input = ins
		if err := onnx.Save(m, filepath.Join(dir, out), onnx.SaveOptions{}); err != nil {
			return fmt.Errorf("%s: %w", g.File, err)
		}
	}
	return nil
}
